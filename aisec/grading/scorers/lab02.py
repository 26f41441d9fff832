"""Lab 02 (model inversion): the grader measures reconstructions itself, outside the student's process.

A hidden test records the student's reconstructed images (rows of 64 pixels in [0, 1], rounded to
4 decimals) together with the seed of the digits split and the target class of each row. The
scorer takes the seed and the targets from the *reference* run's value and rebuilds, with the
lab's own seeded and cached ``aisec`` code, the attacked model (``digits_classifier``), the judge
(``independent_digit_classifier`` on the test split) and the class means of the training split;
only the images are read from the student's value. It then measures the judge's recognition rate,
the attacked model's confidence in each target, or the correlation with the target's class mean.

A defended API is graded on benign inputs as well: the hidden test records the API's raw outputs on the
hidden seed's test images (rounded to 4 decimals; the reference's ``indices`` say which images were sent, in
which order), :func:`top1_agreement` compares their top-1 labels with the rebuilt attacked model's own, and
:func:`served_in_full` checks that benign users got the model's full confidences, not only a label.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from aisec.grading.scorers.common import Malformed

PIXELS = 64
MAX_IMAGES = 100


@lru_cache(maxsize=4)
def _digits_setup(seed: int) -> tuple[Any, Any, Any]:
    """The attacked model, the judge and the class means the hidden tests build for ``seed``."""
    from aisec.data import digits
    from aisec.lab02.inversion import class_means, independent_digit_classifier
    from aisec.models import digits_classifier

    split = digits(seed)
    model = digits_classifier(split.x_train, split.y_train, seed=seed)
    judge = independent_digit_classifier(split.x_test, split.y_test, seed=seed)
    return model, judge, class_means(split.x_train, split.y_train)


def _truth(reference: Any) -> tuple[int, list[int]]:
    seed, targets = (reference.get("seed"), reference.get("targets")) if isinstance(reference, dict) else (None, None)
    if (
        type(seed) is not int
        or not 0 <= seed < 2**31
        or type(targets) is not list
        or not 0 < len(targets) <= MAX_IMAGES
        or not all(type(t) is int and 0 <= t < 10 for t in targets)
    ):
        raise Malformed("the reference records no seed and targets (an authoring error: tell your instructor)")
    return seed, targets


def _images(student: Any, field: str, n: int) -> Any:
    """The student's ``field``: ``n`` rows of 64 finite pixels in [0, 1], as a float64 array."""
    import numpy as np

    rows = student.get(field) if isinstance(student, dict) else None
    if type(rows) is not list or len(rows) != n:
        raise Malformed("should hold one reconstructed image per target class")
    if not all(type(r) is list and len(r) == PIXELS for r in rows):
        raise Malformed("each image should be a list of 64 pixels")
    if not all(type(p) in (int, float) and math.isfinite(p) and -1e-6 <= p <= 1 + 1e-6 for r in rows for p in r):
        raise Malformed("pixels should be finite numbers in [0, 1]")
    return np.asarray(rows, dtype=np.float64)


def _rate(seed: int, targets: list[int], images: Any) -> float:
    import numpy as np

    _, judge, _ = _digits_setup(seed)
    return float(np.mean(judge.predict(images) == np.asarray(targets)))


def judge_rate(reference: Any, student: Any) -> float:
    """``{"seed": int, "targets": [int], "images": [[64 floats], ...]}``: the fraction of images the
    independent judge classifies as their target."""
    seed, targets = _truth(reference)
    return _rate(seed, targets, _images(student, "images", len(targets)))


def judge_rate_drop(reference: Any, student: Any) -> float:
    """``{"seed", "targets", "images", "images_defended"}``: the judge's recognition rate of
    ``images`` minus that of ``images_defended`` (the same attack against a defended API)."""
    seed, targets = _truth(reference)
    plain = _images(student, "images", len(targets))
    defended = _images(student, "images_defended", len(targets))
    return _rate(seed, targets, plain) - _rate(seed, targets, defended)


def target_confidence(reference: Any, student: Any) -> float:
    """``{"seed", "targets", "images"}``: the smallest confidence the attacked model gives an
    image's target class."""
    import numpy as np
    import torch

    seed, targets = _truth(reference)
    images = _images(student, "images", len(targets))
    model, _, _ = _digits_setup(seed)
    with torch.no_grad():
        probs = torch.softmax(model(torch.as_tensor(images, dtype=torch.float32)), dim=1).numpy()
    return float(probs[np.arange(len(targets)), targets].min())


def class_mean_correlation(reference: Any, student: Any) -> float:
    """``{"seed", "targets", "images"}``: the mean Pearson correlation of each image with its
    target's class mean (0 for a constant image)."""
    import numpy as np

    seed, targets = _truth(reference)
    images = _images(student, "images", len(targets))
    _, _, means = _digits_setup(seed)
    total = 0.0
    for image, target in zip(images, targets):
        a, b = image - image.mean(), means[target] - means[target].mean()
        norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
        total += float((a * b).sum()) / norm if norm > 0 else 0.0
    return total / len(targets)


def _api_answers(reference: Any, student: Any) -> tuple[Any, Any, Any]:
    """The hidden seed's test images the hidden test sent, in order (the reference's ``indices``, else every
    test image once), the API's answer rows for them (float64, shape (n, 10)), and the rebuilt attacked model."""
    import numpy as np
    import torch

    from aisec.data import digits

    seed = reference.get("seed") if isinstance(reference, dict) else None
    if type(seed) is not int or not 0 <= seed < 2**31:
        raise Malformed("the reference records no seed (an authoring error: tell your instructor)")
    x_test = digits(seed).x_test
    indices = reference.get("indices", list(range(len(x_test))))
    if type(indices) is not list or not indices or len(indices) > 4 * len(x_test) or not all(
            type(i) is int and 0 <= i < len(x_test) for i in indices):
        raise Malformed("the reference records no valid indices (an authoring error: tell your instructor)")
    rows = student.get("outputs") if isinstance(student, dict) else None
    if type(rows) is not list or len(rows) != len(indices):
        raise Malformed("should hold one output row per image sent")
    if not all(type(r) is list and len(r) == 10 for r in rows):
        raise Malformed("each output row should be a list of 10 confidences")
    if not all(type(p) in (int, float) and math.isfinite(p) for r in rows for p in r):
        raise Malformed("confidences should be finite numbers")
    model, _, _ = _digits_setup(seed)
    return torch.as_tensor(x_test[indices], dtype=torch.float32), np.asarray(rows, dtype=np.float64), model


def top1_agreement(reference: Any, student: Any) -> float:
    """``{"seed": int, "outputs": [[10 floats], ...]}``, with optional ``"indices"`` in the reference: the
    fraction of the images sent (``digits(seed).x_test[indices]``, in order; without indices every test image
    once) on which the argmax of the API's output row is the rebuilt attacked model's own top-1 class (ties go
    to the first class, as ``numpy.argmax`` does)."""
    import numpy as np
    import torch

    images, rows, model = _api_answers(reference, student)
    with torch.no_grad():
        own = model(images).argmax(dim=1).numpy()
    return float(np.mean(rows.argmax(axis=1) == own))


FULL_ANSWER_TOLERANCE = 0.01  # answers are recorded rounded to 4 decimals; rounding to 2 still counts as in full


def served_in_full(reference: Any, student: Any) -> float:
    """Same data as :func:`top1_agreement`: the fraction of the images sent whose answer row is the rebuilt
    model's full confidence vector (every entry within 0.01 of the model's softmax). A label-only or a
    coarsely rounded answer is not served in full."""
    import numpy as np
    import torch

    images, rows, model = _api_answers(reference, student)
    with torch.no_grad():
        own = torch.softmax(model(images), dim=1).double().numpy()
    return float(np.mean(np.abs(rows - own).max(axis=1) <= FULL_ANSWER_TOLERANCE))


SCORERS: dict[str, Callable[[Any, Any], float]] = {
    "lab02.judge_rate": judge_rate,
    "lab02.judge_rate_drop": judge_rate_drop,
    "lab02.target_confidence": target_confidence,
    "lab02.class_mean_correlation": class_mean_correlation,
    "lab02.top1_agreement": top1_agreement,
    "lab02.served_in_full": served_in_full,
}
