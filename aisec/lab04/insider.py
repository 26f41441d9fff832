"""Data for the insider-threat module: a seeded audit log with ground truth, a seeded
corpus of benign and (harmless) malicious pickle files, and the team's access-policy data.

Nothing here detects, scans, authorises or encrypts anything: those are the students'
answers. The helpers below only *make* the scenario and *score* alerts against the
ground truth.

The fictional team: an ML group with data scientists, ML engineers, data engineers and
analysts, a data lake of datasets and a model registry. One data scientist, the insider,
starts exporting restricted training data and downloading model weights a few weeks
into the log, a little more every day.

The malicious pickles are *harmless by construction*: when loaded, their payload can only
create a marker file inside the folder the corpus was written to (the folder must be a
temporary folder made by the caller). The generator never loads them.
"""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

# --------------------------------------------------------------------- policy data

#: Sensitivity levels, from least to most sensitive.
SENSITIVITY_LEVELS: tuple[str, ...] = ("public", "internal", "restricted")

#: Actions in the data lake (datasets) and the model registry (models).
DATASET_ACTIONS: tuple[str, ...] = ("read", "write", "export")
MODEL_ACTIONS: tuple[str, ...] = ("download", "push", "promote")

#: Roles of the team and the number of people holding each.
ROLES: dict[str, int] = {"data_scientist": 12, "ml_engineer": 9, "data_engineer": 7, "analyst": 8}


def resources() -> pd.DataFrame:
    """The catalogue of the data lake and the model registry.

    Columns: ``resource`` (str, e.g. ``"ds/transactions"``), ``kind`` (``"dataset"`` or
    ``"model"``), ``sensitivity`` (one of :data:`SENSITIVITY_LEVELS`).
    """
    rows = [
        ("ds/transactions", "dataset", "restricted"),
        ("ds/customers-pii", "dataset", "restricted"),
        ("ds/fraud-labels", "dataset", "restricted"),
        ("ds/features-v3", "dataset", "internal"),
        ("ds/clickstream", "dataset", "internal"),
        ("ds/support-tickets", "dataset", "internal"),
        ("ds/public-benchmarks", "dataset", "public"),
        ("model/fraud-detector", "model", "restricted"),
        ("model/credit-scoring", "model", "restricted"),
        ("model/churn", "model", "internal"),
        ("model/recsys", "model", "internal"),
        ("model/ocr-digits", "model", "public"),
    ]
    return pd.DataFrame(rows, columns=["resource", "kind", "sensitivity"])


def duties() -> pd.DataFrame:
    """What each role's *job* needs, written down by the team leads.

    One row per (role, action, kind) a role needs, with ``max_sensitivity``: the most
    sensitive level of resource that duty requires. Anything not listed is not needed.
    Columns: ``role``, ``action``, ``kind``, ``max_sensitivity``.
    """
    rows = [
        ("data_scientist", "read", "dataset", "restricted"),
        ("data_scientist", "export", "dataset", "internal"),
        ("data_scientist", "download", "model", "restricted"),
        ("data_scientist", "push", "model", "internal"),
        ("ml_engineer", "read", "dataset", "internal"),
        ("ml_engineer", "download", "model", "restricted"),
        ("ml_engineer", "push", "model", "restricted"),
        ("ml_engineer", "promote", "model", "restricted"),
        ("data_engineer", "read", "dataset", "restricted"),
        ("data_engineer", "write", "dataset", "restricted"),
        ("data_engineer", "export", "dataset", "restricted"),
        ("analyst", "read", "dataset", "internal"),
        ("analyst", "export", "dataset", "public"),
    ]
    return pd.DataFrame(rows, columns=["role", "action", "kind", "max_sensitivity"])


# ---------------------------------------------------------------------- audit log


@dataclass(frozen=True)
class AuditLog:
    """A synthetic audit log and its ground truth.

    ``events`` columns: ``time`` (datetime64), ``day`` (int, days since the log starts),
    ``user`` (str), ``role`` (str), ``host`` (str), ``action`` (str), ``resource`` (str),
    ``bytes`` (int). Rows are sorted by time, index ``0..n-1``.

    Ground truth, for scoring only: ``insider`` (the user name), ``exfil_start_day``
    (first day of exfiltration), ``is_exfil`` (bool per row of ``events``).
    """

    events: pd.DataFrame
    insider: str
    exfil_start_day: int
    is_exfil: np.ndarray


_MB = 1_000_000

#: The first day of every audit log (a Monday): ``day`` counts days since then.
LOG_START = pd.Timestamp("2026-03-02")

# (action, resource pool, mean events per working day, log-normal median bytes, sigma)
_ROLE_HABITS: dict[str, list[tuple[str, tuple[str, ...], float, float, float]]] = {
    "data_scientist": [
        ("read", ("ds/transactions", "ds/fraud-labels", "ds/features-v3", "ds/clickstream"), 4.0, 40 * _MB, 0.9),
        ("export", ("ds/features-v3", "ds/clickstream"), 0.4, 15 * _MB, 0.8),
        ("download", ("model/fraud-detector", "model/churn", "model/recsys"), 0.6, 60 * _MB, 0.5),
        ("push", ("model/churn", "model/recsys"), 0.2, 60 * _MB, 0.5),
    ],
    "ml_engineer": [
        ("read", ("ds/features-v3", "ds/clickstream"), 2.0, 30 * _MB, 0.9),
        ("download", ("model/fraud-detector", "model/credit-scoring", "model/churn", "model/recsys"), 1.5, 70 * _MB, 0.5),
        ("push", ("model/fraud-detector", "model/credit-scoring", "model/churn"), 0.5, 70 * _MB, 0.5),
        ("promote", ("model/fraud-detector", "model/churn", "model/recsys"), 0.2, 1_000, 0.3),
    ],
    "data_engineer": [
        ("read", ("ds/transactions", "ds/customers-pii", "ds/clickstream", "ds/support-tickets"), 3.0, 80 * _MB, 1.0),
        ("write", ("ds/transactions", "ds/features-v3", "ds/clickstream"), 2.0, 120 * _MB, 1.0),
        ("export", ("ds/features-v3", "ds/clickstream"), 0.3, 40 * _MB, 0.8),
    ],
    "analyst": [
        ("read", ("ds/clickstream", "ds/support-tickets", "ds/public-benchmarks"), 3.0, 20 * _MB, 0.9),
        ("export", ("ds/public-benchmarks", "ds/support-tickets"), 0.5, 5 * _MB, 0.8),
    ],
}


def audit_log(seed: int = 0, n_days: int = 60) -> AuditLog:
    """A seeded audit log of the team's data lake and model registry over ``n_days`` days.

    Normal behaviour: each user works on weekdays, mostly 08:00-19:00 from their own
    workstation (sometimes a shared notebook server), with role-specific habits and
    log-normal transfer sizes. There are innocent surprises too: nightly ETL exports by
    data engineers from ``etl-01`` (large, off-hours), occasional late evenings, rare
    out-of-role requests, and a one-off big backfill.

    The insider (a data scientist) starts exfiltrating on ``exfil_start_day`` (between
    day 28 and 38): exports of restricted datasets and downloads of restricted model
    weights, a few a day, growing in size, often in the evening and sometimes from a host
    nobody used before.
    """
    if n_days < 45:
        raise ValueError("audit_log() needs n_days >= 45: a baseline period and an exfiltration period")
    rng = np.random.default_rng(seed)
    start = LOG_START
    users: list[tuple[str, str, str]] = []
    counter = 0
    for role, count in ROLES.items():
        for _ in range(count):
            counter += 1
            users.append((f"u{counter:03d}", role, f"ws-{int(rng.integers(100, 999))}"))
    ds_users = [u for u in users if u[1] == "data_scientist"]
    insider, _, insider_ws = ds_users[int(rng.integers(0, len(ds_users)))]
    exfil_start = int(rng.integers(28, 39))
    res = resources()
    all_resources = tuple(res["resource"])

    rows: list[tuple[float, str, str, str, str, str, int, bool]] = []

    def work_time(day: int, late: bool = False) -> float:
        """Hours since the start of the log (converted to timestamps at the end, in one go)."""
        hour = rng.uniform(19.0, 23.5) if late else min(max(float(rng.normal(13.0, 2.6)), 7.5), 18.9)
        return 24.0 * day + hour

    for day in range(n_days):
        weekend = (start.day_of_week + day) % 7 >= 5
        for user, role, ws in users:
            active = rng.random() < (0.08 if weekend else 0.9)
            if not active:
                continue
            for action, pool, rate, median, sigma in _ROLE_HABITS[role]:
                for _ in range(int(rng.poisson(rate))):
                    late = rng.random() < 0.04
                    host = ws if rng.random() < 0.85 else "jupyter-01"
                    size = int(median * rng.lognormal(0.0, sigma))
                    rows.append((work_time(day, late), user, role, host, action, str(rng.choice(pool)), size, False))
            if rng.random() < 0.01:  # a rare out-of-role request (curiosity, a stale script)
                resource = str(rng.choice(all_resources))
                action = "read" if resource.startswith("ds/") else "download"
                rows.append((work_time(day), user, role, ws, action, resource, int(20 * _MB * rng.lognormal(0, 0.7)), False))
        if not weekend:
            # nightly ETL: big exports of restricted tables to the warehouse, from the ETL host
            etl_user = [u for u in users if u[1] == "data_engineer"][day % 3]
            t = 24.0 * day + 2.0 + rng.uniform(0, 0.5)
            rows.append((t, etl_user[0], "data_engineer", "etl-01", "export", "ds/transactions", int(2_000 * _MB * rng.lognormal(0, 0.3)), False))
    # a one-off legitimate backfill by an ML engineer on a weekday in the exfiltration period
    mle = [u for u in users if u[1] == "ml_engineer"][int(rng.integers(0, ROLES["ml_engineer"]))]
    backfill_day = exfil_start + int(rng.integers(3, 12))
    for _ in range(6):
        rows.append((work_time(backfill_day), mle[0], mle[1], mle[2], "download", str(rng.choice(("model/churn", "model/recsys"))), int(400 * _MB * rng.lognormal(0, 0.3)), False))

    # the insider: slow, growing exfiltration
    new_host = f"ws-{int(rng.integers(1000, 9999))}-tmp"
    targets = ("ds/transactions", "ds/customers-pii", "ds/fraud-labels", "model/fraud-detector", "model/credit-scoring")
    for day in range(exfil_start, n_days):
        weekend = (start.day_of_week + day) % 7 >= 5
        if rng.random() > (0.3 if weekend else 0.8):
            continue
        growth = 1.0 + 0.08 * (day - exfil_start)
        for _ in range(1 + int(rng.poisson(1.0))):
            resource = str(rng.choice(targets))
            action = "export" if resource.startswith("ds/") else "download"
            late = rng.random() < 0.6
            host = new_host if rng.random() < 0.35 else insider_ws
            size = int(50 * _MB * growth * rng.lognormal(0.0, 0.5))
            rows.append((work_time(day, late), insider, "data_scientist", host, action, resource, size, True))

    frame = pd.DataFrame(rows, columns=["time", "user", "role", "host", "action", "resource", "bytes", "_exfil"])
    frame["time"] = (start + pd.to_timedelta(frame["time"], unit="h")).dt.floor("s")
    frame = frame.sort_values(["time", "user", "resource"], kind="mergesort").reset_index(drop=True)
    frame["day"] = ((frame["time"] - start) // pd.Timedelta(days=1)).astype(int)
    frame["bytes"] = frame["bytes"].astype(np.int64)
    is_exfil = frame.pop("_exfil").to_numpy(dtype=bool)
    frame = frame[["time", "day", "user", "role", "host", "action", "resource", "bytes"]]
    return AuditLog(frame, insider, exfil_start, is_exfil)


@dataclass(frozen=True)
class AlertScore:
    """How a set of user-day alerts fares against the ground truth of an :class:`AuditLog`."""

    true_positives: int  # alerted (user, day) pairs on which the insider exfiltrated
    false_positives: int  # all other alerted (user, day) pairs
    precision: float
    recall: float  # fraction of exfiltration (user, day) pairs alerted
    days_to_detection: int | None  # first insider alert day - exfil_start_day (None: never)


def score_alerts(alerts: pd.DataFrame, log: AuditLog) -> AlertScore:
    """Score alerts (a frame with columns ``user`` and ``day``, one row per alert) against
    the log's ground truth, at the granularity of (user, day)."""
    truth = log.events.loc[log.is_exfil, ["user", "day"]]
    positives = {(str(u), int(d)) for u, d in zip(truth["user"], truth["day"])}
    alerted = {(str(u), int(d)) for u, d in zip(alerts["user"], alerts["day"])}
    tp = len(alerted & positives)
    fp = len(alerted - positives)
    insider_days = sorted(d for u, d in alerted if u == log.insider and d >= log.exfil_start_day)
    return AlertScore(
        true_positives=tp,
        false_positives=fp,
        precision=tp / len(alerted) if alerted else 0.0,
        recall=tp / len(positives) if positives else 0.0,
        days_to_detection=insider_days[0] - log.exfil_start_day if insider_days else None,
    )


# ------------------------------------------------- the insider's side: planned egress

#: Columns of one planned egress event (the audit log's, less ``time``, ``user`` and ``role``).
PLAN_COLUMNS: tuple[str, ...] = ("day", "hour", "host", "action", "resource", "bytes")

#: The audit log's egress actions: ``export`` takes a dataset out, ``download`` a model.
EGRESS_ACTIONS: dict[str, str] = {"dataset": "export", "model": "download"}


@dataclass(frozen=True)
class InsiderView:
    """What the insider knows when planning: the log of everyone's normal work (their own included,
    their exfiltration left out), who they are, and the days they can act on
    (``first_day`` to ``n_days - 1``)."""

    events: pd.DataFrame
    insider: str
    first_day: int
    n_days: int


def insider_view(log: AuditLog) -> InsiderView:
    """The insider's view of ``log``: its events without the exfiltration rows, from the day the
    exfiltration started to the end of the log."""
    events = log.events.loc[~log.is_exfil].reset_index(drop=True)
    return InsiderView(events, log.insider, log.exfil_start_day, int(log.events["day"].max()) + 1)


def planned_rows(planned: object) -> list[dict[str, object]] | None:
    """``planned`` (a DataFrame or a list of dicts) as a list of plain dicts with Python scalars
    (numpy's are unwrapped), the form a hidden test records; None for anything else.
    Nothing is validated here: the grader does that."""
    if isinstance(planned, pd.DataFrame):
        records: object = planned.to_dict("records")
    else:
        records = planned
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        return None
    return [{str(k): (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()} for r in records]


def with_planned_events(events: pd.DataFrame, user: str, planned: object) -> pd.DataFrame:
    """``events`` with ``user``'s planned egress events (:data:`PLAN_COLUMNS`, as a DataFrame or a
    list of dicts) merged in, as the audit log would record them: ``time`` from ``day`` and ``hour``,
    the user's role, sorted by time. ``events`` is not modified."""
    if isinstance(planned, pd.DataFrame):
        plan = planned.reindex(columns=list(PLAN_COLUMNS))
    else:
        rows = planned_rows(planned)
        if rows is None:
            raise TypeError("planned events should be a DataFrame or a list of dicts")
        plan = pd.DataFrame(rows, columns=list(PLAN_COLUMNS))
    if plan.empty:
        return events.copy()
    roles = events["role"].to_numpy()[events["user"].to_numpy() == user]
    if not len(roles):
        raise ValueError(f"user {user!r} does not appear in the events")
    hours = plan["day"].to_numpy(dtype=float) * 24.0 + plan["hour"].to_numpy(dtype=float)
    plan = plan.assign(time=(LOG_START + pd.to_timedelta(hours, unit="h")).floor("s"), user=user,
                       role=str(roles[0]), day=plan["day"].astype(int), bytes=plan["bytes"].astype(np.int64))
    merged = pd.concat([events, plan[list(events.columns)]], ignore_index=True)
    order = np.argsort(merged["time"].to_numpy(), kind="stable")
    return merged.take(order).reset_index(drop=True)


Detector = Callable[[pd.DataFrame], pd.DataFrame]


def team_detector(seed: int) -> Detector:
    """A per-user baseline detector of the kind the lab builds (Q10), as another team tuned it.

    ``detector(events) -> alerts``: a DataFrame with columns ``user`` and ``day``, one row per
    alerted user-day after the baseline period. Each (user, day) gets a weighted score of egress of
    (action, resource) pairs the user never took out in the baseline, events from hosts the user
    never used then, night egress by a user who never worked at night then, the day's egress bytes
    against the user's baseline daily average (log scale) and egress events beyond the user's busiest
    baseline day. The seed sets the baseline period, the weights and the threshold.
    """
    rng = np.random.default_rng(seed)
    baseline_days = int(rng.choice((14, 21, 28)))
    w_pair, w_host, w_night = (float(w) for w in rng.uniform(0.8, 1.5, size=3))
    w_volume = float(rng.uniform(0.8, 1.6))
    w_count = float(rng.uniform(0.0, 1.0))
    threshold = float(rng.uniform(2.0, 3.5))

    def detect(events: pd.DataFrame) -> pd.DataFrame:
        # integer codes instead of strings: the detector is queried many times
        user, names = pd.factorize(events["user"])
        action, actions = pd.factorize(events["action"])
        resource, catalogue = pd.factorize(events["resource"])
        host, hosts = pd.factorize(events["host"])
        day = events["day"].to_numpy(dtype=np.int64)
        clock = events["time"].dt.hour.to_numpy()
        egress = events["action"].isin(tuple(EGRESS_ACTIONS.values())).to_numpy()
        night = (clock < 7) | (clock >= 19)  # the lab's night: before 07:00 or from 19:00
        base = day < baseline_days
        pair = (user * len(actions) + action) * len(catalogue) + resource
        user_host = user * len(hosts) + host
        new_pair = egress & ~np.isin(pair, pair[base & egress])
        new_host = ~np.isin(user_host, user_host[base])
        odd_time = night & egress & ~np.isin(user, user[base & night])
        n_users, n_days = len(names), int(day.max()) + 1 if len(day) else 0
        cell = user * n_days + day

        def per_user_day(values: np.ndarray) -> np.ndarray:
            return np.bincount(cell, weights=values, minlength=n_users * n_days).reshape(n_users, n_days)

        egress_bytes = per_user_day(np.where(egress, events["bytes"].to_numpy(dtype=float), 0.0))
        egress_count = per_user_day(egress.astype(float))
        daily_mean = egress_bytes[:, :baseline_days].sum(axis=1, keepdims=True) / baseline_days
        busiest = egress_count[:, :baseline_days].max(axis=1, keepdims=True, initial=0.0)
        volume = np.clip(np.log2(egress_bytes / (daily_mean + _MB) + 1e-9) - 1.0, 0.0, None)
        score = (w_pair * per_user_day(new_pair.astype(float)) + w_host * per_user_day(new_host.astype(float))
                 + w_night * per_user_day(odd_time.astype(float)) + w_volume * volume
                 + w_count * np.clip(egress_count - busiest, 0.0, None))
        score[:, :baseline_days] = 0.0  # alerts only after the baseline period
        rows, days = np.nonzero(score >= threshold)
        return pd.DataFrame({"user": [str(names[i]) for i in rows], "day": days.astype(int)})

    return detect


# ----------------------------------------------------------------- pickle corpus


@dataclass(frozen=True)
class CorpusFile:
    """One file of a pickle corpus: where it is, whether it is malicious, what it is."""

    path: Path
    malicious: bool
    family: str


def _op_str(s: str) -> bytes:
    raw = s.encode("utf-8")
    return b"\x8c" + bytes([len(raw)]) + raw if len(raw) < 256 else b"X" + len(raw).to_bytes(4, "little") + raw


def _call_global_p2(module: str, name: str, args: tuple[str, ...]) -> bytes:
    """Protocol 2: ``GLOBAL module name``, a tuple of string arguments, ``REDUCE``."""
    body = b"\x80\x02" + b"c" + module.encode() + b"\n" + name.encode() + b"\n" + b"("
    for a in args:
        body += b"X" + len(a.encode()).to_bytes(4, "little") + a.encode()
    return body + b"tR."


def _call_global_p4(module: str, name: str, args: tuple[str, ...], memoize: bool = True) -> bytes:
    """Protocol 4: two strings, ``STACK_GLOBAL``, a tuple of strings, ``REDUCE``."""
    body = b"\x80\x04" + _op_str(module) + (b"\x94" if memoize else b"") + _op_str(name) + (b"\x94" if memoize else b"")
    body += b"\x93" + (b"\x94" if memoize else b"") + b"("
    for a in args:
        body += _op_str(a)
    return body + b"tR."


def _wrapped_in_state_dict(payload_call: bytes, rng: np.random.Generator) -> bytes:
    """A benign-looking dict of numpy weights whose ``"meta"`` entry is a payload call
    (protocol 2). ``payload_call`` is a protocol-2 body without its header and STOP."""
    weights = {f"layer{i}.weight": rng.normal(size=(4, 3)).astype(np.float32) for i in range(2)}
    benign = pickle.dumps(weights, protocol=2)
    # benign = PROTO 2, EMPTY_DICT, BINPUT 0, MARK, ... SETITEMS, STOP
    assert benign[:2] == b"\x80\x02" and benign[-1:] == b"."
    # append one more item: SETITEM with key "meta" -> payload
    return benign[:-1] + b"X" + (4).to_bytes(4, "little") + b"meta" + payload_call + b"s."


def _marker_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('pwned')"


def _benign_object(rng: np.random.Generator, family: str) -> object:
    if family == "plain-data":
        return {"name": f"run-{int(rng.integers(1000))}", "lr": float(rng.uniform(1e-4, 1e-2)), "epochs": int(rng.integers(5, 50)), "tags": ["baseline", "v2"]}
    if family == "numpy-weights":
        return {f"fc{i}.weight": rng.normal(size=(int(rng.integers(2, 6)), 4)).astype(np.float32) for i in range(3)}
    if family == "ordered-state-dict":
        return OrderedDict((f"layer{i}.bias", rng.normal(size=4).astype(np.float64)) for i in range(2))
    if family == "sets-and-bytes":
        return {"vocab": {"a", "b", "c"}, "frozen": frozenset({1, 2}), "blob": bytes(rng.integers(0, 256, size=8, dtype=np.uint8))}
    if family == "numpy-scalars":
        return {"auc": np.float64(rng.uniform(0.7, 0.99)), "n": np.int64(rng.integers(100, 1000)), "hist": np.arange(5)}
    raise ValueError(f"unknown benign family {family!r}")


BENIGN_FAMILIES: tuple[str, ...] = ("plain-data", "numpy-weights", "ordered-state-dict", "sets-and-bytes", "numpy-scalars")
MALICIOUS_FAMILIES: tuple[str, ...] = (
    "exec-p2",
    "eval-p4",
    "posix-system",
    "subprocess-call",
    "io-fileio",
    "runpy-run-code",
    "hidden-in-state-dict",
)


def _malicious_bytes(family: str, marker: Path, rng: np.random.Generator) -> bytes:
    code = _marker_code(marker)
    if family == "exec-p2":
        return _call_global_p2("builtins", "exec", (code,))
    if family == "eval-p4":
        return _call_global_p4("builtins", "eval", (code,), memoize=bool(rng.integers(0, 2)))
    if family == "posix-system":
        return _call_global_p2("posix", "system", (f"touch {str(marker)!r}",))
    if family == "subprocess-call":
        # subprocess.call(("touch", marker)): a tuple of strings as its one argument
        body = b"\x80\x04" + _op_str("subprocess") + b"\x94" + _op_str("call") + b"\x94\x93\x94"
        return body + b"(" + _op_str("touch") + _op_str(str(marker)) + b"t\x85R."
    if family == "io-fileio":
        # _io.FileIO(marker, "w") creates the marker file: no os, no exec, no subprocess
        return _call_global_p4("_io", "FileIO", (str(marker), "w"), memoize=bool(rng.integers(0, 2)))
    if family == "runpy-run-code":
        # runpy._run_code(code, {}) executes code without naming exec or eval
        body = b"\x80\x02crunpy\n_run_code\n(X" + len(code.encode()).to_bytes(4, "little") + code.encode() + b"}tR."
        return body
    if family == "hidden-in-state-dict":
        inner = _call_global_p2("builtins", "exec", (code,))[2:-1]
        return _wrapped_in_state_dict(inner, rng)
    raise ValueError(f"unknown malicious family {family!r}")


def pickle_corpus(folder: str | Path, seed: int = 0, copies: int = 2) -> list[CorpusFile]:
    """Write a seeded corpus of benign and malicious pickle files into ``folder``.

    ``folder`` must be an existing directory you own (use ``tempfile.TemporaryDirectory()``).
    Every malicious payload, if someone loads it, only creates a marker file inside
    ``folder``; the generator itself never loads anything. Benign files use several
    protocols (0, 2, 4, 5); malicious ones use hand-assembled opcodes like real attacks.
    Each family appears ``copies`` times (different protocols and data); files are
    shuffled and named ``model_NNN.pkl`` so that the name gives nothing away.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"pickle_corpus() writes into an existing folder only, {root} is not one")
    rng = np.random.default_rng(seed)
    items: list[tuple[bytes, bool, str]] = []
    for family in BENIGN_FAMILIES:
        for _ in range(copies):
            protocol = int(rng.choice([0, 2, 4, 5]))
            items.append((pickle.dumps(_benign_object(rng, family), protocol=protocol), False, family))
    for family in MALICIOUS_FAMILIES:
        for _ in range(copies):
            marker = root / f"marker-{int(rng.integers(10**6)):06d}.txt"
            items.append((_malicious_bytes(family, marker, rng), True, family))
    order = rng.permutation(len(items))
    out: list[CorpusFile] = []
    for i, j in enumerate(order):
        data, malicious, family = items[int(j)]
        path = root / f"model_{i:03d}.pkl"
        with io.open(path, "wb") as fh:
            fh.write(data)
        out.append(CorpusFile(path, malicious, family))
    return out


# ------------------------------------------------------- model files as they are

#: The team's scikit-learn model zoo: what the registry holds, fitted by :func:`sklearn_model`.
SKLEARN_ZOO: tuple[str, ...] = (
    "LogisticRegression",
    "DecisionTreeClassifier",
    "RandomForestClassifier",
    "GaussianNB",
    "KMeans",
    "StandardScaler+LogisticRegression",
)

#: Column kinds of the team's pandas frames (:func:`pandas_frame`).
FRAME_COLUMNS: tuple[str, ...] = ("int", "float", "str", "datetime", "category", "bool")

#: Families of :func:`model_file_corpus`. Benign files are written by the frameworks themselves.
MODEL_FILE_BENIGN: tuple[str, ...] = (
    "torch-state-dict",
    "torch-checkpoint",
    "sklearn-estimator",
    "numpy-object-npy",
    "numpy-plain-npy",
    "pandas-frame",
)
MODEL_FILE_MALICIOUS: tuple[str, ...] = (
    "torch-zip-payload",
    "npy-object-payload",
    "pandas-attrs-payload",
    "sklearn-attr-payload",
    "reduce-payload",
    "getattr-chain",
    "numpy-runstring",
    "raw-opcodes",
)

#: Callables a ``__reduce__`` payload of :func:`model_file_corpus` may use.
PAYLOAD_CALLS: tuple[str, ...] = ("exec", "eval", "system", "subprocess", "runpy")


def sklearn_model(name: str, seed: int = 0) -> object:
    """A small fitted scikit-learn model of :data:`SKLEARN_ZOO` (seeded, on random data)."""
    from sklearn import cluster, ensemble, linear_model, naive_bayes, pipeline, preprocessing, tree

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40, int(rng.integers(3, 7))))
    y = (x[:, 0] + 0.5 * rng.normal(size=40) > 0).astype(np.int64)
    makers = {
        "LogisticRegression": lambda: linear_model.LogisticRegression(C=float(rng.uniform(0.1, 2.0))),
        "DecisionTreeClassifier": lambda: tree.DecisionTreeClassifier(max_depth=int(rng.integers(2, 5)), random_state=seed),
        "RandomForestClassifier": lambda: ensemble.RandomForestClassifier(n_estimators=3, max_depth=3, random_state=seed),
        "GaussianNB": naive_bayes.GaussianNB,
        "KMeans": lambda: cluster.KMeans(n_clusters=2, n_init=1, random_state=seed),
        "StandardScaler+LogisticRegression": lambda: pipeline.make_pipeline(preprocessing.StandardScaler(),
                                                                            linear_model.LogisticRegression()),
    }
    if name not in makers:
        raise ValueError(f"unknown scikit-learn model {name!r}; the zoo is {SKLEARN_ZOO}")
    model = makers[name]()
    model.fit(x, y)
    return model


def pandas_frame(seed: int = 0, columns: tuple[str, ...] = FRAME_COLUMNS) -> pd.DataFrame:
    """A small seeded frame with one column per kind in ``columns`` (see :data:`FRAME_COLUMNS`)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 9))
    makers = {
        "int": lambda: rng.integers(0, 100, size=n),
        "float": lambda: rng.normal(size=n),
        "str": lambda: [f"id-{int(v)}" for v in rng.integers(0, 999, size=n)],
        "datetime": lambda: pd.date_range("2026-03-02", periods=n, freq="D"),
        "category": lambda: pd.Categorical(rng.choice(["a", "b", "c"], size=n)),
        "bool": lambda: rng.random(n) < 0.5,
    }
    unknown = set(columns) - set(makers)
    if unknown:
        raise ValueError(f"unknown column kinds {sorted(unknown)}; known: {FRAME_COLUMNS}")
    return pd.DataFrame({f"{kind}_col": makers[kind]() for kind in columns})


class _Payload:
    """An object whose pickle calls ``call`` on load; every call only creates ``marker``."""

    def __init__(self, call: str, marker: Path) -> None:
        self.call = call
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        import os
        import runpy
        import subprocess

        code = _marker_code(self.marker)
        if self.call == "exec":
            return (exec, (code,))
        if self.call == "eval":
            return (eval, (code,))
        if self.call == "system":
            return (os.system, (f"touch {str(self.marker)!r}",))
        if self.call == "subprocess":
            return (subprocess.call, (("touch", str(self.marker)),))
        if self.call == "runpy":
            return (runpy._run_code, (code, {}))  # runs code without naming exec or eval
        raise ValueError(f"unknown payload call {self.call!r}")


def _getattr_chain(marker: Path, rng: np.random.Generator) -> bytes:
    """``getattr(__import__(module), name)(argument)``: the dangerous callable is never named by a
    GLOBAL, only ``builtins.getattr`` and ``builtins.__import__`` are (protocol 2)."""
    if rng.integers(0, 2):
        module, name, argument = "os", "system", f"touch {str(marker)!r}"
    else:
        module, name, argument = "builtins", "exec", _marker_code(marker)

    def text(s: str) -> bytes:
        return b"X" + len(s.encode()).to_bytes(4, "little") + s.encode()

    body = b"\x80\x02cbuiltins\ngetattr\n(cbuiltins\n__import__\n(" + text(module) + b"tR" + text(name) + b"tR"
    return body + b"(" + text(argument) + b"tR."


def _runstring(marker: Path, rng: np.random.Generator) -> bytes:
    """numpy's own test helper ``numpy.testing._private.utils.runstring(code, {})`` runs code:
    a bypass for any scanner that trusts a whole framework by module prefix."""
    code = _marker_code(marker)
    module, name = "numpy.testing._private.utils", "runstring"
    if rng.integers(0, 2):
        return b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n(X" + len(code.encode()).to_bytes(4, "little") + code.encode() + b"}tR."
    return b"\x80\x04" + _op_str(module) + b"\x94" + _op_str(name) + b"\x94\x93\x94(" + _op_str(code) + b"}tR."


def _torch_module(rng: np.random.Generator, seed: int) -> object:
    import torch

    torch.manual_seed(seed)
    if rng.integers(0, 2):
        widths = [int(rng.integers(4, 12)) for _ in range(int(rng.integers(1, 3)))]
        layers: list[torch.nn.Module] = []
        width = 8
        for w in widths:
            layers += [torch.nn.Linear(width, w), torch.nn.ReLU()]
            width = w
        model: torch.nn.Module = torch.nn.Sequential(*layers, torch.nn.Linear(width, 3))
    else:  # batch norm adds an int64 buffer (num_batches_tracked)
        model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(64, 3))
    dtype = [torch.float32, torch.float16, torch.bfloat16, torch.float64][int(rng.integers(0, 4))]
    return model.to(dtype)


def _optimizer_state(model: object, rng: np.random.Generator) -> dict[str, object]:
    """An optimizer's ``state_dict()`` after some steps, in torch's format (SGD with momentum or Adam/AdamW).
    Written out directly: calling ``torch.optim`` would import torch's compiler stack, seconds for nothing."""
    import torch

    params = list(model.parameters())  # type: ignore[attr-defined]
    steps = float(rng.integers(10, 1000))
    if rng.integers(0, 2):
        state = {i: {"momentum_buffer": 0.01 * torch.randn_like(p)} for i, p in enumerate(params)}
        group: dict[str, object] = {"lr": 0.1, "momentum": 0.9, "dampening": 0, "weight_decay": 0.0, "nesterov": False,
                                    "maximize": False, "foreach": None, "differentiable": False, "fused": None}
    else:
        state = {i: {"step": torch.tensor(steps), "exp_avg": 0.01 * torch.randn_like(p),
                     "exp_avg_sq": 1e-4 * torch.rand_like(p)} for i, p in enumerate(params)}
        group = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": float(rng.choice([0.0, 0.01])),
                 "amsgrad": False, "maximize": False, "foreach": None, "capturable": False, "differentiable": False,
                 "fused": None}
    return {"state": state, "param_groups": [{**group, "params": list(range(len(params)))}]}


def _torch_checkpoint(rng: np.random.Generator, seed: int) -> dict[str, object]:
    model = _torch_module(rng, seed).float()  # type: ignore[attr-defined]
    return {"model": model.state_dict(), "optimizer": _optimizer_state(model, rng), "epoch": int(rng.integers(1, 50)),
            "best_accuracy": float(rng.uniform(0.7, 0.99)), "config": {"lr": 0.1, "tags": ["v2"]}}


def _object_array(rng: np.random.Generator) -> np.ndarray:
    items: list[object] = [{"label": int(rng.integers(10)), "score": float(rng.random())}, f"note-{int(rng.integers(100))}",
                           [1, 2, 3], None]
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _write_model_file(path: Path, family: str, rng: np.random.Generator, seed: int, marker: Path) -> Path:
    """Write one file of ``family`` at ``path`` (the suffix may change with the format)."""
    import torch

    payload = _Payload(str(rng.choice(PAYLOAD_CALLS)), marker)
    if family in ("torch-state-dict", "torch-checkpoint", "torch-zip-payload"):
        path = path.with_suffix(".pt")
        if family == "torch-state-dict":
            obj: object = _torch_module(rng, seed).state_dict()
        else:
            obj = _torch_checkpoint(rng, seed)
            if family == "torch-zip-payload":
                obj["config"] = payload  # type: ignore[index]
        torch.save(obj, path)
    elif family in ("numpy-object-npy", "numpy-plain-npy", "npy-object-payload"):
        path = path.with_suffix(".npy")
        if family == "numpy-plain-npy":
            array = rng.normal(size=(int(rng.integers(2, 6)), 4)).astype(np.float32)
        else:
            array = _object_array(rng)
            if family == "npy-object-payload":
                array[int(rng.integers(len(array)))] = payload
        np.save(path, array, allow_pickle=True)
    elif family in ("pandas-frame", "pandas-attrs-payload"):
        kinds = tuple(k for k in FRAME_COLUMNS if rng.random() < 0.6) or ("int",)
        frame = pandas_frame(seed, kinds)
        if family == "pandas-attrs-payload":
            frame.attrs["provenance"] = payload
        path = path.with_suffix(".pkl")
        frame.to_pickle(path)
    elif family in ("sklearn-estimator", "sklearn-attr-payload"):
        model = sklearn_model(str(rng.choice(SKLEARN_ZOO)), seed)
        if family == "sklearn-attr-payload":
            model.calibration_ = payload  # type: ignore[attr-defined]
        path = path.with_suffix(".pkl")
        path.write_bytes(pickle.dumps(model, protocol=int(rng.choice([2, 4, 5]))))
    else:
        path = path.with_suffix(".pkl")
        if family == "reduce-payload":
            data = pickle.dumps(payload, protocol=int(rng.integers(0, 6)))
        elif family == "getattr-chain":
            data = _getattr_chain(marker, rng)
        elif family == "numpy-runstring":
            data = _runstring(marker, rng)
        elif family == "raw-opcodes":
            data = _malicious_bytes(str(rng.choice(MALICIOUS_FAMILIES)), marker, rng)
        else:
            raise ValueError(f"unknown model-file family {family!r}")
        path.write_bytes(data)
    return path


def model_file_corpus(folder: str | Path, seed: int = 0, copies: int = 2) -> list[CorpusFile]:
    """Write a seeded corpus of *real* model files into ``folder``: benign ones written by the
    frameworks themselves (``torch.save`` zip checkpoints, pickled scikit-learn models of
    :data:`SKLEARN_ZOO`, ``numpy.save`` of object and plain arrays, ``DataFrame.to_pickle``) and
    malicious ones (``__reduce__`` payloads of :data:`PAYLOAD_CALLS` with any protocol, nested
    inside a torch checkpoint, an object array, a frame's ``attrs`` or a fitted estimator;
    ``getattr`` chains; numpy's ``runstring``; the hand-assembled opcodes of :func:`pickle_corpus`).

    ``folder`` must be an existing directory you own. Every malicious payload, if loaded, only
    creates a marker file inside ``folder``; the generator never loads anything. Files are named
    ``file_NNN`` plus the framework's usual suffix (``.pt``, ``.npy``, ``.pkl``), in shuffled order.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"model_file_corpus() writes into an existing folder only, {root} is not one")
    rng = np.random.default_rng(seed)
    plan = [(family, False) for family in MODEL_FILE_BENIGN for _ in range(copies)]
    plan += [(family, True) for family in MODEL_FILE_MALICIOUS for _ in range(copies)]
    order = rng.permutation(len(plan))
    out: list[CorpusFile] = []
    for i, j in enumerate(order):
        family, malicious = plan[int(j)]
        marker = root / f"marker-{int(rng.integers(10**6)):06d}.txt"
        path = _write_model_file(root / f"file_{i:03d}", family, rng, seed * 1000 + i, marker)
        out.append(CorpusFile(path, malicious, family))
    return out
