"""Lab 03 (adversarial examples): the grader rebuilds the lab's targets and measures the attacks
and defences itself, outside the student's process.

A hidden test records *artefacts*, never a rate: the adversarial digit images an attack made,
the weights of a trained model (``state_dict`` as nested lists), the texts an attack or a
defence produced. The grader rebuilds the target from the lab's own trusted code and the fixed
seed the reference run recorded (the same cached digits reader, :func:`aisec.models.
digits_classifier`, and the same spam filter, :func:`aisec.lab03.adversarial.spam_filter`, as the
hidden test used in the sandbox) and measures accuracy, agreement or evasion on them. The truth
(labels, clean hidden images, original texts, budgets) comes from the reference run's value or
from ``aisec`` code with that seed; only the artefact is read from the student's value.

Budgets are enforced here too: an adversarial image further than ε (L∞) from its clean image,
or with pixels outside [0, 1], counts as *not* adversarial; an evasive text that substitutes
more characters than the budget, or anything but a listed homoglyph, counts as caught.

Rebuilt models and data are cached per seed (``functools.lru_cache``; the weights themselves
come from the on-disk model cache the reference run filled, so they are bit-identical to the
sandbox's). Heavy imports happen inside the functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from aisec.grading.scorers.common import Malformed, reference_int

PIXELS = 64  # an 8x8 digit, flattened
MAX_IMAGES = 600  # the hidden digits test set has 540 images
MAX_TEXTS = 100
MAX_TEXT_CHARS = 2000
PIXEL_TOLERANCE = 1e-4  # images are recorded rounded to 4 decimals (an error of at most 5e-5)
MAX_PARAMETERS = 20_000  # the lab's MLPs have fewer than 10,000
PGD_STEPS = 20  # the hidden tests' reference PGD: no random start, step eps/4


# ------------------------------------------------------------------- reading the reference


def _ref_eps(reference: Any) -> float:
    value = reference.get("eps") if isinstance(reference, dict) else None
    if type(value) not in (int, float) or not 0.0 <= value <= 1.0:
        raise Malformed("the reference records no eps (an authoring error: tell your instructor)")
    return float(value)


def _ref_labels(reference: Any) -> list[int]:
    labels = reference.get("labels") if isinstance(reference, dict) else None
    if not isinstance(labels, list) or not labels or len(labels) > MAX_IMAGES or not all(type(v) is int for v in labels):
        raise Malformed("the reference records no labels (an authoring error: tell your instructor)")
    return labels


def _ref_texts(reference: Any, name: str) -> list[str]:
    texts = reference.get(name) if isinstance(reference, dict) else None
    if not isinstance(texts, list) or not texts or len(texts) > MAX_TEXTS or not all(type(t) is str for t in texts):
        raise Malformed(f"the reference records no {name} (an authoring error: tell your instructor)")
    return texts


# ---------------------------------------------------------- the lab's targets, rebuilt


@lru_cache(maxsize=4)
def _digits(seed: int) -> Any:
    """The hidden digits split (:func:`aisec.data.digits`) of this seed."""
    from aisec.data import digits

    return digits(seed)


@lru_cache(maxsize=4)
def _target(seed: int) -> Any:
    """The lab's digits reader on that split, as the hidden tests build it (cached weights)."""
    from aisec.models import digits_classifier

    split = _digits(seed)
    model = digits_classifier(split.x_train, split.y_train, seed=seed)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@lru_cache(maxsize=2)
def _spam_filter(seed: int) -> Any:
    """The lab's spam filter (:func:`aisec.lab03.adversarial.spam_filter`) of this seed."""
    from aisec.lab03.adversarial import spam_filter

    return spam_filter(seed)


def _test_set(reference: Any, start: int = 0) -> tuple[Any, Any]:
    """Clean hidden images ``x_test[start:start + n]`` (float32 tensor) and the reference's
    labels for them, checked against the split's own labels."""
    import numpy as np
    import torch

    seed = reference_int(reference, "seed")
    labels = _ref_labels(reference)
    split = _digits(seed)
    x = split.x_test[start : start + len(labels)]
    if len(x) != len(labels) or split.y_test[start : start + len(labels)].tolist() != labels:
        raise Malformed("the reference's labels do not match the lab's hidden digits (an authoring error: tell your instructor)")
    return torch.as_tensor(np.ascontiguousarray(x)), torch.as_tensor(labels, dtype=torch.long)


def _correct(model: Any, x: Any, y: Any) -> Any:
    import torch

    with torch.no_grad():
        return model(x).argmax(dim=1) == y


def _reference_pgd(model: Any, x: Any, y: Any, eps: float, steps: int = PGD_STEPS) -> Any:
    """The hidden tests' reference PGD: L-infinity, no random start, step eps/4, projected."""
    import torch
    import torch.nn.functional as F

    x_adv = x.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
        x_adv = torch.min(torch.max(x_adv.detach() + eps / 4 * grad.sign(), x - eps), x + eps).clamp(0, 1)
    return x_adv.detach()


def _reference_fgsm(model: Any, x: Any, y: Any, eps: float) -> Any:
    import torch
    import torch.nn.functional as F

    x_grad = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x_grad), y), x_grad)
    return (x + eps * grad.sign()).clamp(0, 1).detach()


# ------------------------------------------------------------ reading the student's value


def _finite_number(v: Any) -> bool:
    return (type(v) is float and math.isfinite(v)) or type(v) is int


def _images(student: Any, n: int) -> Any:
    """``student["images"]``: n rows of 64 finite numbers, as a float32 tensor."""
    import torch

    rows = student.get("images") if isinstance(student, dict) else None
    if not isinstance(rows, list) or len(rows) != n:
        raise Malformed("should be a dict whose 'images' has one row per hidden test image")
    for row in rows:
        if not isinstance(row, list) or len(row) != PIXELS or not all(_finite_number(v) for v in row):
            raise Malformed("each adversarial image should be a list of 64 finite numbers")
    return torch.tensor(rows, dtype=torch.float64)


def _within_budget(clean: Any, adv: Any, eps: float) -> Any:
    """Per image: within the L-infinity ball of radius eps around the clean image and inside
    [0, 1], up to the rounding of the record."""
    clean = clean.double()
    close = ((adv - clean).abs() <= eps + PIXEL_TOLERANCE).all(dim=1)
    valid = ((adv >= -PIXEL_TOLERANCE) & (adv <= 1 + PIXEL_TOLERANCE)).all(dim=1)
    return close & valid


def _state_dict(student: Any, hidden: tuple[int, ...]) -> Any:
    """``student["weights"]``: the ``state_dict`` of an ``MLP(64, hidden, 10)`` as nested lists,
    loaded into a fresh module of that architecture (eval mode, no gradients)."""
    import torch

    from aisec.models import MLP

    model = MLP(PIXELS, hidden, 10)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    weights = student.get("weights") if isinstance(student, dict) else None
    shape_text = f"MLP(64, {tuple(hidden)}, 10)"
    if not isinstance(weights, dict) or set(weights) != set(expected):
        raise Malformed(f"should be a dict whose 'weights' is the state_dict of an {shape_text}")
    state = {}
    for name, shape in expected.items():
        tensor = _tensor(weights[name], shape)
        if tensor is None:
            raise Malformed(f"the weights do not have the shapes of an {shape_text}, or hold non-finite numbers")
        state[name] = tensor
    model.load_state_dict(state)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _tensor(value: Any, shape: tuple[int, ...]) -> Any:
    """A float32 tensor of exactly ``shape`` from nested lists of finite numbers, else None."""
    import torch

    if len(shape) == 1:
        if not isinstance(value, list) or len(value) != shape[0] or not all(_finite_number(v) for v in value):
            return None
        return torch.tensor(value, dtype=torch.float32)
    if not isinstance(value, list) or len(value) != shape[0]:
        return None
    rows = [_tensor(row, shape[1:]) for row in value]
    if any(r is None for r in rows):
        return None
    return torch.stack(rows)


def _texts(student: Any, n: int) -> list[str]:
    texts = student.get("texts") if isinstance(student, dict) else None
    if not isinstance(texts, list) or len(texts) != n:
        raise Malformed("should be a dict whose 'texts' has one str per hidden message")
    if not all(type(t) is str and len(t) <= MAX_TEXT_CHARS for t in texts):
        raise Malformed("each text should be a str of reasonable length")
    return texts


# ------------------------------------------------------------------------ Q1, Q2: attacks


def adversarial_accuracy(reference: Any, student: Any) -> float:
    """Reference ``{"seed": int, "eps": float, "labels": [int] * n}``; student ``{"images":
    [[64 floats]] * n}``, adversarial versions of the first n hidden test digits of that seed.
    The accuracy of the lab's target (rebuilt for that seed) on the student's images, an image
    outside the eps-ball of its clean image or outside [0, 1] counting as correctly classified."""
    x, y = _test_set(reference)
    eps = _ref_eps(reference)
    adv = _images(student, len(y))
    model = _target(reference_int(reference, "seed"))
    fooled = ~_correct(model, adv.float(), y) & _within_budget(x, adv, eps)
    return 1.0 - float(fooled.double().mean())


def pgd_minus_fgsm_accuracy(reference: Any, student: Any) -> float:
    """As :func:`adversarial_accuracy`, minus the target's accuracy under a reference FGSM at the
    same eps on the same clean images (negative when the student's attack is stronger)."""
    x, y = _test_set(reference)
    model = _target(reference_int(reference, "seed"))
    fgsm = _reference_fgsm(model, x, y, _ref_eps(reference))
    return adversarial_accuracy(reference, student) - float(_correct(model, fgsm, y).double().mean())


def _ref_targets(reference: Any, n: int) -> Any:
    import torch

    targets = reference.get("targets") if isinstance(reference, dict) else None
    if not isinstance(targets, list) or len(targets) != n or not all(type(v) is int and 0 <= v <= 9 for v in targets):
        raise Malformed("the reference records no target classes (an authoring error: tell your instructor)")
    return torch.as_tensor(targets, dtype=torch.long)


def targeted_success_rate(reference: Any, student: Any) -> float:
    """Reference ``{"seed": int, "eps": float, "labels": [int] * n, "targets": [int] * n}``; student
    ``{"images": [[64 floats]] * n}``, targeted adversarial versions of the first n hidden test
    digits. The fraction of images the rebuilt target reads as their target class, an image outside
    the eps-ball of its clean image or outside [0, 1] counting as a miss."""
    x, y = _test_set(reference)
    targets = _ref_targets(reference, len(y))
    adv = _images(student, len(y))
    model = _target(reference_int(reference, "seed"))
    hit = _correct(model, adv.float(), targets) & _within_budget(x, adv, _ref_eps(reference))
    return float(hit.double().mean())


# --------------------------------------------- Q8, Q9: input restoration by quantisation, and BPDA


def restored_accuracy(reference: Any, student: Any) -> float:
    """Reference ``{"seed": int, "start": int, "labels": [int] * n}`` (the hidden digits
    ``x_test[start:start + n]``, clean or attacked by the hidden test); student ``{"images": [[64
    floats]] * n}``, what the student's restoration made of them. The rebuilt target's accuracy on
    the restored images, an image with pixels outside [0, 1] counting as misread. The restoration
    may change an image freely: it is the defender's preprocessing, not an attack."""
    _, y = _test_set(reference, start=reference_int(reference, "start"))
    images = _images(student, len(y))
    valid = ((images >= -PIXEL_TOLERANCE) & (images <= 1 + PIXEL_TOLERANCE)).all(dim=1)
    model = _target(reference_int(reference, "seed"))
    return float((_correct(model, images.float(), y) & valid).double().mean())


def _quantise(x: Any, levels: int) -> Any:
    """The grader's defence: every pixel rounded to the nearest of ``levels`` evenly spaced grey levels."""
    import torch

    return torch.round(x * (levels - 1)) / (levels - 1)


def quantised_adversarial_accuracy(reference: Any, student: Any) -> float:
    """Reference ``{"seed": int, "eps": float, "levels": int, "labels": [int] * n}``; student
    ``{"images": [[64 floats]] * n}``, adversarial versions of the first n hidden digits. The
    accuracy of the defended reader, the rebuilt target behind the grader's quantiser (``levels``
    grey levels), on the student's images; an image outside the eps-ball or [0, 1] counts as read
    correctly."""
    x, y = _test_set(reference)
    levels = reference_int(reference, "levels", 2, 256)
    adv = _images(student, len(y))
    model = _target(reference_int(reference, "seed"))
    fooled = ~_correct(model, _quantise(adv.float(), levels), y) & _within_budget(x, adv, _ref_eps(reference))
    return 1.0 - float(fooled.double().mean())


# ------------------------------------------------------------------- Q4: the surrogate

SURROGATE_HIDDEN = (64, 64)


def _surrogate_setup(reference: Any, student: Any) -> tuple[Any, Any, Any, Any]:
    x, y = _test_set(reference, start=reference_int(reference, "start"))
    target = _target(reference_int(reference, "seed"))
    surrogate = _state_dict(student, SURROGATE_HIDDEN)
    return target, surrogate, x, y


def surrogate_agreement(reference: Any, student: Any) -> float:
    """Reference ``{"seed": int, "start": int, "eps": float, "labels": [int] * n}`` (the
    evaluation digits are ``x_test[start:start + n]`` of that seed); student ``{"weights":
    state_dict of MLP(64, (64, 64), 10) as nested lists}``. The fraction of evaluation digits on
    which the student's surrogate and the lab's target predict the same class."""
    import torch

    target, surrogate, x, _ = _surrogate_setup(reference, student)
    with torch.no_grad():
        return float((surrogate(x).argmax(dim=1) == target(x).argmax(dim=1)).double().mean())


def transfer_accuracy(reference: Any, student: Any) -> float:
    """As :func:`surrogate_agreement`: the target's accuracy on the evaluation digits under the
    reference PGD-20 at the reference's eps crafted on the student's surrogate (a transfer attack)."""
    target, surrogate, x, y = _surrogate_setup(reference, student)
    adv = _reference_pgd(surrogate, x, y, _ref_eps(reference))
    return float(_correct(target, adv, y).double().mean())


# -------------------------------------------------------- Q6: adversarial training

ROBUST_HIDDEN = (128,)


@lru_cache(maxsize=4)
def _undefended_robust_accuracy(seed: int, eps: float) -> float:
    split = _digits(seed)
    import torch

    x, y = torch.as_tensor(split.x_test), torch.as_tensor(split.y_test)
    model = _target(seed)
    return float(_correct(model, _reference_pgd(model, x, y, eps), y).double().mean())


def _robust_setup(reference: Any, student: Any) -> tuple[Any, Any, Any]:
    x, y = _test_set(reference)
    return _state_dict(student, ROBUST_HIDDEN), x, y


def robust_accuracy(reference: Any, student: Any) -> float:
    """Reference ``{"seed": int, "eps": float, "labels": [int] * n}``; student ``{"weights":
    state_dict of MLP(64, (128,), 10) as nested lists}``. The model's accuracy on the first n
    hidden test digits under the reference PGD-20 at eps."""
    model, x, y = _robust_setup(reference, student)
    return float(_correct(model, _reference_pgd(model, x, y, _ref_eps(reference)), y).double().mean())


def robust_gain(reference: Any, student: Any) -> float:
    """As :func:`robust_accuracy`, minus the lab's undefended target's accuracy under the same
    attack (the reference's labels must cover the whole hidden test set)."""
    seed, eps = reference_int(reference, "seed"), _ref_eps(reference)
    if len(_ref_labels(reference)) != len(_digits(seed).y_test):
        raise Malformed("the reference's labels do not cover the hidden test set (an authoring error: tell your instructor)")
    return robust_accuracy(reference, student) - _undefended_robust_accuracy(seed, eps)


def robust_clean_accuracy(reference: Any, student: Any) -> float:
    """As :func:`robust_accuracy`: the model's accuracy on the clean hidden test digits."""
    model, x, y = _robust_setup(reference, student)
    return float(_correct(model, x, y).double().mean())


# ------------------------------------------------------------------- Q5, Q7: the spam filter


def spam_evasion_rate(reference: Any, student: Any) -> float:
    """Reference ``{"seed": int, "budget": int, "originals": [str] * n}``; student ``{"texts":
    [str] * n}``. The fraction of texts the lab's spam filter (rebuilt for that seed) delivers,
    among texts that differ from their original in at most ``budget`` positions, each a
    homoglyph of the original letter (:data:`aisec.lab03.adversarial.HOMOGLYPHS`); any other text
    counts as caught."""
    from aisec.lab03.adversarial import HOMOGLYPHS

    originals = _ref_texts(reference, "originals")
    budget = reference_int(reference, "budget", 0, 1000)
    texts = _texts(student, len(originals))
    delivered = _spam_filter(reference_int(reference, "seed")).predict(texts) == 0
    fair = [
        len(t) == len(o)
        and sum(a != b for a, b in zip(o, t)) <= budget
        and all(a == b or b in HOMOGLYPHS.get(a, ()) for a, b in zip(o, t))
        for o, t in zip(originals, texts)
    ]
    return sum(bool(d) and f for d, f in zip(delivered, fair)) / len(texts)


def spam_caught_rate(reference: Any, student: Any) -> float:
    """Reference ``{"seed": int, "texts": [str] * n}``; student ``{"texts": [str] * n}``. The
    fraction of the student's texts the lab's spam filter (rebuilt for that seed) blocks."""
    n = len(_ref_texts(reference, "texts"))
    texts = _texts(student, n)
    return float(_spam_filter(reference_int(reference, "seed")).predict(texts).mean())


SCORERS: dict[str, Callable[[Any, Any], float]] = {
    "lab03.adversarial_accuracy": adversarial_accuracy,
    "lab03.targeted_success_rate": targeted_success_rate,
    "lab03.restored_accuracy": restored_accuracy,
    "lab03.quantised_adversarial_accuracy": quantised_adversarial_accuracy,
    "lab03.pgd_minus_fgsm_accuracy": pgd_minus_fgsm_accuracy,
    "lab03.surrogate_agreement": surrogate_agreement,
    "lab03.transfer_accuracy": transfer_accuracy,
    "lab03.robust_accuracy": robust_accuracy,
    "lab03.robust_gain": robust_gain,
    "lab03.robust_clean_accuracy": robust_clean_accuracy,
    "lab03.spam_evasion_rate": spam_evasion_rate,
    "lab03.spam_caught_rate": spam_caught_rate,
}
