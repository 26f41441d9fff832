"""Lab 06 (federated learning): rates the grader computes itself, outside the student's process.

The hidden tests record *raw* artefacts: the final global model's parameter vector, reconstructed
images, what the server sees of an update (masked or noised), an attacker's update, per-case
inferred labels. The grader rebuilds the truth with the lab's own ``aisec`` code from the seeds
carried by the *reference* run's value (the digits split, the victims' images by their indices,
the clip bound) and measures accuracy, backdoor success, reconstruction quality (MSE, SSIM) and
leakage itself. Nothing the truth is measured against is read from the student's value.

Each scorer raises :class:`Malformed` with a fixed message when the student's value does not have
the expected shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from aisec.grading.scorers.common import Malformed, reference_int

N_PARAMS = 2410  # aisec.lab06.fedavg.N_PARAMS (kept literal: importing the lab package is cheap, but this is the contract)
PIXELS = 64
MAX_CASES = 50
MAX_BATCH = 10
MAX_TEST = 600  # digits' test split has 540 images


def _numbers(value: Any, size: int, what: str) -> list[float]:
    if type(value) is not list or len(value) != size:
        raise Malformed(f"{what} does not have the expected length")
    if not all(type(x) in (int, float) and math.isfinite(x) for x in value):
        raise Malformed(f"{what} should hold finite numbers")
    return [float(x) for x in value]


def _vector(student: Any) -> Any:
    import numpy as np

    if not isinstance(student, dict):
        raise Malformed("should be a dict with the model's parameter vector")
    return np.asarray(_numbers(student.get("vector"), N_PARAMS, "the parameter vector"), dtype=np.float64)


@lru_cache(maxsize=4)
def _test_split(seed: int) -> tuple[Any, Any]:
    from aisec.data import digits

    split = digits(seed=seed)
    return split.x_test, split.y_test


# ------------------------------------------------------------------ the global model


def global_accuracy(reference: Any, student: Any) -> float:
    """Reference ``{"data_seed": int, ...}``; student ``{"vector": [2410 floats]}`` (the lab model's
    flat parameters). The accuracy of that model on the test split ``digits(seed=data_seed)``."""
    from aisec.lab06.fedavg import accuracy

    x, y = _test_split(reference_int(reference, "data_seed"))
    return accuracy(_vector(student), x, y)


def backdoor_success(reference: Any, student: Any) -> float:
    """As :func:`global_accuracy`; the fraction of the test images whose label is not
    ``aisec.lab06.poisoning.TARGET`` that the model classifies as the target once the lab's trigger
    is stamped on them."""
    from aisec.lab06.poisoning import backdoor_success as rate

    x, y = _test_split(reference_int(reference, "data_seed"))
    return rate(_vector(student), x, y)


def norm_over_bound(reference: Any, student: Any) -> float:
    """Reference ``{"bound": float}``; student ``{"vector": [2410 floats]}`` (an update). The update's
    L2 norm divided by the bound."""
    import numpy as np

    bound = reference.get("bound") if isinstance(reference, dict) else None
    if type(bound) is not float or not math.isfinite(bound) or bound <= 0:
        raise Malformed("the reference records no bound (an authoring error: tell your instructor)")
    return float(np.linalg.norm(_vector(student))) / bound


# ------------------------------------------------------------------ labels


def label_accuracy(reference: Any, student: Any) -> float:
    """Reference ``{"labels": [[int, ...] per case]}`` (the true labels of each victim batch);
    student ``{"predicted": [[int, ...] per case]}``, one list of the same length per case. The mean
    over cases of the fraction of the true labels the student's list contains."""
    truth = reference.get("labels") if isinstance(reference, dict) else None
    if type(truth) is not list or not truth or not all(type(t) is list and t and all(type(c) is int for c in t) for t in truth):
        raise Malformed("the reference records no labels (an authoring error: tell your instructor)")
    found = student.get("predicted") if isinstance(student, dict) else None
    if type(found) is not list or len(found) != len(truth):
        raise Malformed("should be a dict with a list 'predicted', one list of labels per case")
    total = 0.0
    for t, f in zip(truth, found):
        if type(f) is not list or len(f) != len(t) or not all(type(c) is int for c in f):
            raise Malformed("each case should be a list of int labels, one per image of the batch")
        total += len(set(t) & set(f)) / len(set(t))
    return total / len(truth)


# ------------------------------------------------------------------ reconstructions


def _cases(reference: Any) -> list[Any]:
    """The true images of every case: ``digits(seed).x_test[indices]`` per (seed, indices)."""
    import numpy as np

    seeds = reference.get("data_seeds") if isinstance(reference, dict) else None
    cases = reference.get("cases") if isinstance(reference, dict) else None
    if (type(seeds) is not list or type(cases) is not list or not cases or len(cases) > MAX_CASES
            or len(seeds) != len(cases) or not all(type(s) is int and 0 <= s <= 1_000_000 for s in seeds)
            or not all(type(c) is list and 0 < len(c) <= MAX_BATCH and all(type(i) is int and 0 <= i < MAX_TEST for i in c) for c in cases)):
        raise Malformed("the reference records no victims (an authoring error: tell your instructor)")
    return [np.asarray(_test_split(s)[0][c], dtype=np.float64) for s, c in zip(seeds, cases)]


def _images(student: Any, truths: list[Any]) -> list[Any]:
    import numpy as np

    images = student.get("images") if isinstance(student, dict) else None
    if type(images) is not list or len(images) != len(truths):
        raise Malformed("should be a dict with a list 'images', one batch of images per case")
    out = []
    for batch, truth in zip(images, truths):
        if type(batch) is not list or len(batch) != len(truth):
            raise Malformed("each case should hold one reconstructed image per victim image")
        out.append(np.asarray([_numbers(im, PIXELS, "an image") for im in batch], dtype=np.float64))
    return out


def _quality(reference: Any, student: Any) -> list[tuple[float, float]]:
    from aisec.lab06.leakage import batch_quality

    truths = _cases(reference)
    return [batch_quality(rec, truth) for rec, truth in zip(_images(student, truths), truths)]


def reconstruction_ssim(reference: Any, student: Any) -> float:
    """Reference ``{"data_seeds": [int], "cases": [[test index, ...]]}`` (per case, the victim images
    ``digits(seed).x_test[indices]``); student ``{"images": [[[64 floats] per image] per case]}``.
    The mean over cases of the SSIM (``aisec.lab06.leakage.batch_quality``: images clipped to [0, 1],
    paired with the true ones by least MSE)."""
    return sum(s for _, s in _quality(reference, student)) / len(_cases(reference))


def reconstruction_mse(reference: Any, student: Any) -> float:
    """As :func:`reconstruction_ssim`; the mean over cases of the mean squared error."""
    return sum(m for m, _ in _quality(reference, student)) / len(_cases(reference))


def analytic_leakage_ssim(reference: Any, student: Any) -> float:
    """Reference as for :func:`reconstruction_ssim`; student ``{"updates": [[2410 floats] per case]}``
    (what an attacker sees of the victim's update: masked, noised...). The grader runs its own attack,
    ``aisec.lab06.leakage.analytic_reconstruction``, on each update and returns the mean over cases of
    the best SSIM between the reconstruction and the case's true images."""
    import numpy as np

    from aisec.lab06.leakage import analytic_reconstruction, ssim

    truths = _cases(reference)
    updates = student.get("updates") if isinstance(student, dict) else None
    if type(updates) is not list or len(updates) != len(truths):
        raise Malformed("should be a dict with a list 'updates', one per case")
    total = 0.0
    for update, truth in zip(updates, truths):
        rec = analytic_reconstruction(np.asarray(_numbers(update, N_PARAMS, "an update"), dtype=np.float64))
        total += max(ssim(rec, t) for t in truth)
    return total / len(truths)


SCORERS: dict[str, Callable[[Any, Any], float]] = {
    "lab06.global_accuracy": global_accuracy,
    "lab06.backdoor_success": backdoor_success,
    "lab06.norm_over_bound": norm_over_bound,
    "lab06.label_accuracy": label_accuracy,
    "lab06.reconstruction_ssim": reconstruction_ssim,
    "lab06.reconstruction_mse": reconstruction_mse,
    "lab06.analytic_leakage_ssim": analytic_leakage_ssim,
}
