"""Unit tests of lab 02's scorers (aisec.grading.scorers.lab02): no notebook, no sandbox. The scorer
rebuilds the lab's seeded digits model and judge (cached), as the grader does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aisec.data import digits
from aisec.grading.judge import compare
from aisec.grading.scorers import SCORERS, Malformed
from aisec.lab02.inversion import class_means

SEED = 1
TARGETS = list(range(10))


def rule(score: str, at_least: float | None = None, at_most: float | None = None) -> dict:
    return {"atol": 0.0, "rtol": 0.0, "at_least": at_least, "at_most": at_most, "unordered": False, "score": score}


@pytest.fixture(scope="module")
def images() -> dict[str, list]:
    split = digits(SEED)
    means = class_means(split.x_train, split.y_train)
    x0 = np.tile(split.x_test.mean(axis=0), (10, 1))
    return {"means": np.round(means, 4).tolist(), "x0": np.round(x0, 4).astype(float).tolist()}


def value(imgs: list, **extra: object) -> dict:
    return {"seed": SEED, "targets": TARGETS, "images": imgs, **extra}


def test_judge_rate_of_class_means_and_of_the_start_image(images: dict) -> None:
    ref = value(images["x0"])
    assert SCORERS["lab02.judge_rate"](ref, value(images["means"])) >= 0.9
    assert SCORERS["lab02.judge_rate"](ref, value(images["x0"])) <= 0.2
    assert compare({"rule": rule("lab02.judge_rate", at_least=0.8), "value": ref}, {"value": value(images["means"])}) is None
    assert compare({"rule": rule("lab02.judge_rate", at_least=0.8), "value": ref}, {"value": value(images["x0"])}) is not None


def test_the_targets_come_from_the_reference(images: dict) -> None:
    # The start image is recognised as one class: a student claiming that class for every row gains nothing.
    ref = value(images["x0"])
    only = int(np.bincount(np.argmax(np.asarray(images["means"]) @ np.asarray(images["x0"]).T, axis=0)).argmax())
    forged = {"seed": 12345, "targets": [only] * 10, "images": images["x0"]}
    assert SCORERS["lab02.judge_rate"](ref, forged) == SCORERS["lab02.judge_rate"](ref, value(images["x0"]))
    assert SCORERS["lab02.judge_rate"](ref, forged) <= 0.2


def test_drop_confidence_and_correlation(images: dict) -> None:
    ref = value(images["x0"], images_defended=images["x0"])
    drop = SCORERS["lab02.judge_rate_drop"](ref, value(images["means"], images_defended=images["x0"]))
    assert drop >= 0.7
    assert SCORERS["lab02.judge_rate_drop"](ref, value(images["x0"], images_defended=images["x0"])) == 0.0
    assert SCORERS["lab02.class_mean_correlation"](ref, value(images["means"])) == pytest.approx(1.0, abs=1e-3)
    constant = [[0.5] * 64 for _ in range(10)]
    assert SCORERS["lab02.class_mean_correlation"](ref, value(constant)) == 0.0
    conf_means = SCORERS["lab02.target_confidence"](ref, value(images["means"]))
    conf_x0 = SCORERS["lab02.target_confidence"](ref, value(images["x0"]))
    assert 0.0 <= conf_x0 < conf_means <= 1.0


@pytest.mark.parametrize("bad", [
    [[0.5] * 64] * 9,  # one image short
    [[0.5] * 63] * 10,  # a pixel short
    [[1.5] + [0.5] * 63] * 10,  # out of range
    [[True] + [0.5] * 63] * 10,  # a bool pixel
    [["0.5"] + [0.5] * 63] * 10,  # a string pixel
    [[float("nan")] + [0.5] * 63] * 10,
    "images",
])
def test_malformed_images_are_refused(bad: object, images: dict) -> None:
    ref = value(images["x0"], images_defended=images["x0"])
    for name in ("lab02.judge_rate", "lab02.target_confidence", "lab02.class_mean_correlation"):
        with pytest.raises(Malformed):
            SCORERS[name](ref, value(bad))
    with pytest.raises(Malformed):
        SCORERS["lab02.judge_rate_drop"](ref, value(images["means"], images_defended=bad))


def test_a_reference_without_seed_is_an_authoring_error(images: dict) -> None:
    with pytest.raises(Malformed, match="authoring error"):
        SCORERS["lab02.judge_rate"]({"images": images["x0"]}, value(images["x0"]))
    with pytest.raises(Malformed, match="authoring error"):
        SCORERS["lab02.judge_rate"]({"seed": True, "targets": TARGETS}, value(images["x0"]))


def test_records_read_back_from_a_notebook_are_scored(images: dict) -> None:
    """The grader reads records out of executed notebooks: dicts arrive as nbformat's NotebookNode."""
    from nbformat import from_dict

    assert SCORERS["lab02.judge_rate"](from_dict(value(images["x0"])), from_dict(value(images["means"]))) >= 0.9


def test_top1_agreement_compares_with_the_rebuilt_model() -> None:
    from aisec.grading.scorers.lab02 import _digits_setup

    x_test = digits(SEED).x_test
    model, _, _ = _digits_setup(SEED)
    with torch.no_grad():
        own = model(torch.as_tensor(x_test, dtype=torch.float32)).argmax(dim=1).numpy()
    one_hot = np.eye(10)[own]
    ref = {"seed": SEED, "outputs": one_hot.tolist()}
    assert SCORERS["lab02.top1_agreement"](ref, {"outputs": one_hot.tolist()}) == 1.0
    shifted = np.eye(10)[(own + 1) % 10]
    assert SCORERS["lab02.top1_agreement"](ref, {"outputs": shifted.tolist()}) == 0.0
    half = one_hot.copy()
    half[::2] = shifted[::2]
    assert SCORERS["lab02.top1_agreement"](ref, {"outputs": half.tolist()}) == pytest.approx(0.5, abs=0.01)
    rule_ = rule("lab02.top1_agreement", at_least=1.0)
    assert compare({"rule": rule_, "value": ref}, {"value": {"outputs": one_hot.tolist()}}) is None
    assert compare({"rule": rule_, "value": ref}, {"value": {"outputs": half.tolist()}}) is not None
    # all-zero rows (rounding to no decimals) fall back to class 0: wrong wherever the model says otherwise
    assert SCORERS["lab02.top1_agreement"](ref, {"outputs": np.zeros_like(one_hot).tolist()}) == pytest.approx(
        float(np.mean(own == 0)))


def test_served_in_full_compares_the_answers_with_the_rebuilt_models_confidences() -> None:
    from aisec.grading.scorers.lab02 import _digits_setup

    x_test = digits(SEED).x_test
    order = [5, 3, 5, 0, 7]  # the images sent, in order, one resent
    model, _, _ = _digits_setup(SEED)
    with torch.no_grad():
        probs = torch.softmax(model(torch.as_tensor(x_test[order], dtype=torch.float32)), dim=1).double().numpy()
    ref = {"seed": SEED, "indices": order, "outputs": []}
    assert SCORERS["lab02.served_in_full"](ref, {"outputs": np.round(probs, 4).tolist()}) == 1.0
    assert SCORERS["lab02.served_in_full"](ref, {"outputs": np.round(probs, 2).tolist()}) == 1.0
    one_hot = np.eye(10)[probs.argmax(axis=1)]
    sure = np.abs(one_hot - probs).max(axis=1) <= 0.01  # a label is a full answer only where the model is sure
    assert SCORERS["lab02.served_in_full"](ref, {"outputs": one_hot.tolist()}) == pytest.approx(float(sure.mean()))
    assert SCORERS["lab02.top1_agreement"](ref, {"outputs": one_hot.tolist()}) == 1.0
    shuffled = probs[::-1]  # the right answers to the wrong images
    assert SCORERS["lab02.served_in_full"](ref, {"outputs": np.round(shuffled, 4).tolist()}) < 1.0
    for bad_ref in ({"seed": SEED, "indices": [len(x_test)]}, {"seed": SEED, "indices": []}, {"seed": SEED, "indices": "0"}):
        with pytest.raises(Malformed, match="authoring error"):
            SCORERS["lab02.served_in_full"](bad_ref, {"outputs": [[0.1] * 10]})
    with pytest.raises(Malformed):
        SCORERS["lab02.served_in_full"](ref, {"outputs": np.round(probs, 4).tolist()[:4]})


@pytest.mark.parametrize("bad", [
    "outputs",
    [[0.1] * 10] * 3,  # too few rows
    "rows of 9",
    "a nan",
    "a str",
])
def test_malformed_outputs_are_refused(bad: object) -> None:
    n = len(digits(SEED).x_test)
    rows = {"rows of 9": [[0.1] * 9] * n, "a nan": [[float("nan")] + [0.1] * 9] * n,
            "a str": [["0.1"] + [0.1] * 9] * n}.get(bad, bad) if isinstance(bad, str) else bad
    with pytest.raises(Malformed):
        SCORERS["lab02.top1_agreement"]({"seed": SEED, "outputs": []}, {"outputs": rows})
    with pytest.raises(Malformed, match="authoring error"):
        SCORERS["lab02.top1_agreement"]({"outputs": []}, {"outputs": [[0.1] * 10] * n})

