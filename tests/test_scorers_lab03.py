"""Unit tests of lab 03's scorers (aisec.grading.scorers.lab03): the grader rebuilds the digits
reader and the spam filter from their seeds and measures the student's adversarial images,
trained weights and texts itself. No notebook, no sandbox; the models come from the model cache
(a few seconds when it is cold)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aisec.grading.judge import compare
from aisec.grading.scorers import SCORERS, Malformed
from aisec.grading.scorers import lab03

SEED = 1  # the hidden tests' digits seed
N = 60


def rule(score: str, at_least: float | None = None, at_most: float | None = None) -> dict:
    return {"atol": 0.0, "rtol": 0.0, "at_least": at_least, "at_most": at_most, "unordered": False, "score": score}


def _rows(x: torch.Tensor) -> list[list[float]]:
    return np.round(x.double().numpy(), 4).tolist()


def _weights(model: torch.nn.Module) -> dict[str, list]:
    return {k: np.round(v.detach().double().numpy(), 4).tolist() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def hidden() -> dict:
    split = lab03._digits(SEED)
    x, y = torch.as_tensor(split.x_test), torch.as_tensor(split.y_test)
    target = lab03._target(SEED)
    return {"split": split, "x": x, "y": y, "target": target, "labels": split.y_test[:N].tolist()}


def _images_ref(hidden: dict, eps: float, images: list) -> dict:
    return {"seed": SEED, "eps": eps, "labels": hidden["labels"], "images": images}


# ------------------------------------------------------------------------- Q1, Q2: images


def test_adversarial_accuracy_rebuilds_the_target_and_measures_the_images(hidden: dict) -> None:
    x, y, target = hidden["x"][:N], hidden["y"][:N], hidden["target"]
    fgsm = lab03._reference_fgsm(target, x, y, 0.2)
    ref = _images_ref(hidden, 0.2, _rows(fgsm))
    score = SCORERS["lab03.adversarial_accuracy"]
    assert score(ref, ref) <= 0.10, "a real FGSM at eps 0.2 fools the target"
    with torch.no_grad():
        clean_acc = float((target(x).argmax(1) == y).double().mean())
    assert score(ref, {"images": _rows(x)}) == pytest.approx(clean_acc) and clean_acc > 0.9
    assert compare({"key": "k", "value": ref, "rule": rule("lab03.adversarial_accuracy", at_most=0.10)},
                   {"key": "k", "value": {"images": _rows(x)}, "rule": rule("lab03.adversarial_accuracy")}) is not None


def test_an_image_over_budget_or_outside_the_pixel_range_does_not_count_as_adversarial(hidden: dict) -> None:
    x, y, target = hidden["x"][:N], hidden["y"][:N], hidden["target"]
    strong = lab03._reference_fgsm(target, x, y, 0.5)  # fools it, but far outside an eps = 0.2 ball
    ref = _images_ref(hidden, 0.2, _rows(x))
    assert SCORERS["lab03.adversarial_accuracy"](ref, {"images": _rows(strong)}) == 1.0
    fgsm = lab03._reference_fgsm(target, x, y, 0.2)
    assert SCORERS["lab03.adversarial_accuracy"](ref, {"images": _rows(fgsm)}) <= 0.10
    dark = x.argmin(dim=1)  # a background pixel (0.0) of each digit, pushed to -0.05: within eps, not an image
    assert float(x[torch.arange(N), dark].max()) == 0.0
    negative = fgsm.clone()
    negative[torch.arange(N), dark] = -0.05
    assert SCORERS["lab03.adversarial_accuracy"](ref, {"images": _rows(negative)}) == 1.0
    over = fgsm.clone()
    over[:, 0] = x[:, 0] + 0.2002  # just over the budget (the rounding tolerance is 1e-4)
    assert SCORERS["lab03.adversarial_accuracy"](ref, {"images": _rows(over)}) == 1.0


def test_the_student_cannot_choose_labels_seed_or_budget(hidden: dict) -> None:
    x, y, target = hidden["x"][:N], hidden["y"][:N], hidden["target"]
    strong = _rows(lab03._reference_fgsm(target, x, y, 0.5))
    ref = _images_ref(hidden, 0.2, _rows(x))
    forged = {"seed": 0, "eps": 1.0, "labels": [(v + 1) % 10 for v in hidden["labels"]], "images": strong}
    assert SCORERS["lab03.adversarial_accuracy"](ref, forged) == 1.0


def test_pgd_minus_fgsm_is_zero_for_the_reference_fgsm_and_positive_for_no_attack(hidden: dict) -> None:
    x, y, target = hidden["x"][:N], hidden["y"][:N], hidden["target"]
    ref = _images_ref(hidden, 0.1, _rows(x))
    fgsm = _rows(lab03._reference_fgsm(target, x, y, 0.1))
    assert SCORERS["lab03.pgd_minus_fgsm_accuracy"](ref, {"images": fgsm}) == pytest.approx(0.0)
    pgd = _rows(lab03._reference_pgd(target, x, y, 0.1))
    assert SCORERS["lab03.pgd_minus_fgsm_accuracy"](ref, {"images": pgd}) <= 0.0
    assert SCORERS["lab03.pgd_minus_fgsm_accuracy"](ref, {"images": _rows(x)}) > 0.2


@pytest.mark.parametrize("images", [
    None, 0.0, [], "x",
    [[0.0] * 64] * (N - 1),
    [[0.0] * 63] * N,
    [[0.0] * 64] * (N - 1) + [["nan"] + [0.0] * 63],
    [[0.0] * 64] * (N - 1) + [[True] + [0.0] * 63],
    [[[0.0] * 8] * 8] * N,
])
def test_malformed_images_are_refused(hidden: dict, images: object) -> None:
    ref = _images_ref(hidden, 0.2, [[0.0] * 64] * N)
    with pytest.raises(Malformed):
        SCORERS["lab03.adversarial_accuracy"](ref, {"images": images})
    with pytest.raises(Malformed):
        SCORERS["lab03.adversarial_accuracy"](ref, images)


def test_reference_labels_must_match_the_hidden_digits(hidden: dict) -> None:
    ref = {"seed": SEED, "eps": 0.2, "labels": [(v + 1) % 10 for v in hidden["labels"]], "images": []}
    with pytest.raises(Malformed, match="authoring error"):
        SCORERS["lab03.adversarial_accuracy"](ref, {"images": _rows(hidden["x"][:N])})


# ---------------------------------------------------------------------- Q4: the surrogate


@pytest.fixture(scope="module")
def surrogates(hidden: dict) -> dict:
    from aisec.models import MLP, train_classifier

    split, target = hidden["split"], hidden["target"]
    with torch.no_grad():
        answers = target(torch.as_tensor(split.x_test[:270])).argmax(1).numpy()
    torch.manual_seed(SEED)
    trained = train_classifier(MLP(64, (64, 64), 10), split.x_test[:270], answers, epochs=60, seed=SEED)
    torch.manual_seed(123)
    untrained = MLP(64, (64, 64), 10).eval()
    ref = {"seed": SEED, "start": 270, "eps": 0.2, "labels": split.y_test[270:].tolist(), "weights": {}}
    return {"ref": ref, "trained": _weights(trained), "untrained": _weights(untrained)}


def test_surrogate_scores_come_from_the_students_weights(surrogates: dict) -> None:
    ref = surrogates["ref"]
    good, bad = {"weights": surrogates["trained"]}, {"weights": surrogates["untrained"]}
    assert SCORERS["lab03.surrogate_agreement"](ref, good) >= 0.80
    assert SCORERS["lab03.surrogate_agreement"](ref, bad) < 0.5
    assert SCORERS["lab03.transfer_accuracy"](ref, good) <= 0.30
    assert SCORERS["lab03.transfer_accuracy"](ref, bad) > 0.30
    # The evaluation split and budget are the reference's, whatever the student's value says.
    forged = dict(good, start=0, eps=1.0, labels=[0] * 270, seed=0)
    assert SCORERS["lab03.transfer_accuracy"](ref, forged) == SCORERS["lab03.transfer_accuracy"](ref, good)


def test_surrogate_weights_must_be_the_architecture_the_lab_asks_for(hidden: dict, surrogates: dict) -> None:
    ref = surrogates["ref"]
    with pytest.raises(Malformed):  # the target's own weights: MLP(64, (128,), 10)
        SCORERS["lab03.surrogate_agreement"](ref, {"weights": _weights(hidden["target"])})
    broken = dict(surrogates["trained"])
    broken["head.bias"] = broken["head.bias"][:-1]
    with pytest.raises(Malformed):
        SCORERS["lab03.transfer_accuracy"](ref, {"weights": broken})
    broken = dict(surrogates["trained"], **{"head.bias": ["inf"] * 10})
    with pytest.raises(Malformed):
        SCORERS["lab03.transfer_accuracy"](ref, {"weights": broken})
    with pytest.raises(Malformed):
        SCORERS["lab03.surrogate_agreement"](ref, {"weights": {}})
    with pytest.raises(Malformed):
        SCORERS["lab03.surrogate_agreement"](ref, 0.95)


# ------------------------------------------------------------ Q6: adversarial training


def test_robust_scores_evaluate_the_students_weights(hidden: dict) -> None:
    from aisec.models import MLP

    ref = {"seed": SEED, "eps": 0.15, "labels": hidden["split"].y_test.tolist(), "weights": {}}
    undefended = {"weights": _weights(hidden["target"])}
    assert SCORERS["lab03.robust_clean_accuracy"](ref, undefended) > 0.9
    assert SCORERS["lab03.robust_accuracy"](ref, undefended) < 0.2, "the undefended reader is not robust"
    assert SCORERS["lab03.robust_gain"](ref, undefended) == pytest.approx(0.0, abs=0.01)
    torch.manual_seed(7)
    untrained = {"weights": _weights(MLP(64, (128,), 10))}
    assert SCORERS["lab03.robust_clean_accuracy"](ref, untrained) < 0.5
    with pytest.raises(Malformed):
        SCORERS["lab03.robust_accuracy"](ref, {"weights": _weights(MLP(64, (64, 64), 10))})
    partial = dict(ref, labels=ref["labels"][:100])
    with pytest.raises(Malformed, match="authoring error"):
        SCORERS["lab03.robust_gain"](partial, undefended)


# ---------------------------------------------------------------- Q5, Q7: the spam filter


def _greedy(text: str, probability, budget: int) -> str:
    from aisec.lab03.adversarial import HOMOGLYPHS

    score = float(probability([text])[0])
    for _ in range(budget):
        if score < 0.5:
            break
        candidates = [text[:i] + g + text[i + 1 :] for i, ch in enumerate(text) for g in HOMOGLYPHS.get(ch, ())]
        scores = probability(candidates)
        best = int(np.argmin(scores))
        if scores[best] >= score:
            break
        text, score = candidates[best], float(scores[best])
    return text


@pytest.fixture(scope="module")
def spam() -> dict:
    from aisec.lab03.adversarial import spam_corpus

    corpus = spam_corpus(200, 1)
    originals = corpus.spam()[:12]
    ham = [t for t, y in zip(corpus.texts, corpus.labels) if y == 0][:12]
    evaded = [_greedy(t, lab03._spam_filter(0).spam_probability, 5) for t in originals]
    return {"originals": originals, "ham": ham, "evaded": evaded}


def test_evasion_rate_classifies_the_texts_with_the_rebuilt_filter(spam: dict) -> None:
    ref = {"seed": 0, "budget": 5, "originals": spam["originals"], "texts": spam["originals"]}
    score = SCORERS["lab03.spam_evasion_rate"]
    assert score(ref, {"texts": spam["originals"]}) == 0.0
    rate = score(ref, {"texts": spam["evaded"]})
    delivered = lab03._spam_filter(0).predict(spam["evaded"]) == 0
    assert rate == pytest.approx(delivered.mean()) and rate > 0.0
    # Delivered but unfair: other words, or edits outside the homoglyph table, count as caught.
    assert score(ref, {"texts": spam["ham"]}) == 0.0
    plain = [t.replace("e", "3") for t in spam["originals"]]
    assert score(ref, {"texts": plain}) == 0.0
    # The budget and the originals are the reference's.
    tight = dict(ref, budget=0)
    assert score(tight, {"texts": spam["evaded"], "budget": 100, "originals": spam["evaded"]}) == 0.0


def test_caught_rate_measures_the_students_texts(spam: dict) -> None:
    ref = {"seed": 0, "texts": spam["originals"]}
    assert SCORERS["lab03.spam_caught_rate"](ref, {"texts": spam["originals"]}) == 1.0
    assert SCORERS["lab03.spam_caught_rate"](ref, {"texts": spam["ham"]}) <= 0.2
    assert compare({"key": "k", "value": ref, "rule": rule("lab03.spam_caught_rate", at_least=0.95)},
                   {"key": "k", "value": {"texts": spam["ham"]}, "rule": rule("lab03.spam_caught_rate")}) is not None


@pytest.mark.parametrize("texts", [None, "spam", [], ["a"] * 11, ["a"] * 11 + [3], ["a"] * 11 + ["x" * 5000]])
def test_malformed_texts_are_refused(spam: dict, texts: object) -> None:
    ref = {"seed": 0, "budget": 5, "originals": spam["originals"], "texts": spam["originals"]}
    for name in ("lab03.spam_evasion_rate", "lab03.spam_caught_rate"):
        with pytest.raises(Malformed):
            SCORERS[name](ref, {"texts": texts})


# ------------------------------------------------------------- Q1: the targeted FGSM


def _targeted(target: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, eps: float) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(torch.nn.functional.cross_entropy(target(x), t), x)
    return (x - eps * g.sign()).clamp(0, 1).detach()


def test_targeted_success_counts_the_target_class_within_budget(hidden: dict) -> None:
    x, y, target = hidden["x"][:N], hidden["y"][:N], hidden["target"]
    t = (y + 1) % 10
    ref = {**_images_ref(hidden, 0.2, _rows(x)), "targets": t.tolist()}
    score = SCORERS["lab03.targeted_success_rate"]
    hit = score(ref, {"images": _rows(_targeted(target, x, t, 0.2))})
    assert hit >= 0.4, "a targeted FGSM at eps 0.2 reaches the next digit often"
    assert score(ref, {"images": _rows(lab03._reference_fgsm(target, x, y, 0.2))}) < hit - 0.2, "untargeted is not targeted"
    far = _targeted(target, x, t, 0.6)
    with torch.no_grad():
        assert float((target(far).argmax(1) == t).double().mean()) > hit  # it would hit more, yet
    assert score(ref, {"images": _rows(far)}) == 0.0  # every image is over budget: no hit counts
    with pytest.raises(Malformed, match="authoring error"):
        score({**ref, "targets": t.tolist()[:-1]}, {"images": _rows(x)})


# ---------------------------------------------------- Q8, Q9: restoration and BPDA


def test_restored_accuracy_reads_the_students_images_with_the_rebuilt_target(hidden: dict) -> None:
    split, target = hidden["split"], hidden["target"]
    start, n = 270, 60
    x = torch.as_tensor(split.x_test[start : start + n])
    y = torch.as_tensor(split.y_test[start : start + n])
    ref = {"seed": SEED, "start": start, "labels": y.tolist()}
    score = SCORERS["lab03.restored_accuracy"]
    pgd = lab03._reference_pgd(target, x, y, 0.1)
    bare, restored = score(ref, {"images": _rows(pgd)}), score(ref, {"images": _rows(lab03._quantise(pgd, 4))})
    assert restored > bare + 0.2, "rounding to 4 levels undoes much of a PGD crafted on the bare reader"
    with torch.no_grad():
        assert score(ref, {"images": _rows(x)}) == pytest.approx(float((target(x).argmax(1) == y).double().mean()))
    shifted = x.clone()
    shifted[:, 0] = 1.5  # not an image: misread whatever the target says
    assert score(ref, {"images": _rows(shifted)}) == 0.0
    with pytest.raises(Malformed):
        score(ref, {"images": _rows(x)[:-1]})
    with pytest.raises(Malformed, match="authoring error"):
        score({**ref, "start": 0}, {"images": _rows(x)})


def _bpda(target: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, levels: int) -> torch.Tensor:
    x_adv = x.clone()
    for _ in range(20):
        x_adv.requires_grad_(True)
        through = x_adv + (lab03._quantise(x_adv, levels) - x_adv).detach()
        (g,) = torch.autograd.grad(torch.nn.functional.cross_entropy(target(through), y), x_adv)
        x_adv = torch.min(torch.max(x_adv.detach() + eps / 4 * g.sign(), x - eps), x + eps).clamp(0, 1)
    return x_adv.detach()


def test_quantised_accuracy_puts_the_graders_quantiser_in_front_of_the_target(hidden: dict) -> None:
    x, y, target = hidden["x"][:N], hidden["y"][:N], hidden["target"]
    ref = {**_images_ref(hidden, 0.15, _rows(x)), "levels": 5}
    score = SCORERS["lab03.quantised_adversarial_accuracy"]
    masked = x.clone()  # PGD through round(): a zero gradient, so no step moves the image
    for _ in range(5):
        masked.requires_grad_(True)
        (g,) = torch.autograd.grad(torch.nn.functional.cross_entropy(target(lab03._quantise(masked, 5)), y), masked)
        assert float(g.abs().max()) == 0.0
        masked = masked.detach()
    broken = _bpda(target, x, y, 0.15, 5)
    assert score(ref, {"images": _rows(broken)}) <= 0.25 < 0.8 <= score(ref, {"images": _rows(masked)})
    over = _bpda(target, x, y, 0.3, 5)
    assert score(ref, {"images": _rows(over)}) == 1.0, "outside the eps-ball: read correctly"
    with pytest.raises(Malformed, match="authoring error"):
        score({**ref, "levels": 1}, {"images": _rows(broken)})
