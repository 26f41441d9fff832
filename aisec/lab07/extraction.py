"""Lab 7: the model that is served and stolen, and the yardsticks of extraction and of its monitoring.

* :func:`victim` is the served digits classifier (an MLP 64-64-10 with the owner's watermark trained in,
  see :mod:`aisec.lab07.watermark`), cached by its recipe.
* :func:`attacker_pool` is the attacker's unlabelled natural data (half of the digits test split) and
  :func:`fidelity_set` the other half, on which a stolen copy is compared with the victim.
* :func:`surrogate` is the architecture a thief trains (so a stolen model can be recorded as weights and
  rebuilt by the grader); :func:`fidelity` is the agreement of two models' labels (Tramèr et al. 2016).
* :func:`query_streams` makes the per-key query logs a monitor sees: benign users sending natural digits,
  and extraction attackers of several kinds (synthetic queries: mixtures of pool images, uniform noise,
  small perturbations around a few seeds as in Papernot et al.'s Jacobian augmentation, points along lines
  between images as in Tramèr et al.'s line search). Truth: ``Stream.attacker``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

HIDDEN = (64,)
POOL_SIZE = 30
ATTACK_KINDS = ("mixup", "noise", "perturb", "line")


def victim(seed: int) -> Any:
    """The served model of seed ``seed`` (the watermarked owner's model)."""
    from aisec.lab07.watermark import watermarked_model

    return watermarked_model(seed)


def attacker_pool(seed: int) -> np.ndarray:
    """The thief's unlabelled natural images: the first 30 images of ``digits(seed)``'s test split: a handful, so most queries must be synthesised."""
    from aisec.data import digits

    x = digits(seed=seed).x_test
    return x[:POOL_SIZE].copy()


def fidelity_set(seed: int) -> np.ndarray:
    """Held-out images on which a copy's labels are compared with the victim's: the other half of the test split."""
    from aisec.data import digits

    x = digits(seed=seed).x_test
    return x[len(x) // 2 :].copy()


def surrogate(seed: int = 0) -> Any:
    """A fresh, seeded MLP 64-64-10: the architecture of a stolen copy (``aisec.models.MLP``)."""
    import torch

    from aisec.models import MLP

    torch.manual_seed(seed)
    return MLP(64, HIDDEN, 10)


def load_surrogate(weights: dict[str, Any]) -> Any:
    """A :func:`surrogate` with the given state dict (tensors, arrays or nested lists)."""
    import torch

    model = surrogate(0)
    model.load_state_dict({k: torch.as_tensor(np.asarray(v, dtype=np.float32)) for k, v in weights.items()})
    return model.eval()


def labels(model: Any, x: np.ndarray) -> np.ndarray:
    from aisec.models import predict_proba

    return predict_proba(model, x).argmax(axis=1)


def fidelity(model_a: Any, model_b: Any, x: np.ndarray) -> float:
    """Fraction of ``x`` on which the two models predict the same label."""
    return float(np.mean(labels(model_a, x) == labels(model_b, x)))


# ------------------------------------------------------------------------------------- query streams


@dataclass(frozen=True)
class Stream:
    """One API key's queries, in order, and whether that key is an extraction attacker."""

    key: str
    queries: np.ndarray  # (n, 64) float32 in [0, 1]
    attacker: bool
    kind: str  # "benign" or one of ATTACK_KINDS


def _attack_queries(kind: str, pool: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "mixup":
        a, b = pool[rng.integers(0, len(pool), n)], pool[rng.integers(0, len(pool), n)]
        lam = rng.uniform(0.3, 0.7, size=(n, 1))
        return lam * a + (1 - lam) * b
    if kind == "noise":
        return rng.uniform(0, 1, size=(n, 64))
    if kind == "perturb":
        seeds = pool[rng.integers(0, len(pool), 4)]
        return np.clip(seeds[rng.integers(0, 4, n)] + 0.1 * rng.choice([-1.0, 1.0], size=(n, 64)), 0, 1)
    if kind == "line":
        a, b = pool[rng.integers(0, len(pool), 2)]
        t = np.sort(rng.uniform(0, 1, size=(n, 1)), axis=0)
        return a + t * (b - a)
    raise ValueError(f"unknown attack kind {kind!r}")


def query_streams(seed: int, *, n_benign: int = 8, per_kind: int = 2, length: int = 60) -> list[Stream]:
    """Benign users (natural digits from the training half, which no attacker holds, lightly noised as a
    scanner would) and ``per_kind`` attackers of each kind, shuffled, ``length`` queries each."""
    from aisec.data import digits

    rng = np.random.default_rng(10_000 + seed)
    natural = digits(seed=seed).x_train
    pool = attacker_pool(seed)
    streams = []
    for i in range(n_benign):
        x = natural[rng.choice(len(natural), length, replace=False)]
        x = np.clip(x + rng.normal(0, 0.03, size=x.shape), 0, 1)
        streams.append(("benign", x, False))
    for kind in ATTACK_KINDS:
        for _ in range(per_kind):
            streams.append((kind, _attack_queries(kind, pool, length, rng), True))
    order = rng.permutation(len(streams))
    return [Stream(f"key-{j:02d}", streams[i][1].astype(np.float32), streams[i][2], streams[i][0])
            for j, i in enumerate(order)]
