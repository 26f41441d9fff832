"""Lab 07, part B (the served model): rates the grader computes itself, outside the student's process.

The hidden tests record raw artefacts: the stolen copy's weights, the outcomes of the student's TLS client
in each network setup (labels returned, exception class, keys the proxy learnt), a monitor's per-stream
flags and an ownership verdict per suspect. The grader rebuilds the truth with the lab's seeded ``aisec``
code from the seed the *reference* value carries (the victim model, the fidelity set, the query streams,
the suspects). Each scorer raises :class:`Malformed` with a fixed message when the student's value does not
have the expected shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from aisec.grading.scorers.common import Malformed, reference_int

SHAPES = {"body.0.weight": (64, 64), "body.0.bias": (64,), "head.weight": (10, 64), "head.bias": (10,)}
TLS_SETUPS = ("direct", "rogue_client", "relay", "forged", "plain_http")
MAX_INPUTS = 64


def _finite_nested(value: Any, shape: tuple[int, ...]) -> bool:
    if len(shape) == 1:
        return (type(value) is list and len(value) == shape[0]
                and all(type(x) in (int, float) and math.isfinite(x) for x in value))
    return type(value) is list and len(value) == shape[0] and all(_finite_nested(v, shape[1:]) for v in value)


@lru_cache(maxsize=4)
def _victim_labels(seed: int) -> Any:
    from aisec.lab07 import extraction

    return extraction.labels(extraction.victim(seed), extraction.fidelity_set(seed))


# ------------------------------------------------------------------ extraction


def fidelity(reference: Any, student: Any) -> float:
    """Reference ``{"seed": int, ...}``; student ``{"weights": {name: nested list}}`` (the state dict of
    ``aisec.lab07.extraction.surrogate``). The fraction of ``fidelity_set(seed)`` on which the loaded copy
    gives the label of the rebuilt ``victim(seed)``."""
    import numpy as np

    from aisec.lab07 import extraction

    seed = reference_int(reference, "seed")
    weights = student.get("weights") if isinstance(student, dict) else None
    if not isinstance(weights, dict) or set(weights) != set(SHAPES):
        raise Malformed("should be a dict with the copy's state_dict (the surrogate's four tensors)")
    if not all(_finite_nested(weights[k], shape) for k, shape in SHAPES.items()):
        raise Malformed("a tensor of the state_dict does not have the surrogate's shape or holds non-finite numbers")
    copy = extraction.load_surrogate(weights)
    return float(np.mean(extraction.labels(copy, extraction.fidelity_set(seed)) == _victim_labels(seed)))


# ------------------------------------------------------------------ TLS client


def tls_outcomes(reference: Any, student: Any) -> float:
    """Reference ``{"seed", "indices", ...}``; student ``{"cases": [{"setup", "labels", "error", "leaked"}]}``,
    one case per setup of ``TLS_SETUPS``. The fraction of setups with the secure outcome: ``direct`` returns the
    rebuilt victim's labels of ``fidelity_set(seed)[indices]``; ``relay`` returns them too and the relay learnt no
    key; ``forged`` raised ``SSLCertVerificationError`` and the proxy learnt no key; ``plain_http`` raised
    ``ValueError`` and the proxy learnt no key; ``rogue_client`` (a client certificate the CA never signed)
    returned no labels."""
    seed = reference_int(reference, "seed")
    indices = reference.get("indices")
    if type(indices) is not list or not 0 < len(indices) <= MAX_INPUTS or not all(type(i) is int and 0 <= i < 270 for i in indices):
        raise Malformed("the reference records no indices (an authoring error: tell your instructor)")
    cases = student.get("cases") if isinstance(student, dict) else None
    if type(cases) is not list or len(cases) != len(TLS_SETUPS):
        raise Malformed("should hold one case per network setup")
    by_setup: dict[str, dict] = {}
    for case in cases:
        if not isinstance(case, dict) or case.get("setup") not in TLS_SETUPS:
            raise Malformed("each case needs a known setup name")
        labels, error, leaked = case.get("labels"), case.get("error"), case.get("leaked")
        if labels is not None and (type(labels) is not list or not all(type(c) is int for c in labels)):
            raise Malformed("labels should be a list of ints or None")
        if error is not None and type(error) is not str:
            raise Malformed("error should be an exception's class name or None")
        if type(leaked) is not list or not all(type(k) is str for k in leaked):
            raise Malformed("leaked should be a list of strings")
        by_setup[case["setup"]] = case
    if set(by_setup) != set(TLS_SETUPS):
        raise Malformed("should hold one case per network setup")
    truth = [int(c) for c in _victim_labels(seed)[indices]]
    ok = {
        "direct": by_setup["direct"]["labels"] == truth,
        "relay": by_setup["relay"]["labels"] == truth and not by_setup["relay"]["leaked"],
        "forged": (by_setup["forged"]["error"] == "SSLCertVerificationError" and by_setup["forged"]["labels"] is None
                   and not by_setup["forged"]["leaked"]),
        "plain_http": (by_setup["plain_http"]["error"] == "ValueError" and by_setup["plain_http"]["labels"] is None
                       and not by_setup["plain_http"]["leaked"]),
        "rogue_client": by_setup["rogue_client"]["labels"] is None and by_setup["rogue_client"]["error"] is not None,
    }
    return sum(ok.values()) / len(ok)


# ------------------------------------------------------------------ monitoring and ownership


def _flags(student: Any, n: int) -> list[bool]:
    flags = student.get("flags") if isinstance(student, dict) else None
    if type(flags) is not list or len(flags) != n or not all(type(f) is bool for f in flags):
        raise Malformed("should be a dict with one bool flag per hidden case")
    return flags


@lru_cache(maxsize=4)
def _attackers(seed: int) -> tuple[bool, ...]:
    from aisec.lab07.extraction import query_streams

    return tuple(s.attacker for s in query_streams(seed))


def monitor_recall(reference: Any, student: Any) -> float:
    """Reference ``{"seed"}``; student ``{"flags": [bool per stream of query_streams(seed)]}``: the fraction of
    the attackers' streams flagged."""
    truth = _attackers(reference_int(reference, "seed"))
    flags = _flags(student, len(truth))
    return sum(f for f, t in zip(flags, truth) if t) / sum(truth)


def monitor_false_positives(reference: Any, student: Any) -> float:
    """As :func:`monitor_recall`: the fraction of benign users' streams flagged."""
    truth = _attackers(reference_int(reference, "seed"))
    flags = _flags(student, len(truth))
    return sum(f for f, t in zip(flags, truth) if not t) / (len(truth) - sum(truth))


@lru_cache(maxsize=4)
def _stolen(seed: int) -> tuple[bool, ...]:
    from aisec.lab07.watermark import suspects

    return tuple(s.stolen for s in suspects(seed))


def ownership_accuracy(reference: Any, student: Any) -> float:
    """Reference ``{"seed"}``; student ``{"flags": [bool per suspect of watermark.suspects(seed)]}``: the
    fraction of suspects whose verdict (stolen or not) is right."""
    truth = _stolen(reference_int(reference, "seed"))
    flags = _flags(student, len(truth))
    return sum(f == t for f, t in zip(flags, truth)) / len(truth)


SCORERS: dict[str, Callable[[Any, Any], float]] = {
    "lab07.fidelity": fidelity,
    "lab07.tls_outcomes": tls_outcomes,
    "lab07.monitor_recall": monitor_recall,
    "lab07.monitor_false_positives": monitor_false_positives,
    "lab07.ownership_accuracy": ownership_accuracy,
}
