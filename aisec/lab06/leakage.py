"""What one shared gradient or update gives away: the victims, an analytic attack, and the metrics.

* :func:`victims` picks the hidden clients' training images (digits test split, seeded);
* :func:`shared_update` is what a client sends after ``steps`` local SGD steps on its batch
  (``steps=1`` with ``lr=1`` is minus the gradient: FedSGD);
* :func:`analytic_reconstruction` inverts a fully connected first layer with a bias: for one
  sample the gradient of hidden unit ``i`` is ``dW1[i] = d_i * x`` and ``db1[i] = d_i``, so
  ``x = dW1[i] / db1[i]`` (Phong et al. 2018, *Privacy-preserving deep learning via additively
  homomorphic encryption*; Geiping et al. 2020, section 4). Exact for one image, even after
  several local steps; a blend for a batch. The lab's *graded* attack is the optimisation
  attack (DLG), which the student writes; this one is the grader's yardstick for the defences.
* :func:`mse` and :func:`ssim` measure a reconstruction; :func:`match_batch` pairs the images
  of a batch reconstruction with the true ones (the order of a batch is not identifiable).

SSIM is Wang, Bovik, Sheikh and Simoncelli (2004), *Image quality assessment: from error
visibility to structural similarity*, IEEE TIP 13(4), with K1 = 0.01, K2 = 0.03, data range 1,
sample covariances and the mean over all **3x3** windows inside the 8x8 image (the formula of
``skimage.metrics.structural_similarity`` with ``win_size=3``; scikit-image is not a course
dependency, and its default 7x7 window leaves 4 positions on an 8x8 digit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aisec.lab06.fedavg import local_train


@dataclass(frozen=True)
class Victim:
    """A client's private batch: ``x`` (b, 64) float32 images in [0, 1] and ``y`` (b,) labels."""

    x: np.ndarray
    y: np.ndarray
    indices: np.ndarray


def victim_indices(seed: int, batch_size: int, distinct_labels: bool = True, draw: int = 0) -> np.ndarray:
    """Indices into ``digits(seed).x_test`` of a victim batch (with distinct labels by default,
    so that label inference is well posed); drawn with ``np.random.default_rng([seed, draw, 7919])``:
    ``draw`` picks other victims from the same split (cheaper than another split)."""
    from aisec.data import digits

    y = digits(seed).y_test
    rng = np.random.default_rng([seed, draw, 7919])
    if not distinct_labels:
        return np.sort(rng.choice(len(y), size=batch_size, replace=False)).astype(np.int64)
    if batch_size > 10:
        raise ValueError("distinct labels allow at most 10 images per batch")
    labels = rng.choice(10, size=batch_size, replace=False)
    return np.array([rng.choice(np.flatnonzero(y == c)) for c in labels], dtype=np.int64)


def victims(seed: int, batch_size: int, distinct_labels: bool = True, draw: int = 0) -> Victim:
    """The victim batch of :func:`victim_indices` with its images and labels."""
    from aisec.data import digits

    split = digits(seed)
    idx = victim_indices(seed, batch_size, distinct_labels, draw)
    return Victim(split.x_test[idx], split.y_test[idx], idx)


def shared_update(vector: np.ndarray, x: np.ndarray, y: np.ndarray, *, steps: int = 1, lr: float = 1.0) -> np.ndarray:
    """The update a client shares after ``steps`` full-batch SGD steps on ``(x, y)`` from the global
    model ``vector``: ``local model - vector``. With ``steps=1, lr=1`` it is minus the gradient."""
    return local_train(vector, x, y, epochs=steps, lr=lr, batch_size=len(y), seed=0) - np.asarray(vector, np.float64)


def analytic_reconstruction(shared: np.ndarray) -> np.ndarray:
    """One image (64,) recovered from a shared gradient or update of the lab's model, clipped to
    [0, 1]: the ratio ``dW1[i] / db1[i]`` of every hidden unit, averaged with weights ``db1[i]**2``
    (units the sample barely moved are noise). Meaningless input (all zeros) gives zeros."""
    from aisec.lab06.fedavg import HIDDEN, N_FEATURES

    shared = np.asarray(shared, dtype=np.float64)
    dw = shared[: HIDDEN * N_FEATURES].reshape(HIDDEN, N_FEATURES)
    db = shared[HIDDEN * N_FEATURES : HIDDEN * N_FEATURES + HIDDEN]
    weight = db**2
    if not np.isfinite(weight.sum()) or weight.sum() == 0.0:
        return np.zeros(N_FEATURES)
    safe = np.where(db == 0.0, 1.0, db)
    ratios = dw / safe[:, None]
    return np.clip((weight[:, None] * ratios).sum(axis=0) / weight.sum(), 0.0, 1.0)


# ------------------------------------------------------------------------------ metrics


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error between two images (or batches of images) of the same shape."""
    return float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))


def ssim(a: np.ndarray, b: np.ndarray, *, window: int = 3) -> float:
    """Structural similarity of two 8x8 images (flat (64,) or (8, 8)) in [0, 1]; see the module
    docstring for the exact definition. 1.0 for identical images, about 0 for unrelated ones."""
    from numpy.lib.stride_tricks import sliding_window_view

    x = np.asarray(a, np.float64).reshape(8, 8)
    y = np.asarray(b, np.float64).reshape(8, 8)
    c1, c2 = (0.01 * 1.0) ** 2, (0.03 * 1.0) ** 2
    wx = sliding_window_view(x, (window, window)).reshape(-1, window * window)
    wy = sliding_window_view(y, (window, window)).reshape(-1, window * window)
    n = window * window
    mx, my = wx.mean(axis=1), wy.mean(axis=1)
    vx = ((wx - mx[:, None]) ** 2).sum(axis=1) / (n - 1)
    vy = ((wy - my[:, None]) ** 2).sum(axis=1) / (n - 1)
    cxy = ((wx - mx[:, None]) * (wy - my[:, None])).sum(axis=1) / (n - 1)
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s.mean())


def match_batch(reconstructed: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """For a batch reconstruction (b, 64) and the true batch (b, 64): the permutation ``p`` such
    that ``reconstructed[p[i]]`` is paired with ``truth[i]``, minimising the total MSE (Hungarian
    algorithm, ``scipy.optimize.linear_sum_assignment``)."""
    from scipy.optimize import linear_sum_assignment

    r = np.asarray(reconstructed, np.float64).reshape(len(reconstructed), -1)
    t = np.asarray(truth, np.float64).reshape(len(truth), -1)
    cost = ((t[:, None, :] - r[None, :, :]) ** 2).mean(axis=2)
    rows, cols = linear_sum_assignment(cost)
    return cols[np.argsort(rows)]


def batch_quality(reconstructed: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Mean MSE and mean SSIM of a batch reconstruction against the truth, after
    :func:`match_batch`; reconstructions are clipped to [0, 1] first."""
    r = np.clip(np.asarray(reconstructed, np.float64).reshape(len(reconstructed), -1), 0.0, 1.0)
    t = np.asarray(truth, np.float64).reshape(len(truth), -1)
    p = match_batch(r, t)
    return float(np.mean([mse(r[p[i]], t[i]) for i in range(len(t))])), float(np.mean([ssim(r[p[i]], t[i]) for i in range(len(t))]))
