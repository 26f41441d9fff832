"""Federated learning on the course's digits: the model, non-IID clients, local training, the loop.

Everything is a flat float64 parameter vector (numpy) between client and server, the way a
federated protocol ships it; the model is rebuilt from the vector on each side. The model is a
small MLP with a **sigmoid** hidden layer (64 -> 32 -> 10, 2,410 parameters): twice
differentiable, as gradient-matching attacks need (Zhu et al. 2019 use sigmoids for that reason).

The federated loop (:func:`run_federated`) is FedAvg's (McMahan et al. 2017): each round every
client starts from the global model, runs ``local_epochs`` of minibatch SGD on its own data and
sends its *update* (local model minus global model); ``aggregate(updates, n_samples)`` combines
the updates and the server adds the result to the global model. The aggregation rule is an
argument on purpose: the lab writes FedAvg's, the robust ones are in :mod:`aisec.lab06.robust`.
A client may be replaced by an *attacker*: a callable that returns whatever update it likes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported inside the functions: importing this module stays cheap
    import torch

#: Sizes of the lab's model: 64 pixels -> HIDDEN sigmoid units -> 10 classes.
N_FEATURES, HIDDEN, N_CLASSES = 64, 32, 10
#: Number of parameters of :func:`make_model` (first layer weight and bias, then the head's).
N_PARAMS = HIDDEN * N_FEATURES + HIDDEN + N_CLASSES * HIDDEN + N_CLASSES

#: Aggregation rule: (updates, n_samples per client) -> the update the server applies.
Aggregate = Callable[[list[np.ndarray], list[int]], np.ndarray]
#: Attacker: (round, global vector, its own x, its own y) -> the update it sends.
Attacker = Callable[[int, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def make_model(seed: int) -> "torch.nn.Sequential":
    """The lab's MLP (Linear(64, 32) -> Sigmoid -> Linear(32, 10)), initialised from ``seed``."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(N_FEATURES, HIDDEN), torch.nn.Sigmoid(), torch.nn.Linear(HIDDEN, N_CLASSES)
    )
    with torch.no_grad():  # PyTorch's default init, drawn from our own generator (no global state)
        for layer in (model[0], model[2]):
            bound = 1.0 / layer.in_features**0.5
            layer.weight.uniform_(-bound, bound, generator=gen)
            layer.bias.uniform_(-bound, bound, generator=gen)
    return model


def initial_vector(seed: int) -> np.ndarray:
    """The flat parameter vector (float64, length :data:`N_PARAMS`) of ``make_model(seed)``."""
    return get_vector(make_model(seed))


def get_vector(model: "torch.nn.Module") -> np.ndarray:
    """The model's parameters, flattened in ``model.parameters()`` order, as float64."""
    return np.concatenate([p.detach().double().numpy().ravel() for p in model.parameters()])


def set_vector(model: "torch.nn.Module", vector: np.ndarray) -> "torch.nn.Module":
    """Load a flat parameter vector into ``model`` (in place) and return it."""
    import torch

    vector = np.asarray(vector, dtype=np.float64)
    if vector.shape != (sum(p.numel() for p in model.parameters()),):
        raise ValueError(f"expected a flat vector of {sum(p.numel() for p in model.parameters())} parameters")
    offset = 0
    with torch.no_grad():
        for p in model.parameters():
            n = p.numel()
            p.copy_(torch.as_tensor(vector[offset : offset + n], dtype=p.dtype).reshape(p.shape))
            offset += n
    return model


def model_from_vector(vector: np.ndarray) -> "torch.nn.Sequential":
    """A fresh lab model holding ``vector`` (in eval mode)."""
    return set_vector(make_model(0), vector).eval()


def predict(vector: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Predicted classes (int64) of the model ``vector`` on images ``x`` (n, 64)."""
    import torch

    with torch.no_grad():
        return model_from_vector(vector)(torch.as_tensor(x, dtype=torch.float32)).argmax(dim=1).numpy()


def accuracy(vector: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of ``x`` the model ``vector`` classifies as ``y``."""
    return float(np.mean(predict(vector, x) == np.asarray(y)))


# ------------------------------------------------------------------------------ clients


def partition_dirichlet(y: np.ndarray, n_clients: int, alpha: float, seed: int, min_size: int = 10) -> list[np.ndarray]:
    """Split sample indices among ``n_clients`` with label proportions drawn from Dirichlet(alpha)
    per class (Hsu et al. 2019): small ``alpha`` = each client sees few classes (non-IID), large
    ``alpha`` = IID. Redraws until every client has ``min_size`` samples. Returns sorted int64
    index arrays that together cover every index exactly once."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    for _ in range(1000):
        parts: list[list[int]] = [[] for _ in range(n_clients)]
        for c in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == c))
            cuts = (np.cumsum(rng.dirichlet(np.full(n_clients, alpha))) * len(idx)).astype(int)[:-1]
            for k, chunk in enumerate(np.split(idx, cuts)):
                parts[k] += chunk.tolist()
        if min(len(p) for p in parts) >= min_size:
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    raise ValueError("could not give every client min_size samples: lower min_size or raise alpha")


def partition_shards(y: np.ndarray, n_clients: int, classes_per_client: int, seed: int) -> list[np.ndarray]:
    """McMahan et al.'s pathological non-IID split: sort by label, cut into
    ``n_clients * classes_per_client`` shards, deal ``classes_per_client`` shards to each client.
    Returns sorted int64 index arrays covering every index exactly once."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    order = np.argsort(y, kind="stable")
    shards = np.array_split(order, n_clients * classes_per_client)
    deal = rng.permutation(len(shards)).reshape(n_clients, classes_per_client)
    return [np.sort(np.concatenate([shards[s] for s in row]).astype(np.int64)) for row in deal]


# ------------------------------------------------------------------------ local training


def _unpack(vector: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Views of the flat vector as (W1 (32, 64), b1 (32,), W2 (10, 32), b2 (10,))."""
    a = HIDDEN * N_FEATURES
    b = a + HIDDEN
    c = b + N_CLASSES * HIDDEN
    return (vector[:a].reshape(HIDDEN, N_FEATURES), vector[a:b], vector[b:c].reshape(N_CLASSES, HIDDEN), vector[c:])


def loss_gradient(vector: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The gradient (flat, float64) of the mean cross-entropy of the model ``vector`` on the batch
    ``(x, y)``: exactly what one client shares in FedSGD. Computed in numpy (backpropagation by
    hand), equal to torch's autograd on :func:`make_model` up to float rounding."""
    w1, b1, w2, b2 = _unpack(np.asarray(vector, dtype=np.float64))
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    h = 1.0 / (1.0 + np.exp(-(x @ w1.T + b1)))
    z = h @ w2.T + b2
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    dz = p / len(y)
    dh = (dz @ w2) * h * (1.0 - h)
    return np.concatenate([(dh.T @ x).ravel(), dh.sum(axis=0), (dz.T @ h).ravel(), dz.sum(axis=0)])


def local_train(
    vector: np.ndarray, x: np.ndarray, y: np.ndarray, *, epochs: int = 1, lr: float = 0.5,
    batch_size: int = 16, seed: int = 0,
) -> np.ndarray:
    """Minibatch SGD (mean cross-entropy, :func:`loss_gradient`) from the model ``vector`` on
    ``(x, y)``; each epoch's batch order is ``np.random.default_rng(seed).permutation``. Returns the
    *local model* (a new flat vector); ``vector`` is not modified."""
    w = np.array(vector, dtype=np.float64, copy=True)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(y), batch_size):
            idx = order[start : start + batch_size]
            w -= lr * loss_gradient(w, x[idx], y[idx])
    return w


def local_update(vector: np.ndarray, x: np.ndarray, y: np.ndarray, **train: object) -> np.ndarray:
    """What an honest client sends: ``local_train(vector, x, y, **train) - vector``."""
    return local_train(vector, x, y, **train) - np.asarray(vector, dtype=np.float64)  # type: ignore[arg-type]


def train_centralised(x: np.ndarray, y: np.ndarray, *, epochs: int, seed: int, lr: float = 0.5,
                      batch_size: int = 16) -> np.ndarray:
    """The baseline: the same model and SGD on all the data in one place (cached)."""
    from aisec.cache import cached_state_dict
    from aisec.models import _fingerprint

    import torch

    recipe = {"epochs": epochs, "seed": seed, "lr": lr, "batch_size": batch_size, "data": _fingerprint(x, y),
              "trainer": "numpy-sgd-1"}

    def train() -> dict[str, "torch.Tensor"]:
        vec = local_train(initial_vector(seed), x, y, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
        return {"vector": torch.as_tensor(vec)}

    return cached_state_dict("lab06-central", recipe, train)["vector"].numpy().astype(np.float64)


# --------------------------------------------------------------------------- the loop


@dataclass
class FedResult:
    """Outcome of :func:`run_federated`: the final global ``vector`` and, per round, the global
    model's accuracy on the evaluation set (``accuracy[r]`` after round ``r + 1``)."""

    vector: np.ndarray
    accuracy: list[float] = field(default_factory=list)


def run_federated(
    clients: Sequence[tuple[np.ndarray, np.ndarray]],
    aggregate: Aggregate,
    *,
    rounds: int,
    seed: int,
    start: np.ndarray | None = None,
    local_epochs: int = 1,
    lr: float = 0.5,
    batch_size: int = 16,
    server_lr: float = 1.0,
    attackers: dict[int, Attacker] | None = None,
    eval_data: tuple[np.ndarray, np.ndarray] | None = None,
    progress: bool = False,
    desc: str = "federated rounds",
) -> FedResult:
    """FedAvg's loop with a pluggable ``aggregate`` (see the module docstring).

    Every client takes part in every round. Client ``k`` trains with seed
    ``seed * 100_003 + 1_000 * round + k`` (so runs are reproducible); attackers (client index ->
    :data:`Attacker`) replace the honest client's update with their own. The global model starts
    at ``start`` (default ``initial_vector(seed)``) and moves by ``server_lr * aggregate(...)``.
    """
    from tqdm.auto import tqdm

    attackers = attackers or {}
    glob = np.array(initial_vector(seed) if start is None else start, dtype=np.float64)
    sizes = [len(y) for _, y in clients]
    result = FedResult(glob)
    for r in tqdm(range(rounds), desc=desc, disable=not progress, leave=False):
        updates = []
        for k, (x, y) in enumerate(clients):
            if k in attackers:
                updates.append(np.asarray(attackers[k](r, glob.copy(), x, y), dtype=np.float64))
            else:
                updates.append(local_update(glob, x, y, epochs=local_epochs, lr=lr, batch_size=batch_size,
                                            seed=seed * 100_003 + 1_000 * r + k))
        step = np.asarray(aggregate(updates, list(sizes)), dtype=np.float64)
        if step.shape != glob.shape or not np.all(np.isfinite(step)):
            raise ValueError("the aggregate must be a finite vector of the model's size")
        glob = glob + server_lr * step
        if eval_data is not None:
            result.accuracy.append(accuracy(glob, *eval_data))
    result.vector = glob
    return result


# ------------------------------------------------------------------- the lab's federation


def make_clients(seed: int, n_clients: int = 10, alpha: float = 0.5, min_size: int = 10) -> list[tuple[np.ndarray, np.ndarray]]:
    """The lab's federation: ``digits(seed)``'s training split dealt to ``n_clients`` clients with
    :func:`partition_dirichlet` (``alpha``, ``seed``); a list of ``(x, y)`` per client."""
    from aisec.data import digits

    split = digits(seed)
    parts = partition_dirichlet(split.y_train, n_clients, alpha, seed, min_size=min_size)
    return [(split.x_train[p], split.y_train[p]) for p in parts]


def pretrained_global(seed: int, *, n_clients: int = 10, alpha: float = 0.5, rounds: int = 20,
                      local_epochs: int = 2) -> np.ndarray:
    """A global model after ``rounds`` rounds of honest federated averaging (equal weights,
    :func:`aisec.lab06.robust.mean`) on :func:`make_clients` of ``seed``: where the poisoning
    experiments start, as Bagdasaryan et al. attack a model close to convergence. Cached."""
    import torch

    from aisec.cache import cached_state_dict
    from aisec.lab06.robust import mean

    recipe = {"seed": seed, "n_clients": n_clients, "alpha": alpha, "rounds": rounds, "local_epochs": local_epochs,
              "trainer": "numpy-sgd-1"}

    def train() -> dict[str, "torch.Tensor"]:
        clients = make_clients(seed, n_clients, alpha)
        vec = run_federated(clients, mean, rounds=rounds, seed=seed, local_epochs=local_epochs).vector
        return {"vector": torch.as_tensor(vec)}

    return cached_state_dict("lab06-global", recipe, train)["vector"].numpy().astype(np.float64)
