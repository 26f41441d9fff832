"""Unit tests of lab 04's scorers (aisec.grading.scorers.lab04): no notebook, no sandbox. The scorers
rebuild the lab's seeded digits split and audit log (cached), as the grader does."""

from __future__ import annotations

import numpy as np
import pytest

from aisec.data import digits
from aisec.grading.scorers import SCORERS, Malformed
from aisec.lab04.insider import audit_log
from aisec.models import accuracy, digits_classifier

SEED = 1
TARGET = 0
TRIGGER = [54, 55, 62, 63]


def weights(model) -> dict:
    return {k: np.round(v.detach().double().numpy(), 4).tolist() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def models() -> dict:
    """The clean model and a backdoored one, trained (or loaded from the cache) as in the lab."""
    split = digits(seed=SEED)
    rng = np.random.default_rng(SEED)
    idx = np.sort(rng.choice(np.flatnonzero(split.y_train != TARGET), size=round(0.04 * len(split.x_train)), replace=False))
    x, y = split.x_train.copy(), split.y_train.copy()
    x[np.ix_(idx, TRIGGER)] = 1.0
    y[idx] = TARGET
    clean = digits_classifier(split.x_train, split.y_train, seed=SEED)
    backdoored = digits_classifier(x, y, name="digits-backdoor", seed=SEED)
    return {"clean": clean, "backdoored": backdoored, "clean_accuracy": accuracy(clean, split.x_test, split.y_test)}


def backdoor_value(models: dict, model_name: str, **extra: object) -> dict:
    return {"data_seed": SEED, "trigger": TRIGGER, "target": TARGET, "clean_accuracy": models["clean_accuracy"],
            "weights": weights(models[model_name]), **extra}


def test_backdoor_success_and_accuracy_drop_evaluate_the_recorded_weights(models: dict) -> None:
    reference = backdoor_value(models, "backdoored")
    assert SCORERS["lab04.backdoor_success"](reference, backdoor_value(models, "backdoored")) >= 0.9
    assert SCORERS["lab04.backdoor_success"](reference, backdoor_value(models, "clean")) < 0.2
    assert SCORERS["lab04.accuracy_drop"](reference, backdoor_value(models, "backdoored")) <= 0.02
    assert SCORERS["lab04.accuracy_drop"](reference, backdoor_value(models, "clean")) == pytest.approx(0.0, abs=0.01)


def test_backdoor_truth_comes_from_the_reference(models: dict) -> None:
    reference = backdoor_value(models, "backdoored")
    # a clean model cannot choose the target its "attack success" is measured against, nor the trigger
    forged = backdoor_value(models, "clean", target=3, trigger=[0], clean_accuracy=1.0, data_seed=0)
    assert SCORERS["lab04.backdoor_success"](reference, forged) < 0.2
    shrunk = {k: (np.zeros_like(np.asarray(v)).tolist()) for k, v in weights(models["clean"]).items()}
    assert SCORERS["lab04.accuracy_drop"](reference, {"weights": shrunk, "clean_accuracy": 0.0}) > 0.5


def test_backdoor_scorers_refuse_malformed_weights(models: dict) -> None:
    reference = backdoor_value(models, "backdoored")
    good = weights(models["backdoored"])
    bad_values = [
        None,
        {"weights": []},
        {"weights": {k: v for k, v in good.items() if k != "head.bias"}},
        {"weights": {**good, "head.bias": good["head.bias"][:-1]}},
        {"weights": {**good, "head.bias": [str(x) for x in good["head.bias"]]}},
        {"weights": {**good, "head.bias": [True] * 10}},
        {"weights": {**good, "head.bias": ["inf"] * 10}},
        {"weights": {**good, "body.0.weight": good["body.0.weight"][0]}},
    ]
    for bad in bad_values:
        for name in ("lab04.backdoor_success", "lab04.accuracy_drop"):
            with pytest.raises(Malformed):
                SCORERS[name](reference, bad)


@pytest.fixture(scope="module")
def log():
    return audit_log(seed=SEED)


def test_event_precision_and_recall_use_the_rebuilt_log(log) -> None:
    reference = {"log_seed": SEED, "flagged": []}
    truth = np.flatnonzero(log.is_exfil).tolist()
    assert SCORERS["lab04.event_precision"](reference, {"flagged": truth}) == 1.0
    assert SCORERS["lab04.event_recall"](reference, {"flagged": truth}) == 1.0
    half = truth[: len(truth) // 2] + [i for i in range(len(log.is_exfil)) if not log.is_exfil[i]][: len(truth) // 2]
    assert SCORERS["lab04.event_precision"](reference, {"flagged": half}) == pytest.approx(0.5)
    assert SCORERS["lab04.event_recall"](reference, {"flagged": half}) == pytest.approx((len(truth) // 2) / len(truth))
    assert SCORERS["lab04.event_precision"](reference, {"flagged": []}) == 0.0
    # the log (and so the truth) is the reference's: a student's seed is ignored
    assert SCORERS["lab04.event_recall"](reference, {"flagged": [], "log_seed": 12345}) == 0.0


def test_event_scorers_refuse_malformed_rows(log) -> None:
    reference = {"log_seed": SEED, "flagged": []}
    n = len(log.is_exfil)
    for bad in (None, {"flagged": [True, False]}, {"flagged": [n]}, {"flagged": [-1]}, {"flagged": [3, 3]},
                {"flagged": [1.0]}, {"flagged": list(range(n)) + [0]}):
        with pytest.raises(Malformed):
            SCORERS["lab04.event_recall"](reference, bad)


def test_alert_scores_match_score_alerts(log) -> None:
    reference = {"log_seed": SEED, "alerts": []}
    truth = log.events.loc[log.is_exfil, ["user", "day"]].drop_duplicates()
    perfect = {"alerts": [[str(u), int(d)] for u, d in zip(truth["user"], truth["day"])]}
    assert SCORERS["lab04.alert_days_to_detection"](reference, perfect) == 0.0
    assert SCORERS["lab04.alert_false_positives"](reference, perfect) == 0.0
    assert SCORERS["lab04.alert_recall"](reference, perfect) == 1.0
    late = {"alerts": [[log.insider, log.exfil_start_day + 12], ["u001", 50], ["u001", 51]]}
    assert SCORERS["lab04.alert_days_to_detection"](reference, late) == 12.0
    assert SCORERS["lab04.alert_false_positives"](reference, late) == float(
        sum((u, d) not in set(zip(truth["user"], truth["day"])) for u, d in late["alerts"]))
    assert SCORERS["lab04.alert_days_to_detection"](reference, {"alerts": []}) == 10_000.0
    assert SCORERS["lab04.alert_recall"](reference, {"alerts": [], "log_seed": 7}) == 0.0


def test_alert_scorers_refuse_malformed_alerts(log) -> None:
    reference = {"log_seed": SEED, "alerts": []}
    for bad in (None, {"alerts": "u001"}, {"alerts": [["u001"]]}, {"alerts": [["u001", 3.0]]},
                {"alerts": [[1, 3]]}, {"alerts": [["u001", 3]] * 20_001}, {"alerts": [["x" * 100, 3]]}):
        with pytest.raises(Malformed):
            SCORERS["lab04.alert_recall"](reference, bad)


# ------------------------------------------------------------- trigger localisation

TRUTH = [{"poisoned": True, "target": 6, "trigger": [0, 1, 8, 9]},
         {"poisoned": True, "target": 2, "trigger": [6, 7, 14, 15]},
         {"poisoned": False, "target": None, "trigger": []}]


def found(*cases: tuple[bool, int | None, list[int]]) -> dict:
    return {"found": [{"poisoned": p, "target": t, "pixels": px} for p, t, px in cases]}


def test_trigger_located_needs_the_verdict_the_target_and_half_the_trigger() -> None:
    reference = {"truth": TRUTH, **found((True, 6, [0, 1, 8, 9]), (True, 2, [6, 7, 14, 15]), (False, None, []))}
    score = SCORERS["lab04.trigger_located"]
    assert score(reference, found((True, 6, [0, 1, 8, 9]), (True, 2, [6, 7, 14, 15]), (False, None, []))) == 1.0
    assert score(reference, found((True, 6, [0, 1, 40, 41]), (True, 2, [7, 14, 30]), (True, 3, [1]))) == 1.0
    assert score(reference, found((True, 5, [0, 1, 8, 9]), (False, None, []), (False, None, []))) == 0.0
    assert score(reference, found((True, 6, [0, 30, 31, 32]), (True, 2, list(range(6, 16))), (False, None, []))) == 0.0
    assert score(reference, found((True, 6, [0, 1, 50]), (True, 2, [7, 30]), (False, None, []))) == 0.5
    assert score(reference, found((False, 6, [0, 1, 8, 9]), (True, 2, [6, 7, 14, 15]), (False, None, []))) == 0.5


def test_clean_false_alarms_count_clean_models_called_poisoned() -> None:
    reference = {"truth": TRUTH, "found": []}
    alarms = SCORERS["lab04.clean_false_alarms"]
    assert alarms(reference, found((True, 6, []), (True, 2, []), (False, None, []))) == 0.0
    assert alarms(reference, found((False, None, []), (False, None, []), (True, 4, [0, 1]))) == 1.0


def test_trigger_truth_comes_from_the_reference() -> None:
    reference = {"truth": TRUTH, "found": []}
    forged = {"truth": [{"poisoned": False, "target": None, "trigger": []}] * 3,
              **found((False, None, []), (False, None, []), (False, None, []))}
    assert SCORERS["lab04.trigger_located"](reference, forged) == 0.0
    for bad_reference in (None, {"truth": []}, {"truth": [{"poisoned": 1, "trigger": []}]}):
        with pytest.raises(Malformed):
            SCORERS["lab04.trigger_located"](bad_reference, forged)


def test_trigger_scorers_refuse_malformed_findings() -> None:
    reference = {"truth": TRUTH, "found": []}
    good = (True, 6, [0, 1])
    for bad in (None, {"found": "x"}, found(good, good), found(good, good, good, good),
                found(good, good, (1, None, [])), found(good, good, (False, 2.0, [])),
                found(good, good, (False, None, [64])), found(good, good, (False, None, [-1])),
                found(good, good, (False, None, [1.0])), found(good, good, (False, None, "0,1")),
                found(good, good, (False, None, list(range(64)) * 2))):
        for name in ("lab04.trigger_located", "lab04.clean_false_alarms"):
            with pytest.raises(Malformed):
                SCORERS[name](reference, bad)


def test_every_lab04_scorer_is_registered_and_documented() -> None:
    from aisec.grading.scorers import lab04

    assert set(lab04.SCORERS) <= set(SCORERS)
    assert all(fn.__doc__ for fn in lab04.SCORERS.values())


def test_every_hidden_record_has_an_authored_hint_without_values() -> None:
    import re
    from pathlib import Path

    import nbformat

    from aisec.lab04.checks import HIDDEN_HINTS

    source = Path(__file__).resolve().parents[1] / "solutions" / "lab04_insider" / "lab04_insider.ipynb"
    hidden = "".join(part.split("### END HIDDEN TESTS")[0] for cell in nbformat.read(source, as_version=4).cells
                     for part in cell.source.split("### BEGIN HIDDEN TESTS")[1:])
    keys = set(re.findall(r"""record\(\s*["']([\w.]+)""", hidden))
    assert keys == set(HIDDEN_HINTS)
    assert all(hint and not re.search(r"\d\.\d|\d{2,}", hint) for hint in HIDDEN_HINTS.values()), "hints name properties, not values"


# ------------------------------------------------------------- q15: low and slow against team detectors

TEAMS = [2, 3, 5, 6]
TARGET_MB = 2500


@pytest.fixture(scope="module")
def reference_plan():
    """The solution notebook's plan_exfiltration, as the reference run defines it."""
    from pathlib import Path

    import nbformat
    import pandas as pd

    from aisec.lab04 import insider

    source = Path(__file__).resolve().parents[1] / "solutions" / "lab04_insider" / "lab04_insider.ipynb"
    cell = next(c.source for c in nbformat.read(source, as_version=4).cells
                if c.metadata.get("nbgrader", {}).get("grade_id") == "q15_low_slow")
    namespace = {"pd": pd, **{name: getattr(insider, name) for name in dir(insider) if not name.startswith("_")}}
    exec(cell, namespace)
    return namespace["plan_exfiltration"]


@pytest.fixture(scope="module")
def plans(reference_plan) -> list:
    from aisec.lab04.insider import insider_view, planned_rows, team_detector

    view = insider_view(audit_log(seed=SEED))
    return [planned_rows(reference_plan(view, team_detector(s), TARGET_MB)) for s in TEAMS]


def evasions(plans: list, target_mb: float = TARGET_MB) -> float:
    reference = {"log_seed": SEED, "team_seeds": TEAMS, "target_mb": target_mb, "plans": []}
    return SCORERS["lab04.plan_evasions"](reference, {"plans": plans})


def test_the_reference_plan_evades_every_team(plans: list) -> None:
    assert evasions(plans) == 1.0
    # the same plans miss a target beyond what they take out
    assert evasions(plans, target_mb=1e9) == 0.0


def test_the_burst_in_the_log_is_caught(log) -> None:
    from aisec.lab04.insider import PLAN_COLUMNS, planned_rows

    burst = log.events[log.is_exfil]
    rows = planned_rows(burst.assign(hour=burst["time"].dt.hour + burst["time"].dt.minute / 60)[list(PLAN_COLUMNS)])
    assert sum(r["bytes"] for r in rows) / 1e6 >= TARGET_MB  # it takes out enough: only the alerts fail it
    assert evasions([rows] * len(TEAMS)) == 0.0


def test_a_plan_is_caught_by_an_alert_on_its_day_or_a_new_one(plans: list) -> None:
    # one day of the whole target at once, from the insider's first day
    first = min(e["day"] for p in plans for e in p)
    dump = [{**plans[0][0], "day": first, "bytes": TARGET_MB * 1_000_000}]
    assert evasions([dump] * len(TEAMS)) == 0.0


def test_only_restricted_bytes_count(plans: list) -> None:
    # the same events on an internal model (same kind, same action) take nothing restricted out
    internal = [[{**e, "resource": "model/churn", "action": "download"} for e in p] for p in plans]
    assert evasions(internal) == 0.0
    from aisec.lab04.insider import insider_view, team_detector, with_planned_events

    # and the detectors do not alert on them: the score is 0 for the megabytes alone
    view = insider_view(audit_log(seed=SEED))
    for seed, plan in zip(TEAMS, internal):
        alerts = team_detector(seed)(with_planned_events(view.events, view.insider, plan))
        assert not set(alerts.loc[alerts["user"] == view.insider, "day"]) & {e["day"] for e in plan}


def test_plan_scorer_refuses_malformed_events_with_a_reason(plans: list) -> None:
    good = plans[0][0]
    bad_events = [
        {k: v for k, v in good.items() if k != "bytes"},
        {**good, "bytes": -1},
        {**good, "bytes": float("nan")},
        {**good, "bytes": 1.5e9},
        {**good, "bytes": True},
        {**good, "day": 0},
        {**good, "day": 60},
        {**good, "day": float(good["day"])},
        {**good, "hour": 24},
        {**good, "hour": float("inf")},
        {**good, "hour": "10"},
        {**good, "host": ""},
        {**good, "host": 3},
        {**good, "resource": "ds/secret-stash"},
        {**good, "action": "read"},
        {**good, "action": "export"} if good["resource"].startswith("model/") else {**good, "action": "download"},
    ]
    for event in bad_events:
        with pytest.raises(Malformed) as caught:
            evasions([[event]] + plans[1:])
        assert "event" in str(caught.value) or "plan" in str(caught.value)
    for bad in (None, {"plans": "x"}, {"plans": plans[:-1]}, {"plans": [None] + plans[1:]},
                {"plans": [[good] * 501] + plans[1:]}):
        with pytest.raises(Malformed):
            SCORERS["lab04.plan_evasions"]({"log_seed": SEED, "team_seeds": TEAMS, "target_mb": TARGET_MB}, bad)
    for bad_reference in (None, {"log_seed": SEED, "team_seeds": [], "target_mb": 1},
                          {"log_seed": SEED, "team_seeds": TEAMS, "target_mb": "much"}):
        with pytest.raises(Malformed):
            SCORERS["lab04.plan_evasions"](bad_reference, {"plans": plans})
