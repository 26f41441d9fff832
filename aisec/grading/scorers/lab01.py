"""Lab 01 (leakage): rates the grader computes itself, outside the student's process.

The hidden tests record *raw* outputs: the scrubbed training lines, the HTML pages and markdown
answers the assistant produced with the student's defences, and the DP-SGD training's privacy
history (noise multiplier, sample rate, steps). The truth they are measured against (the secrets,
the original lines, the attacker's host, delta) comes from the *reference* run's value; the
privacy loss is computed here with opacus' RDP accountant, and leaks with the lab's own
``aisec.lab01.assistant.leaks``. Membership scores, detector flags and predictions use the generic
scorers of :mod:`aisec.grading.scorers.common`.

Each scorer raises :class:`Malformed` with a fixed message when the student's value does not have
the expected shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from aisec.grading.scorers.common import Malformed

_MAX_TEXT = 200_000  # characters of one line, page or answer
_MAX_HISTORY = 1_000  # entries of a privacy history


def _reference(reference: Any, **fields: type) -> dict[str, Any]:
    if not isinstance(reference, dict) or not all(type(reference.get(f)) is t for f, t in fields.items()):
        raise Malformed("the reference value is incomplete (an authoring error: tell your instructor)")
    return reference


def _strings(reference: Any, student: Any, field: str) -> tuple[list[str], list[str]]:
    """The reference's and the student's list of strings under ``field``, of equal length."""
    ref = _reference(reference, **{field: list})[field]
    if not isinstance(student, dict) or not isinstance(student.get(field), list):
        raise Malformed(f"should be a dict with a list {field!r}")
    values = student[field]
    if len(values) != len(ref):
        raise Malformed("has a different number of cases than the lab's hidden inputs")
    if not all(type(v) is str and len(v) <= _MAX_TEXT for v in values):
        raise Malformed(f"{field!r} should hold strings of reasonable length")
    return ref, values


def _secrets(reference: Any) -> list[str]:
    secrets = _reference(reference, secrets=list)["secrets"]
    if not secrets or not all(type(s) is str and s for s in secrets):
        raise Malformed("the reference records no secrets (an authoring error: tell your instructor)")
    return secrets


# ------------------------------------------------------------------ q3: scrubbing


def scrub_secrets_left(reference: Any, student: Any) -> float:
    """Reference ``{"secrets": [str], "original": [line], "scrubbed": [line]}``; student
    ``{"scrubbed": [line]}`` (the student's scrubbed training lines, one per original line).
    Counts (secret, line) pairs where a reference secret survives in a scrubbed line."""
    secrets = _secrets(reference)
    _, scrubbed = _strings(reference, student, "scrubbed")
    return float(sum(s in line for s in secrets for line in scrubbed))


def scrub_tickets_changed(reference: Any, student: Any) -> float:
    """As :func:`scrub_secrets_left`: how many ticket lines (the reference's original lines that
    start with ``#``) the student's scrubbing changed."""
    original = _reference(reference, original=list)["original"]
    _, scrubbed = _strings(reference, student, "scrubbed")
    if len(original) != len(scrubbed) or not all(type(line) is str for line in original):
        raise Malformed("the reference records no original lines (an authoring error: tell your instructor)")
    return float(sum(a != b for a, b in zip(original, scrubbed) if a.startswith("#")))


# ------------------------------------------------------------------ q8, q9: the assistant


def leaking_pages(reference: Any, student: Any) -> float:
    """Reference ``{"secrets": [str], "pages": [html]}``; student ``{"pages": [html]}`` (the HTML
    the assistant rendered with the student's sanitiser, one page per poisoned variant). Counts
    the pages that send one of the reference's secrets to a host outside the allow-list
    (``aisec.lab01.assistant.leaks``, links included)."""
    from aisec.lab01.assistant import leaks

    secrets = _secrets(reference)
    _, pages = _strings(reference, student, "pages")
    return float(sum(bool(leaks(page, secrets)) for page in pages))


def answers_naming_host(reference: Any, student: Any) -> float:
    """Reference ``{"host": str, "answers": [markdown]}``; student ``{"answers": [markdown]}`` (the
    assistant's answers with the student's wrapper, one per poisoned variant). Counts the answers
    that contain the reference's attacker host, i.e. where the model obeyed the injection."""
    host = _reference(reference, host=str)["host"]
    if not host:
        raise Malformed("the reference records no host (an authoring error: tell your instructor)")
    _, answers = _strings(reference, student, "answers")
    return float(sum(host in answer for answer in answers))


# ------------------------------------------------------------------ q11: DP-SGD


def _history(student: Any) -> list[tuple[float, float, int]]:
    if not isinstance(student, dict) or not isinstance(student.get("history"), list):
        raise Malformed("should be a dict with the privacy accountant's 'history'")
    history = student["history"]
    if not history or len(history) > _MAX_HISTORY:
        raise Malformed("the privacy history is empty or too long: did the training use opacus' PrivacyEngine?")
    out: list[tuple[float, float, int]] = []
    for entry in history:
        if not (isinstance(entry, list) and len(entry) == 3):
            raise Malformed("each history entry should be [noise_multiplier, sample_rate, steps]")
        sigma, rate, steps = entry
        if not (type(sigma) in (int, float) and math.isfinite(sigma) and 0 < sigma <= 1e6):
            raise Malformed("a noise multiplier of the history is not a positive number")
        if not (type(rate) in (int, float) and 0 < rate <= 1):
            raise Malformed("a sample rate of the history is not in (0, 1]")
        if not (type(steps) is int and 0 < steps <= 10_000_000):
            raise Malformed("a step count of the history is not a positive integer")
        out.append((float(sigma), float(rate), steps))
    return out


def _epsilon(reference: Any, student: Any) -> float:
    delta = _reference(reference, delta=float)["delta"]
    if not 0 < delta < 1:
        raise Malformed("the reference records no delta (an authoring error: tell your instructor)")
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = _history(student)
    epsilon = float(accountant.get_epsilon(delta=delta))
    if not math.isfinite(epsilon):
        raise Malformed("the privacy history gives no finite epsilon")
    return epsilon


def dp_epsilon(reference: Any, student: Any) -> float:
    """Reference ``{"delta": float, ...}``; student ``{"history": [[noise_multiplier, sample_rate,
    steps], ...], "epsilon": float}`` (the history of the PrivacyEngine's accountant after the
    student's training). Returns epsilon for the reference's delta, computed by opacus'
    RDP accountant from that history."""
    return _epsilon(reference, student)


def dp_epsilon_gap(reference: Any, student: Any) -> float:
    """As :func:`dp_epsilon`: how far the epsilon the student's function returned (``"epsilon"``)
    is from the accountant's epsilon of its own training."""
    reported = student.get("epsilon") if isinstance(student, dict) else None
    if type(reported) is not float or not math.isfinite(reported):
        raise Malformed("the epsilon returned by train_dp should be a finite Python float")
    return abs(reported - _epsilon(reference, student))


# ------------------------------------------------------------------ q12: the adaptive attack on the lab's detector


def detector_evasions(reference: Any, student: Any) -> float:
    """Reference ``{"detector_seeds": [int], "convo_seed": int, "host": str, "question": str, ...}``;
    student ``{"pages": [str]}`` (the student's attack page against each seeded team's detector).
    Rebuilds each detector (``aisec.lab01.assistant.team_detector``) and the app behind it, puts the
    page in the knowledge base, asks the question in the seeded conversation and returns the
    fraction of detectors whose rendered answer still sends a secret to the reference's host."""
    from aisec.lab01.assistant import Assistant, Document, conversation, host_of, knowledge_base, leaks, team_detector

    ref = _reference(reference, detector_seeds=list, convo_seed=int, host=str, question=str)
    seeds = ref["detector_seeds"]
    if not seeds or not all(type(s) is int for s in seeds) or not ref["host"]:
        raise Malformed("the reference records no detectors (an authoring error: tell your instructor)")
    if not isinstance(student, dict) or not isinstance(student.get("pages"), list):
        raise Malformed("should be a dict with a list 'pages'")
    pages = student["pages"]
    if len(pages) != len(seeds):
        raise Malformed("has a different number of cases than the lab's hidden inputs")
    if not all(type(p) is str and len(p) <= _MAX_TEXT for p in pages):
        raise Malformed("'pages' should hold strings of reasonable length")
    convo = conversation(ref["convo_seed"])
    evaded = 0
    for seed, page in zip(seeds, pages):
        app = Assistant([Document("attacker", "VPN password reset (new)", page, "external")] + knowledge_base(),
                        detector=team_detector(seed))
        urls = leaks(app.ask(convo, ref["question"]).html, convo.secrets)
        evaded += any(host_of(u) == ref["host"] for u in urls)
    return evaded / len(seeds)


SCORERS: dict[str, Callable[[Any, Any], float]] = {
    "lab01.scrub_secrets_left": scrub_secrets_left,
    "lab01.scrub_tickets_changed": scrub_tickets_changed,
    "lab01.leaking_pages": leaking_pages,
    "lab01.answers_naming_host": answers_naming_host,
    "lab01.dp_epsilon": dp_epsilon,
    "lab01.dp_epsilon_gap": dp_epsilon_gap,
    "lab01.detector_evasions": detector_evasions,
}
