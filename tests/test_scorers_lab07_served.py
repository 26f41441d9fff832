"""Unit tests of lab 07's served-model scorers (aisec.grading.scorers.lab07_served): no notebook, no sandbox.
The scorers rebuild the victim, the query streams and the suspects from the seed, as the grader does."""

from __future__ import annotations

import numpy as np
import pytest

from aisec.check import to_plain
from aisec.grading.scorers import SCORERS, Malformed
from aisec.lab07 import extraction, watermark

SEED = 1


def weights_value(model: object) -> object:
    return to_plain({"seed": SEED, "weights": {k: v.numpy() for k, v in model.state_dict().items()}})  # type: ignore[attr-defined]


def test_fidelity_loads_the_recorded_weights() -> None:
    ref = {"seed": SEED}
    assert SCORERS["lab07.fidelity"](ref, weights_value(extraction.victim(SEED))) == 1.0
    assert SCORERS["lab07.fidelity"](ref, weights_value(extraction.surrogate(3))) < 0.4
    # another seed's victim is a different model: high agreement, not a copy
    assert SCORERS["lab07.fidelity"](ref, weights_value(extraction.victim(SEED + 1))) < 1.0


def test_fidelity_refuses_malformed_weights() -> None:
    good = weights_value(extraction.surrogate(0))
    assert isinstance(good, dict)
    for bad in (None, [], {"weights": {}}, {"weights": {**good["weights"], "extra": [1.0]}},
                {"weights": {**good["weights"], "head.bias": [0.0] * 9}},
                {"weights": {**good["weights"], "head.bias": [float("nan")] * 10}}):
        with pytest.raises(Malformed):
            SCORERS["lab07.fidelity"]({"seed": SEED}, bad)
    with pytest.raises(Malformed):
        SCORERS["lab07.fidelity"]({}, good)


def _tls_cases(**changes: dict) -> dict:
    idx = [0, 3, 5]
    truth = [int(c) for c in extraction.labels(extraction.victim(SEED), extraction.fidelity_set(SEED)[idx])]
    cases = {
        "direct": {"labels": truth, "error": None, "leaked": []},
        "rogue_client": {"labels": None, "error": "SSLError", "leaked": []},
        "relay": {"labels": truth, "error": None, "leaked": []},
        "forged": {"labels": None, "error": "SSLCertVerificationError", "leaked": []},
        "plain_http": {"labels": None, "error": "ValueError", "leaked": []},
    }
    for name, change in changes.items():
        cases[name] = {**cases[name], **change}
    return {"seed": SEED, "indices": idx, "cases": [{"setup": k, **v} for k, v in cases.items()]}


def test_tls_outcomes_judge_each_setup() -> None:
    score = SCORERS["lab07.tls_outcomes"]
    ref = _tls_cases()
    assert score(ref, _tls_cases()) == 1.0
    assert score(ref, _tls_cases(forged={"leaked": ["key"]})) == 0.8
    assert score(ref, _tls_cases(plain_http={"error": None, "labels": [1, 2, 3], "leaked": ["key"]})) == 0.8
    direct = _tls_cases()["cases"][0]["labels"]
    assert score(ref, _tls_cases(direct={"labels": [(c + 1) % 10 for c in direct]})) == 0.8
    assert score(ref, _tls_cases(forged={"error": "SSLError"})) == 0.8  # not a verification failure
    assert score(ref, _tls_cases(rogue_client={"labels": direct, "error": None})) == 0.8


def test_tls_outcomes_refuse_malformed_values() -> None:
    ref = _tls_cases()
    good = _tls_cases()
    for bad in (None, {"cases": good["cases"][:4]}, {"cases": good["cases"][:4] + [good["cases"][0]]},
                {"cases": [{**c, "leaked": "x"} for c in good["cases"]]},
                {"cases": [{**c, "labels": [1.5]} for c in good["cases"]]}):
        with pytest.raises(Malformed):
            SCORERS["lab07.tls_outcomes"](ref, bad)


def test_monitor_scorers_use_the_rebuilt_truth() -> None:
    truth = [s.attacker for s in extraction.query_streams(SEED)]
    ref = {"seed": SEED}
    assert SCORERS["lab07.monitor_recall"](ref, {"flags": truth}) == 1.0
    assert SCORERS["lab07.monitor_false_positives"](ref, {"flags": truth}) == 0.0
    everyone = {"flags": [True] * len(truth)}
    assert SCORERS["lab07.monitor_recall"](ref, everyone) == 1.0
    assert SCORERS["lab07.monitor_false_positives"](ref, everyone) == 1.0
    inverted = {"flags": [not t for t in truth]}
    assert SCORERS["lab07.monitor_recall"](ref, inverted) == 0.0
    for bad in ({"flags": truth[:-1]}, {"flags": [int(t) for t in truth]}, truth):
        with pytest.raises(Malformed):
            SCORERS["lab07.monitor_recall"](ref, bad)


def test_ownership_accuracy_uses_the_rebuilt_suspects() -> None:
    truth = [s.stolen for s in watermark.suspects(SEED)]
    ref = {"seed": SEED}
    assert SCORERS["lab07.ownership_accuracy"](ref, {"flags": truth}) == 1.0
    assert SCORERS["lab07.ownership_accuracy"](ref, {"flags": [True] * len(truth)}) == pytest.approx(np.mean(truth))
    with pytest.raises(Malformed):
        SCORERS["lab07.ownership_accuracy"](ref, {"flags": truth + [True]})
