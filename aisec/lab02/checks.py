"""Visible checks of lab 02 (model inversion and attribute inference).

They run on the lab's visible seed (0); the hidden tests use other seeds and other data.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from aisec.check import Check, expect_type

SEED = 0


@lru_cache(maxsize=1)
def _digits_setup() -> tuple[Any, Any, Any, np.ndarray]:
    from aisec.data import digits
    from aisec.lab02.inversion import independent_digit_classifier
    from aisec.models import digits_classifier

    split = digits(SEED)
    model = digits_classifier(split.x_train, split.y_train, seed=SEED)
    judge = independent_digit_classifier(split.x_test, split.y_test, seed=SEED)
    x0 = split.x_test.mean(axis=0)
    return split, model, judge, x0


@lru_cache(maxsize=1)
def _records_setup() -> tuple[Any, Any]:
    from aisec.lab02.inversion import medical_records, records_classifier

    records = medical_records(seed=SEED)
    model = records_classifier(records.iloc[:900], seed=SEED)
    return records, model


def _array(value: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    expect_type(value, np.ndarray, what)
    if value.shape != shape:
        raise AssertionError(f"{what} should have shape {shape}, got {value.shape}")
    if value.dtype.kind != "f":
        raise AssertionError(f"{what} should hold floats, got dtype {value.dtype}")
    if not np.all(np.isfinite(value)):
        raise AssertionError(f"{what} contains NaN or inf")
    return value


# ------------------------------------------------------------------------------ q1


def _q1_shape(total_variation: Any) -> None:
    import torch

    out = total_variation(torch.zeros(3, 64))
    expect_type(out, torch.Tensor, "total_variation(images)")
    if tuple(out.shape) != (3,):
        raise AssertionError(f"for images of shape (3, 64) the result should have shape (3,), got {tuple(out.shape)}")
    if not torch.allclose(out, torch.zeros(3)):
        raise AssertionError("blank images have no variation: expected zeros")


def _q1_values(total_variation: Any) -> None:
    import torch

    checker = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2
    corner = torch.zeros(8, 8)
    corner[0, 0] = 1.0
    centre = torch.zeros(8, 8)
    centre[3, 4] = 0.5
    images = torch.stack([checker.float(), corner, centre]).reshape(3, 64)
    got = total_variation(images).detach().float()
    want = torch.tensor([112.0, 2.0, 2.0])
    if not torch.allclose(got, want, atol=1e-5):
        raise AssertionError(
            f"got {got.tolist()} for a checkerboard, a corner pixel and a half-bright centre pixel; "
            f"expected {want.tolist()}: sum |differences| over vertical AND horizontal neighbours"
        )


def _q1_grad(total_variation: Any) -> None:
    import torch

    x = torch.rand(2, 64, generator=torch.Generator().manual_seed(SEED), requires_grad=True)
    total_variation(x).sum().backward()
    if x.grad is None or not torch.any(x.grad != 0):
        raise AssertionError("no gradient reaches the input: use torch operations only (no .numpy(), no .item())")


# ------------------------------------------------------------------------------ q2


def _q2_shape(invert_whitebox: Any) -> None:
    _, model, _, x0 = _digits_setup()
    out = invert_whitebox(model, [3, 7], x0, steps=5)
    _array(out, (2, 64), "invert_whitebox(model, [3, 7], x0, steps=5)")
    if out.min() < 0 or out.max() > 1:
        raise AssertionError("pixels must stay in [0, 1]: clamp after every step")


def _q2_no_steps(invert_whitebox: Any) -> None:
    _, model, _, x0 = _digits_setup()
    out = invert_whitebox(model, [1], x0, steps=0)
    if not np.allclose(np.asarray(out).reshape(-1), x0, atol=1e-6):
        raise AssertionError("with steps=0 the result should be x0 itself; start the optimisation from x0")


def _q2_confident(invert_whitebox: Any) -> None:
    from aisec.models import predict_proba

    _, model, judge, x0 = _digits_setup()
    targets = [0, 3, 8]
    out = _array(invert_whitebox(model, targets, x0, steps=100), (3, 64), "the reconstructions")
    conf = predict_proba(model, out)[np.arange(3), targets]
    if conf.min() < 0.9:
        raise AssertionError(
            f"the target model's confidence in the targets is only {np.round(conf, 3).tolist()}: "
            "minimise the cross-entropy of the target class (gradient ascent on its log-confidence)"
        )
    recognised = judge.predict(out.astype(np.float64)) == np.array(targets)
    if recognised.sum() < 2:
        raise AssertionError("the independent classifier does not recognise the reconstructions")


# ------------------------------------------------------------------------------ q3


def _q3_budget(invert_blackbox: Any) -> None:
    from aisec.lab02.inversion import ConfidenceAPI

    _, model, _, x0 = _digits_setup()
    api = ConfidenceAPI(model, max_queries=10 * 128)
    out = invert_blackbox(api, 5, x0, steps=3)
    _array(out, (64,), "invert_blackbox(api, 5, x0, steps=3)")
    if api.n_queries != 3 * 128:
        raise AssertionError(
            f"3 steps on 64 pixels should cost 3 x 2 x 64 = 384 queries (one batch per step), used {api.n_queries}"
        )
    if out.min() < 0 or out.max() > 1:
        raise AssertionError("pixels must stay in [0, 1]")


def _q3_success(invert_blackbox: Any) -> None:
    from aisec.lab02.inversion import ConfidenceAPI
    from aisec.models import predict_proba

    _, model, judge, x0 = _digits_setup()
    api = ConfidenceAPI(model)
    targets = [2, 6]
    out = np.stack([invert_blackbox(api, t, x0, steps=50) for t in targets])
    conf = predict_proba(model, out)[np.arange(2), targets]
    if conf.min() < 0.9:
        raise AssertionError(
            f"confidence in the targets after 50 steps: {np.round(conf, 3).tolist()}; expected > 0.9. "
            "Step each pixel by lr * sign(estimated gradient)"
        )
    if not np.all(judge.predict(out) == np.array(targets)):
        raise AssertionError("the independent classifier does not recognise the reconstructions")


# ------------------------------------------------------------------------------ q4


def _q4_shape(attribute_inference: Any) -> None:
    from aisec.lab02.inversion import GENOTYPE_PRIOR, GENOTYPES, ConfidenceAPI

    records, model = _records_setup()
    people = records.iloc[:40].drop(columns=["genotype"])
    api = ConfidenceAPI(model)
    out = attribute_inference(api, people, GENOTYPE_PRIOR)
    expect_type(out, list, "attribute_inference(...)")
    if len(out) != 40:
        raise AssertionError(f"one genotype per person expected: 40, got {len(out)}")
    bad = [g for g in out if type(g) is not str or g not in GENOTYPES]
    if bad:
        raise AssertionError(f"every item should be one of {GENOTYPES} (a str), got e.g. {bad[:3]}")
    if api.n_queries != 3 * 40:
        raise AssertionError(f"one query per person and candidate genotype: 3 x 40 = 120, used {api.n_queries}")


def _q4_accuracy(attribute_inference: Any) -> None:
    from aisec.lab02.inversion import GENOTYPE_PRIOR, ConfidenceAPI

    records, model = _records_setup()
    people = records.iloc[:300]
    out = attribute_inference(ConfidenceAPI(model), people.drop(columns=["genotype"]), GENOTYPE_PRIOR)
    acc = float(np.mean(np.array(out) == people["genotype"].to_numpy()))
    if acc < 0.7:
        raise AssertionError(
            f"accuracy {acc:.2f} on the first 300 patients; the base rate is 0.42 and the MAP attack gets about 0.8. "
            "Score = prior(g) x confidence of the person's KNOWN dose band"
        )


# ------------------------------------------------------------------------------ q5


def _q5_table(defence_table: Any) -> None:
    import pandas as pd

    from aisec.lab02.inversion import ConfidenceAPI

    split, model, judge, x0 = _digits_setup()
    apis = {"none": ConfidenceAPI(model), "round to 1 decimal": ConfidenceAPI(model, decimals=1)}
    table = defence_table(apis, split.x_test, split.y_test, x0, judge, steps=10)
    expect_type(table, pd.DataFrame, "defence_table(...)")
    if list(table.index) != list(apis):
        raise AssertionError(f"the index should be the defence names in order {list(apis)}, got {list(table.index)}")
    if list(table.columns) != ["utility", "inversion_success", "queries"]:
        raise AssertionError(f"columns should be ['utility', 'inversion_success', 'queries'], got {list(table.columns)}")
    if table.loc["none", "queries"] != 10 * 10 * 128:
        raise AssertionError(
            f"10 targets x 10 steps x 128 probes = 12800 attack queries expected, got {table.loc['none', 'queries']}; "
            "reset the counter after measuring utility"
        )
    if not 0.9 <= float(table.loc["none", "utility"]) <= 1.0:
        raise AssertionError("the undefended API's utility should be its test accuracy (about 0.98)")
    if float(table.loc["none", "inversion_success"]) < 0.8:
        raise AssertionError("without a defence the black-box inversion should recognise most targets")


# ------------------------------------------------------------------------------ q6


def _fake_invert(seen: dict[str, Any]) -> Any:
    """A stand-in for Q2's inversion: it keeps the surrogate it is given and returns x0 per target, so that
    Q6's checks do not depend on the student's Q2."""

    def invert(model: Any, targets: list[int], x0: np.ndarray, *args: Any, **kwargs: Any) -> np.ndarray:
        seen["model"], seen["targets"] = model, list(targets)
        return np.tile(np.asarray(x0, dtype=np.float32), (len(targets), 1))

    return invert


def _q6_budget(invert_label_surrogate: Any) -> None:
    from aisec.lab02.inversion import ConfidenceAPI

    split, model, _, x0 = _digits_setup()
    public = split.x_test[:200]
    api = ConfidenceAPI(model, decimals=1, max_queries=200)
    seen: dict[str, Any] = {}
    out = invert_label_surrogate(api, [4, 9], public, x0, _fake_invert(seen), epochs=5)
    if api.n_queries != 200:
        raise AssertionError(f"query the API once with all 200 public images (200 queries), used {api.n_queries}")
    if "model" not in seen:
        raise AssertionError("call invert(surrogate, targets, x0) on your surrogate and return its result")
    if seen["targets"] != [4, 9]:
        raise AssertionError(f"pass the targets [4, 9] on to invert, got {seen['targets']}")
    _array(np.asarray(out, dtype=np.float64), (2, 64), "the result of invert(...)")


def _q6_surrogate_agrees(invert_label_surrogate: Any) -> None:
    import torch

    from aisec.lab02.inversion import ConfidenceAPI

    split, model, _, x0 = _digits_setup()
    seen: dict[str, Any] = {}
    invert_label_surrogate(ConfidenceAPI(model, top1_only=True), [0], split.x_test, x0, _fake_invert(seen))
    surrogate = seen.get("model")
    if not isinstance(surrogate, torch.nn.Module):
        raise AssertionError("invert should receive the surrogate, a torch module (torch.nn.Linear(64, 10))")
    with torch.no_grad():
        x = torch.as_tensor(split.x_test, dtype=torch.float32)
        agree = float((surrogate(x).argmax(dim=1) == model(x).argmax(dim=1)).float().mean())
    if agree < 0.9:
        raise AssertionError(
            f"the surrogate agrees with the API's labels on only {agree:.2f} of the public images (a trained one "
            "agrees on nearly all): train it on the argmax of the API's answers, full batch, for `epochs` Adam steps"
        )


# ------------------------------------------------------------------------------ q7


def _q7_answers(api: Any, rows: np.ndarray, what: str) -> np.ndarray:
    out = np.asarray(api.query(rows), dtype=np.float64)
    return _array(out, (len(rows), 10) if rows.ndim == 2 else (10,), what)


def _one_hot(answer: np.ndarray) -> bool:
    return bool(np.isin(answer, (0.0, 1.0)).all() and answer.sum() == 1.0)


def _q7_benign(probe_guard_api: Any) -> None:
    """Distinct digits, in one call and one per call, and a resent digit: full confidences for all."""
    from aisec.models import predict_proba

    split, model, _, _ = _digits_setup()
    api = probe_guard_api(model)
    rows = split.x_test[:60].astype(np.float64)
    out = np.concatenate([_q7_answers(api, rows[:40], "query(40 digits)")]
                         + [_q7_answers(api, r, "query(one digit of shape (64,))")[None] for r in rows[40:]]
                         + [_q7_answers(api, rows[0], "query(a resent digit)")[None]])
    own = predict_proba(model, np.concatenate([rows, rows[:1]])).astype(np.float64)
    if not np.array_equal(out.argmax(axis=1), own.argmax(axis=1)):
        raise AssertionError("a benign digit's answer has another top-1 class than the model's own: a defence must "
                             "not cost benign users their answer")
    full = np.abs(out - own).max(axis=1) <= 0.01
    if not full.all():
        raise AssertionError(
            f"{int((~full).sum())} of {len(full)} benign answers (distinct digits, one resent) are not the model's "
            "full confidences: only near-twins (closer than the radius, and not exact copies) are probes"
        )


def _q7_probes_get_labels(probe_guard_api: Any) -> None:
    """One finite-difference step of the start image, narrow and wide: every probe gets a one-hot label."""
    split, model, _, x0 = _digits_setup()
    eye = np.eye(64)
    for h in (0.01, 0.3):
        api = probe_guard_api(model)
        probes = np.clip(np.concatenate([x0 + h * eye, x0 - h * eye]), 0.0, 1.0)
        out = _q7_answers(api, probes, "query(128 probes)")
        one_hot = np.array([_one_hot(row) for row in out])
        if not one_hot.all():
            raise AssertionError(
                f"with probes of width {h}, {int((~one_hot).sum())} of the 128 probe rows got confidences instead of "
                "a one-hot label: each has near-twins in the same call (x + h e_i and x + h e_j are h * sqrt(2) apart)"
            )


def _q7_memory(probe_guard_api: Any) -> None:
    """A near-twin of a row answered in an earlier call is a probe; once the memory forgot it, it is not."""
    split, model, _, _ = _digits_setup()
    a, b, c = (split.x_test[i].astype(np.float64) for i in (0, 1, 2))
    twin = a.copy()
    twin[20] = twin[20] + 0.2 if twin[20] < 0.5 else twin[20] - 0.2
    api = probe_guard_api(model)
    _q7_answers(api, a, "query(one digit)")
    if not _one_hot(_q7_answers(api, twin, "query(a near-twin)")):
        raise AssertionError("a digit that differs by 0.2 in one pixel from a digit answered in an earlier call "
                             "should get a one-hot label: compare with self.history too")
    short = probe_guard_api(model, memory=2)
    for row in (a, b, c):
        _q7_answers(short, row, "query(one digit)")
    if _one_hot(_q7_answers(short, twin, "query(a near-twin)")):
        raise AssertionError("with memory=2, a near-twin of the digit answered three calls earlier should get full "
                             "confidences: keep only the last `memory` rows in self.history")


def _q7_is_probe(probe_guard_api: Any) -> None:
    """is_probe flags near-twins (in the batch or the history), not copies, and leaves the history alone."""
    split, model, _, _ = _digits_setup()
    a, b = split.x_test[0].astype(np.float64), split.x_test[1].astype(np.float64)
    twin = a.copy()
    twin[20] = twin[20] + 0.1 if twin[20] < 0.5 else twin[20] - 0.1
    api = probe_guard_api(model)
    flags = api.is_probe(np.stack([a, a, b]))
    if np.asarray(flags).tolist() != [False, False, False]:
        raise AssertionError(f"is_probe([a, a, b]) gave {np.asarray(flags).tolist()}, expected [False, False, False]: "
                             "an exact copy is no probe, and distinct digits lie further apart than the radius")
    flags = api.is_probe(np.stack([a, twin, b]))
    if np.asarray(flags).tolist() != [True, True, False]:
        raise AssertionError(f"is_probe([a, near-twin of a, b]) gave {np.asarray(flags).tolist()}, expected "
                             "[True, True, False]: both rows of a near-twin pair are probes")
    if len(api.history) != 0:
        raise AssertionError("is_probe changed self.history: only query remembers the rows it answered")


CHECKS = {
    "q1": [
        Check("returns a tensor of shape (n,), zero for blank images", _q1_shape),
        Check("right values on hand-made images", _q1_values),
        Check("differentiable", _q1_grad),
    ],
    "q2": [
        Check("shape (n_targets, 64), pixels in [0, 1]", _q2_shape),
        Check("starts from x0", _q2_no_steps),
        Check("reconstructions are confidently classified and recognised", _q2_confident),
    ],
    "q3": [
        Check("shape (64,), exactly 2 x 64 queries per step", _q3_budget),
        Check("50 steps reach the target class", _q3_success),
    ],
    "q4": [
        Check("a list of genotypes, 3 queries per person", _q4_shape),
        Check("beats the base rate clearly", _q4_accuracy),
    ],
    "q5": [
        Check("a DataFrame with the right index, columns and query counts", _q5_table),
    ],
    "q6": [
        Check("one query per public image, and the surrogate and targets go to invert", _q6_budget),
        Check("the surrogate reproduces the labels of a label-only API", _q6_surrogate_agrees),
    ],
    "q7": [
        Check("is_probe: near-twins in the batch are probes, exact copies and distinct digits are not, the history "
              "is left alone", _q7_is_probe),
        Check("benign users (a batch, one digit per call, a resent digit) get the model's full confidences",
              _q7_benign),
        Check("the probes of a finite-difference step, narrow or wide, get one-hot labels", _q7_probes_get_labels),
        Check("a near-twin of an earlier call's digit is a probe, until the memory has forgotten that digit",
              _q7_memory),
    ],
}


#: An authored hint for every hidden record of the lab (by key): the property it tests, never a value.
#: Hidden tests run the same functions on another seed: another digits split, attacked model, judge and patients.
HIDDEN_HINTS: dict[str, str] = {
    "q1_total_variation_test.values": "the total variation of other random images, vertical and horizontal neighbours "
                                      "summed",
    "q1_total_variation_test.grad": "the gradient of the summed total variation with respect to the images (torch "
                                    "operations only)",
    "q1_total_variation_test.shape": "one value per image",
    "q2_invert_whitebox_test.type": "a numpy array with one row of pixels per target",
    "q2_invert_whitebox_test.recon": "the reconstructions of every class from another model, exactly as the "
                                     "docstring's Adam loop computes them",
    "q2_invert_whitebox_test.in_range": "every pixel stays in the valid range, zero to one",
    "q2_invert_whitebox_test.judge_rate": "an independent judge recognises most reconstructions as their target "
                                          "(measured by the grader)",
    "q2_invert_whitebox_test.target_conf": "the attacked model is confident of the target class on every "
                                           "reconstruction (measured by the grader)",
    "q2_invert_whitebox_test.corr": "the reconstructions correlate with their class's mean training image (measured "
                                    "by the grader)",
    "q2_invert_whitebox_test.recon_tv": "reconstructions of a few targets with a total-variation weight, other steps "
                                        "and learning rate",
    "q3_invert_blackbox_test.recon": "the query-only reconstructions of every class from another model's API, exactly "
                                     "as the docstring's finite-difference steps compute them",
    "q3_invert_blackbox_test.queries": "the number of API queries: one batch per step",
    "q3_invert_blackbox_test.judge_rate": "an independent judge recognises most query-only reconstructions as their "
                                          "target (measured by the grader)",
    "q3_invert_blackbox_test.rounding_cut": "the same attack against an API that rounds its confidences is recognised "
                                            "much less often (measured by the grader)",
    "q3_invert_blackbox_test.recon_wide": "a reconstruction with another probe width, learning rate and step count: "
                                          "the arguments are the ones used",
    "q4_attribute_inference_test.type": "a list of str, one genotype per person",
    "q4_attribute_inference_test.guesses": "the MAP genotypes of other patients, the genotype column dropped, ties to "
                                           "the first genotype",
    "q4_attribute_inference_test.queries": "one API query per candidate genotype for all people together",
    "q4_attribute_inference_test.accuracy": "the guesses recover most patients' genotypes, training patients and "
                                            "others (measured by the grader)",
    "q4_attribute_inference_test.guesses_flat_prior": "with a flat prior, and a genotype column present that must be "
                                                      "ignored, the guesses follow the API's confidences alone",
    "q5_defence_table_test.type": "a pandas DataFrame",
    "q5_defence_table_test.index": "one row per defence, in the order of the APIs given",
    "q5_defence_table_test.columns": "the three columns in the stated order",
    "q5_defence_table_test.utility": "each defended API's accuracy on another seed's test digits, measured after a "
                                     "reset",
    "q5_defence_table_test.queries": "the queries the inversions used, counted after a second reset",
    "q5_defence_table_test.success": "the judge's recognition rate of the inversions against the undefended, rounding "
                                     "and top-label APIs",
    "q5_defence_table_test.round1_utility_loss": "the accuracy rounding costs the API",
    "q5_defence_table_test.success_none": "inversion against the undefended API succeeds on most classes (measured by "
                                          "the grader)",
    "q5_defence_table_test.success_round1": "inversion against the rounding API mostly fails (measured by the grader)",
    "q5_defence_table_test.success_top1": "inversion against the top-label-only API mostly fails (measured by the "
                                          "grader)",
    "q6_invert_label_surrogate_test.shape": "one reconstruction of sixty-four pixels per target",
    "q6_invert_label_surrogate_test.queries": "one query per public image, against a rounding API and a label-only API",
    "q6_invert_label_surrogate_test.judge_rate": "through another model's rounding API, an independent judge recognises "
    "most reconstructions as their target (measured by the grader)",
    "q6_invert_label_surrogate_test.target_conf": "the real attacked model, not only the surrogate, gives every "
    "reconstruction's target class a clear confidence (measured by the grader)",
    "q6_invert_label_surrogate_test.judge_rate_top1": "the same adaptive attack through a label-only API still yields "
    "recognisable reconstructions (measured by the grader)",
    "q7_probe_guard_test.benign_top1": "on another seed's digits, sent in a batch, one per call and resent, the top-1 "
    "class of your API's raw answers is the model's own (measured by the grader)",
    "q7_probe_guard_test.benign_served_in_full": "the same benign users get the model's full confidences, not only a "
    "label: distinct digits and exact copies are not probes (measured by the grader)",
    "q7_probe_guard_test.attack_narrow": "the finite-difference inversion with narrow probes, through one API instance, "
    "mostly fails to produce images the judge recognises (measured by the grader)",
    "q7_probe_guard_test.attack_medium": "the finite-difference inversion with medium probes, through one API instance, "
    "mostly fails to produce images the judge recognises (measured by the grader)",
    "q7_probe_guard_test.attack_wide": "the finite-difference inversion with wide probes, through one API instance, "
    "mostly fails to produce images the judge recognises (measured by the grader)",
    "q7_probe_guard_test.twins_in_one_call": "a digit and two wide single-pixel probes of it in one call, with a distinct "
    "digit: the near-twins get labels, the distinct digit full confidences",
    "q7_probe_guard_test.twin_of_an_earlier_call": "one row per call: a digit, then a wide single-pixel probe of it, then "
    "a distinct digit; the probe is caught through the history",
    "q7_probe_guard_test.copies_served_in_full": "a digit sent twice, then a batch holding another digit twice: exact "
    "copies are no probes",
    "q7_probe_guard_test.memory_forgets": "with a memory of two rows, a probe of a digit answered three calls earlier is "
    "no longer caught, a probe of the last one is",
    "q7_probe_guard_test.radius_is_used": "with a smaller radius, a probe further away than the radius is served in full "
    "and a closer one is caught",
    "q7_probe_guard_test.is_probe_flags_keep_history": "is_probe flags a near-twin of a digit the API answered and no "
    "distinct digit, and does not remember the rows it was asked about",
}
