"""Lab 04 (insider threats): rates the grader computes itself, outside the student's process.

The hidden tests record *raw* artefacts: the backdoored model's weights, per-event flags (as the
indices of the flagged events) and user-day alerts. The grader rebuilds the truth with the lab's
own ``aisec`` code from the seeds carried by the *reference* run's value (the digits split, the
audit log and its ground truth), and measures the rate itself. Nothing the truth is measured
against is read from the student's value.

Each scorer raises :class:`Malformed` with a fixed message when the student's value does not have
the expected shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from aisec.grading.scorers.common import Malformed, reference_field, reference_int

#: The MLP of ``aisec.models.digits_classifier``: parameter name -> shape.
_DIGITS_MLP: dict[str, tuple[int, ...]] = {
    "body.0.weight": (128, 64),
    "body.0.bias": (128,),
    "head.weight": (10, 128),
    "head.bias": (10,),
}
_MAX_EVENTS = 100_000
_MAX_ALERTS = 20_000


def _int(value: Any, what: str) -> int:
    if type(value) is not int:
        raise Malformed(f"the reference records no integer {what} (an authoring error: tell your instructor)")
    return value


def _ref_dict(reference: Any, *fields: str) -> dict[str, Any]:
    if not isinstance(reference, dict) or not all(f in reference for f in fields):
        raise Malformed("the reference value is incomplete (an authoring error: tell your instructor)")
    return reference


# ------------------------------------------------------------------ backdoored model


@lru_cache(maxsize=4)
def _digits_test(seed: int) -> tuple[Any, Any]:
    from aisec.data import digits

    split = digits(seed=seed)
    return split.x_test, split.y_test


def _flatten(value: Any, shape: tuple[int, ...]) -> list[float]:
    """The finite numbers of a nested list of exactly ``shape``, flattened (exact types)."""
    rows = [value]
    for size in shape:
        if not all(type(r) is list and len(r) == size for r in rows):
            raise Malformed("the weights do not have the shapes of the lab's digits MLP")
        rows = [x for r in rows for x in r]
    if not all(type(x) in (int, float) and math.isfinite(x) for x in rows):
        raise Malformed("the weights should be finite numbers")
    return [float(x) for x in rows]


def _weights(student: Any) -> Any:
    """The student's ``{"weights": {name: nested list}}`` as an ``aisec.models.MLP``."""
    import numpy as np
    import torch

    from aisec.models import MLP

    if not isinstance(student, dict) or not isinstance(student.get("weights"), dict):
        raise Malformed("should be a dict with the model's weights")
    weights = student["weights"]
    if set(weights) != set(_DIGITS_MLP):
        raise Malformed("the weights do not have the parameters of the lab's digits MLP")
    state: dict[str, Any] = {}
    for name, shape in _DIGITS_MLP.items():
        flat = _flatten(weights[name], shape)
        state[name] = torch.as_tensor(np.asarray(flat, dtype=np.float32).reshape(shape))
    model = MLP(64, (128,), 10)
    model.load_state_dict(state)
    model.eval()
    return model


def _predict(model: Any, x: Any) -> Any:
    import torch

    with torch.no_grad():
        return model(torch.as_tensor(x, dtype=torch.float32)).argmax(dim=1).numpy()


def backdoor_success(reference: Any, student: Any) -> float:
    """Reference ``{"data_seed": int, "trigger": [pixel indices], "target": int, ...}``; student
    ``{"weights": {parameter: nested list}}`` (the backdoored digits MLP's ``state_dict``).

    The grader rebuilds the test split ``digits(seed=data_seed)``, stamps the reference's trigger
    on the test images whose label is not ``target``, and returns the fraction the student's model
    classifies as ``target`` (the attack success rate)."""
    import numpy as np

    ref = _ref_dict(reference, "data_seed", "trigger", "target")
    trigger, target = ref["trigger"], _int(ref["target"], "target")
    if not isinstance(trigger, list) or not all(type(i) is int and 0 <= i < 64 for i in trigger):
        raise Malformed("the reference records no trigger (an authoring error: tell your instructor)")
    model = _weights(student)
    x, y = _digits_test(_int(ref["data_seed"], "seed"))
    keep = y != target
    stamped = np.array(x[keep], dtype=np.float32, copy=True)
    stamped[:, trigger] = 1.0
    return float(np.mean(_predict(model, stamped) == target))


def accuracy_drop(reference: Any, student: Any) -> float:
    """Reference ``{"data_seed": int, "clean_accuracy": float, ...}``; student ``{"weights": ...}``
    as for :func:`backdoor_success`. Returns the reference's clean-model accuracy minus the
    student's model's accuracy on the clean test split ``digits(seed=data_seed)``."""
    import numpy as np

    ref = _ref_dict(reference, "data_seed", "clean_accuracy")
    clean = ref["clean_accuracy"]
    if type(clean) is not float or not math.isfinite(clean):
        raise Malformed("the reference records no clean accuracy (an authoring error: tell your instructor)")
    model = _weights(student)
    x, y = _digits_test(_int(ref["data_seed"], "seed"))
    return clean - float(np.mean(_predict(model, x) == y))


# ------------------------------------------------------------------ audit log


@lru_cache(maxsize=2)
def _log(seed: int) -> Any:
    from aisec.lab04.insider import audit_log

    return audit_log(seed=seed)


def _flagged(reference: Any, student: Any) -> tuple[list[bool], set[int]]:
    """The truth per event (rebuilt from the reference's seed) and the student's flagged rows."""
    ref = _ref_dict(reference, "log_seed")
    truth = [bool(t) for t in _log(_int(ref["log_seed"], "seed")).is_exfil]
    if not isinstance(student, dict) or not isinstance(student.get("flagged"), list):
        raise Malformed("should be a dict with a list 'flagged' of event rows")
    rows = student["flagged"]
    if len(rows) > min(len(truth), _MAX_EVENTS):
        raise Malformed("flags more events than the log holds")
    if not all(type(i) is int and 0 <= i < len(truth) for i in rows) or len(set(rows)) != len(rows):
        raise Malformed("'flagged' should hold distinct row numbers of the log's events")
    return truth, set(rows)


def event_precision(reference: Any, student: Any) -> float:
    """Reference ``{"log_seed": int}``; student ``{"flagged": [row, ...]}`` (distinct row numbers of
    ``audit_log(seed=log_seed).events``). Of the flagged events, the fraction that are exfiltration
    (0 when nothing is flagged)."""
    truth, rows = _flagged(reference, student)
    return sum(truth[i] for i in rows) / len(rows) if rows else 0.0


def event_recall(reference: Any, student: Any) -> float:
    """As :func:`event_precision`; of the exfiltration events, the fraction flagged."""
    truth, rows = _flagged(reference, student)
    positives = [i for i, t in enumerate(truth) if t]
    if not positives:
        raise Malformed("the reference log has no exfiltration (an authoring error: tell your instructor)")
    return sum(i in rows for i in positives) / len(positives)


def _alert_score(reference: Any, student: Any) -> Any:
    """``aisec.lab04.insider.score_alerts`` of the student's alerts against the rebuilt log."""
    import pandas as pd

    from aisec.lab04.insider import score_alerts

    ref = _ref_dict(reference, "log_seed")
    log = _log(_int(ref["log_seed"], "seed"))
    if not isinstance(student, dict) or not isinstance(student.get("alerts"), list):
        raise Malformed("should be a dict with a list 'alerts' of [user, day] pairs")
    alerts = student["alerts"]
    if len(alerts) > _MAX_ALERTS:
        raise Malformed("has too many alerts")
    if not all(
        isinstance(a, list) and len(a) == 2 and type(a[0]) is str and len(a[0]) <= 64 and type(a[1]) is int
        for a in alerts
    ):
        raise Malformed("each alert should be a [user (str), day (int)] pair")
    frame = pd.DataFrame({"user": [a[0] for a in alerts], "day": [a[1] for a in alerts]})
    return score_alerts(frame, log)


#: Days to detection when the insider is never alerted on (any threshold fails it).
NEVER_DETECTED = 10_000.0


def alert_days_to_detection(reference: Any, student: Any) -> float:
    """Reference ``{"log_seed": int}``; student ``{"alerts": [[user, day], ...]}`` (one pair per
    alerted user-day). Days from the start of the exfiltration to the first alert on the insider
    (``aisec.lab04.insider.score_alerts`` on ``audit_log(seed=log_seed)``), 10000 when never alerted."""
    days = _alert_score(reference, student).days_to_detection
    return NEVER_DETECTED if days is None else float(days)


def alert_false_positives(reference: Any, student: Any) -> float:
    """As :func:`alert_days_to_detection`: alerted user-days without exfiltration."""
    return float(_alert_score(reference, student).false_positives)


def alert_recall(reference: Any, student: Any) -> float:
    """As :func:`alert_days_to_detection`: the fraction of exfiltration user-days alerted."""
    return float(_alert_score(reference, student).recall)


# ------------------------------------------------------------------ q15: low and slow against team detectors

_MAX_PLAN_EVENTS = 500
_MAX_EVENT_BYTES = 10**12  # a terabyte per event: anything larger is not a plausible transfer
_MAX_TEAMS = 16


@lru_cache(maxsize=2)
def _insider_view(seed: int) -> Any:
    from aisec.lab04.insider import insider_view

    return insider_view(_log(seed))


@lru_cache(maxsize=32)
def _honest_alert_days(log_seed: int, team_seed: int) -> frozenset[int]:
    """Days a team's detector alerts on the insider's own normal work, without any plan."""
    from aisec.lab04.insider import team_detector

    view = _insider_view(log_seed)
    alerts = team_detector(team_seed)(view.events)
    return frozenset(int(d) for d in alerts.loc[alerts["user"] == view.insider, "day"])


def _plan_events(plan: Any, first_day: int, n_days: int) -> list[dict[str, Any]]:
    """The student's planned events, checked one by one (exact types, plausible values)."""
    from aisec.lab04.insider import EGRESS_ACTIONS, PLAN_COLUMNS, resources

    if not isinstance(plan, list) or len(plan) > _MAX_PLAN_EVENTS:
        raise Malformed("each plan should be a list of at most 500 events")
    kinds = dict(zip(resources()["resource"], resources()["kind"]))
    for event in plan:
        if not isinstance(event, dict) or not set(PLAN_COLUMNS) <= set(event):
            raise Malformed("each event needs the columns day, hour, host, action, resource, bytes")
        day, hour, host, action, resource, size = (event[c] for c in PLAN_COLUMNS)
        if type(day) is not int or not first_day <= day < n_days:
            raise Malformed("each event's day should be an int within the days the insider can act on")
        if type(hour) not in (int, float) or not (math.isfinite(hour) and 0 <= hour < 24):
            raise Malformed("each event's hour should be a number from 0 to 24 (excluded)")
        if type(host) is not str or not 0 < len(host) <= 64:
            raise Malformed("each event's host should be a non-empty str")
        if type(resource) is not str or resource not in kinds:
            raise Malformed("each event's resource should be one of the catalogue's")
        if action != EGRESS_ACTIONS[kinds[resource]]:
            raise Malformed("each event should be an egress: export of a dataset, download of a model")
        if type(size) is not int or not 0 <= size <= _MAX_EVENT_BYTES:
            raise Malformed("each event's bytes should be a non-negative int of plausible size")
    return plan


def _plan_outcome(log_seed: int, team_seed: int, plan: list[dict[str, Any]]) -> tuple[float, bool]:
    """(restricted megabytes the plan takes out, whether the team's detector catches the insider):
    caught when the merged log raises an alert on the insider on a day the detector did not alert
    on before, or on any day the plan acts on."""
    from aisec.lab04.insider import resources, team_detector, with_planned_events

    view = _insider_view(log_seed)
    catalogue = resources()
    restricted = set(catalogue.loc[catalogue["sensitivity"] == "restricted", "resource"])
    megabytes = sum(e["bytes"] for e in plan if e["resource"] in restricted) / 1e6
    alerts = team_detector(team_seed)(with_planned_events(view.events, view.insider, plan))
    days = {int(d) for d in alerts.loc[alerts["user"] == view.insider, "day"]}
    caught = bool(days - _honest_alert_days(log_seed, team_seed)) or bool(days & {e["day"] for e in plan})
    return megabytes, caught


def plan_evasions(reference: Any, student: Any) -> float:
    """Reference ``{"log_seed": int, "team_seeds": [int], "target_mb": number, ...}``; student
    ``{"plans": [[{"day", "hour", "host", "action", "resource", "bytes"}, ...], ...]}``, the insider's
    planned egress events against each team's detector. The grader rebuilds the insider's view of
    ``audit_log(seed=log_seed)`` (``aisec.lab04.insider.insider_view``) and each team's detector
    (``team_detector(seed)``), merges each plan into the log (``with_planned_events``) and returns the
    fraction of teams whose detector raises no new alert on the insider (and none on a day the plan
    acts on) while the plan takes out at least ``target_mb`` megabytes of restricted resources."""
    seeds = reference_field(reference, "team_seeds", list)
    if not 0 < len(seeds) <= _MAX_TEAMS or not all(type(s) is int for s in seeds):
        raise Malformed("the reference records no teams (an authoring error: tell your instructor)")
    target = reference.get("target_mb")
    if type(target) not in (int, float) or not (math.isfinite(target) and target > 0):
        raise Malformed("the reference records no target (an authoring error: tell your instructor)")
    log_seed = reference_int(reference, "log_seed")
    if not isinstance(student, dict) or not isinstance(student.get("plans"), list):
        raise Malformed("should be a dict with a list 'plans', one plan per team")
    plans = student["plans"]
    if len(plans) != len(seeds):
        raise Malformed("has a different number of plans than the lab's hidden teams")
    view = _insider_view(log_seed)
    checked = [_plan_events(plan, view.first_day, view.n_days) for plan in plans]
    evaded = 0
    for seed, plan in zip(seeds, checked):
        megabytes, caught = _plan_outcome(log_seed, seed, plan)
        evaded += megabytes >= target and not caught
    return evaded / len(seeds)


# ------------------------------------------------------------------ trigger localisation


def _trigger_cases(reference: Any, student: Any) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The reference's truth per model and the student's findings, checked for shape."""
    ref = _ref_dict(reference, "truth")
    truth = ref["truth"]
    if not isinstance(truth, list) or not truth or not all(
        isinstance(t, dict) and type(t.get("poisoned")) is bool and isinstance(t.get("trigger"), list) for t in truth
    ):
        raise Malformed("the reference records no truth per model (an authoring error: tell your instructor)")
    if not isinstance(student, dict) or not isinstance(student.get("found"), list):
        raise Malformed("should be a dict with a list 'found', one finding per model")
    found = student["found"]
    if len(found) != len(truth):
        raise Malformed("has a different number of models than the lab's hidden inputs")
    for f in found:
        if not isinstance(f, dict) or type(f.get("poisoned")) is not bool:
            raise Malformed("each finding needs a bool 'poisoned'")
        if f.get("target") is not None and type(f.get("target")) is not int:
            raise Malformed("each finding's 'target' should be an int or None")
        pixels = f.get("pixels")
        if not isinstance(pixels, list) or len(pixels) > 64 or not all(type(p) is int and 0 <= p < 64 for p in pixels):
            raise Malformed("each finding's 'pixels' should be a list of pixel indices (0 to 63)")
    return list(zip(truth, found))


def trigger_located(reference: Any, student: Any) -> float:
    """Reference ``{"truth": [{"poisoned": bool, "target": int or None, "trigger": [pixels]}, ...]}``;
    student ``{"found": [{"poisoned": bool, "target": int or None, "pixels": [pixels]}, ...]}``, one
    finding per hidden model. Of the backdoored models, the fraction called poisoned with the right
    target and at least half of the trigger's pixels among at most twice as many located pixels."""
    cases = [(t, f) for t, f in _trigger_cases(reference, student) if t["poisoned"]]
    if not cases:
        raise Malformed("the reference has no backdoored model (an authoring error: tell your instructor)")
    located = 0
    for truth, found in cases:
        trigger, pixels = set(truth["trigger"]), set(found["pixels"])
        located += bool(
            found["poisoned"] and found["target"] == truth["target"] and len(pixels) <= 2 * len(trigger)
            and 2 * len(trigger & pixels) >= len(trigger)
        )
    return located / len(cases)


def clean_false_alarms(reference: Any, student: Any) -> float:
    """As :func:`trigger_located`: how many clean models the student calls poisoned."""
    return float(sum(f["poisoned"] for t, f in _trigger_cases(reference, student) if not t["poisoned"]))


SCORERS: dict[str, Callable[[Any, Any], float]] = {
    "lab04.backdoor_success": backdoor_success,
    "lab04.accuracy_drop": accuracy_drop,
    "lab04.event_precision": event_precision,
    "lab04.event_recall": event_recall,
    "lab04.alert_days_to_detection": alert_days_to_detection,
    "lab04.alert_false_positives": alert_false_positives,
    "lab04.alert_recall": alert_recall,
    "lab04.plan_evasions": plan_evasions,
    "lab04.trigger_located": trigger_located,
    "lab04.clean_false_alarms": clean_false_alarms,
}
