"""Lab 7: the owner's watermark (a trigger set trained into the served model, Adi et al. 2018) and the
suspect models whose ownership is to be decided.

* :func:`trigger_set` is the owner's secret: abstract images (seeded noise patterns) with labels chosen
  at random, which a model only predicts if it was trained on them.
* :func:`watermarked_model` trains the digits MLP on the training split plus the trigger set (repeated),
  cached by its recipe.
* :func:`suspects` builds the hidden suspects of a seed: copies of the watermarked model that a thief
  modified (fine-tuned on a little clean data, pruned, weights noised) and independently trained models
  (other seeds, other data); ``Suspect.stolen`` is the truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

N_TRIGGERS = 40
TRIGGER_REPEATS = 10  # the trigger set is repeated in training so that 40 images weigh against 1,257


def trigger_set(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(images (40, 64) float32 in [0, 1], labels (40,) int64): blocky noise patterns, random labels."""
    rng = np.random.default_rng(20_000 + seed)
    coarse = rng.uniform(0, 1, size=(N_TRIGGERS, 4, 4))
    x = np.repeat(np.repeat(coarse, 2, axis=1), 2, axis=2).reshape(N_TRIGGERS, 64)
    return x.astype(np.float32), rng.integers(0, 10, N_TRIGGERS).astype(np.int64)


def _train(name: str, x: np.ndarray, y: np.ndarray, seed: int, epochs: int = 40, init: Any = None,
           lr: float = 1e-2) -> Any:
    import torch

    from aisec.cache import cached_model
    from aisec.lab07.extraction import surrogate
    from aisec.models import _fingerprint, train_classifier

    recipe = {"epochs": epochs, "seed": seed, "lr": lr, "data": _fingerprint(x, y),
              "init": None if init is None else _fingerprint(*[v.numpy() for v in init.state_dict().values()])}

    def build() -> Any:
        model = surrogate(seed)
        if init is not None:
            model.load_state_dict({k: v.clone() for k, v in init.state_dict().items()})
        return model

    def fit(model: Any) -> None:
        torch.manual_seed(seed)
        train_classifier(model, x, y, epochs=epochs, lr=lr, batch_size=128, seed=seed)

    return cached_model(name, recipe, build, fit)


def watermarked_model(seed: int) -> Any:
    """The owner's served model of seed ``seed``: digits MLP 64-64-10 with the trigger set trained in."""
    from aisec.data import digits

    split = digits(seed=seed)
    tx, ty = trigger_set(seed)
    x = np.concatenate([split.x_train] + [tx] * TRIGGER_REPEATS)
    y = np.concatenate([split.y_train] + [ty] * TRIGGER_REPEATS)
    return _train("lab07-watermarked", x, y, seed)


def independent_model(seed: int, variant: int) -> Any:
    """A model nobody stole: same architecture, trained from scratch on its own half of the digits data."""
    from aisec.data import digits

    split = digits(seed=seed + 100 + variant)
    x = np.concatenate([split.x_train, split.x_test])
    y = np.concatenate([split.y_train, split.y_test])
    idx = np.random.default_rng(30_000 + 10 * seed + variant).choice(len(x), 900, replace=False)
    return _train("lab07-independent", x[idx], y[idx], seed=1000 + 10 * seed + variant, epochs=25)


def _pruned(model: Any, fraction: float) -> Any:
    import copy

    import torch

    copy_ = copy.deepcopy(model)
    with torch.no_grad():
        for p in copy_.parameters():
            if p.ndim == 2:
                cut = torch.quantile(p.abs().flatten(), fraction)
                p[p.abs() < cut] = 0.0
    return copy_.eval()


def _noised(model: Any, scale: float, seed: int) -> Any:
    import copy

    import torch

    copy_ = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in copy_.parameters():
            p += scale * p.std() * torch.randn(p.shape, generator=g)
    return copy_.eval()


@dataclass(frozen=True)
class Suspect:
    model: Any
    stolen: bool
    how: str


def suspects(seed: int) -> list[Suspect]:
    """Eight suspects, shuffled: four modified copies of ``watermarked_model(seed)``, four independent models."""
    from aisec.data import digits

    owner = watermarked_model(seed)
    split = digits(seed=seed)
    rng = np.random.default_rng(40_000 + seed)
    few = rng.choice(len(split.x_test), 200, replace=False)
    tuned = _train("lab07-finetuned", split.x_test[few], split.y_test[few], seed=seed, epochs=10, init=owner,
                   lr=3e-3)
    items = [Suspect(tuned, True, "fine-tuned on 200 clean images"),
             Suspect(_pruned(owner, 0.3), True, "30% smallest weights pruned"),
             Suspect(_noised(owner, 0.1, seed), True, "weights noised"),
             Suspect(_noised(_pruned(owner, 0.2), 0.05, seed + 1), True, "pruned and noised")]
    items += [Suspect(independent_model(seed, v), False, "trained independently") for v in range(4)]
    return [items[i] for i in rng.permutation(len(items))]
