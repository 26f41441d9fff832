"""Tiny torch classifiers that train in seconds on a CPU, cached by their recipe.

Several labs attack or defend the same kind of model (a digits classifier), so it is built,
trained and cached here once. Training is full-batch or small-batch Adam, seeded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from aisec.cache import cached_model


class MLP(nn.Module):
    """A fully connected classifier: ``in_features -> hidden... -> n_classes`` with ReLU.

    ``penultimate(x)`` returns the last hidden layer's activations (used by backdoor
    detectors and membership attacks).
    """

    def __init__(self, in_features: int = 64, hidden: Sequence[int] = (128,), n_classes: int = 10):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_classes)

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x.reshape(x.shape[0], -1)))


def train_classifier(
    model: nn.Module,
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    *,
    epochs: int = 30,
    lr: float = 1e-2,
    batch_size: int = 128,
    weight_decay: float = 0.0,
    seed: int = 0,
    loss_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> nn.Module:
    """Train ``model`` in place with Adam and cross-entropy (or ``loss_fn(model, xb, yb)``,
    e.g. an adversarial-training loss). Returns the model in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.long)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    ce = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(xt), batch_size):
            idx = order[start : start + batch_size]
            xb, yb = xt[idx], yt[idx]
            loss = loss_fn(model, xb, yb) if loss_fn is not None else ce(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return model


def cached_classifier(
    x_train: np.ndarray,
    y_train: np.ndarray,
    *,
    name: str,
    hidden: Sequence[int] = (128,),
    epochs: int = 30,
    lr: float = 1e-2,
    weight_decay: float = 0.0,
    seed: int = 0,
    n_classes: int | None = None,
) -> MLP:
    """An MLP on ``x_train`` (rows of features), trained once per recipe and cached.

    The recipe key includes a fingerprint of the training data, so a different split or a
    poisoned copy of the data trains a different model.
    """
    recipe = {
        "hidden": list(hidden),
        "epochs": epochs,
        "lr": lr,
        "weight_decay": weight_decay,
        "seed": seed,
        "data": _fingerprint(x_train, y_train),
    }
    classes = n_classes if n_classes is not None else int(np.max(y_train)) + 1

    def build() -> MLP:
        torch.manual_seed(seed)
        return MLP(x_train.shape[1], hidden, classes)

    def fit(model: nn.Module) -> None:
        train_classifier(model, x_train, y_train, epochs=epochs, lr=lr, weight_decay=weight_decay, seed=seed)

    return cached_model(name, recipe, build, fit)


def digits_classifier(
    x_train: np.ndarray,
    y_train: np.ndarray,
    *,
    name: str = "digits-mlp",
    hidden: Sequence[int] = (128,),
    epochs: int = 30,
    lr: float = 1e-2,
    weight_decay: float = 0.0,
    seed: int = 0,
) -> MLP:
    """An MLP on 8x8 digits (64 features in [0, 1]), trained once per recipe and cached."""
    return cached_classifier(
        x_train, y_train, name=name, hidden=hidden, epochs=epochs, lr=lr, weight_decay=weight_decay, seed=seed
    )


def _fingerprint(*arrays: np.ndarray) -> str:
    import hashlib

    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def predict_proba(model: nn.Module, x: np.ndarray | torch.Tensor) -> np.ndarray:
    """Softmax probabilities as a numpy array of shape (n, n_classes)."""
    logits = model(torch.as_tensor(x, dtype=torch.float32))
    return torch.softmax(logits, dim=1).numpy()


def accuracy(model: nn.Module, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> float:
    """Fraction of ``x`` classified as ``y``."""
    pred = predict_proba(model, x).argmax(axis=1)
    return float(np.mean(pred == np.asarray(y)))
