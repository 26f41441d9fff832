"""Scorers any lab can use: the grader measures a rate from a submission's raw per-case outputs.

Every scorer is ``f(reference, student) -> float``. ``reference`` is the value the instructor's
reference run recorded under the same key and carries the truth (labels, expected flags);
``student`` is the submission's value, from which only raw outputs are read. Shapes that do not
match raise :class:`Malformed` with a fixed message: nothing the student controls is echoed into
feedback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Malformed(ValueError):
    """The student's value cannot be scored against the reference."""


def reference_int(reference: Any, name: str, low: int = 0, high: int = 1_000_000) -> int:
    """The integer ``name`` of the reference's value (a seed, a count), within [low, high]."""
    value = reference.get(name) if isinstance(reference, dict) else None
    if type(value) is not int or not low <= value <= high:
        raise Malformed(f"the reference records no {name} (an authoring error: tell your instructor)")
    return value


def reference_field(reference: Any, name: str, kind: type) -> Any:
    """The field ``name`` of the reference's value, of exactly type ``kind``."""
    value = reference.get(name) if isinstance(reference, dict) else None
    if type(value) is not kind:
        raise Malformed(f"the reference records no {name} (an authoring error: tell your instructor)")
    return value


def _items(reference: Any, student: Any) -> list[tuple[Any, Any]]:
    if not isinstance(reference, list) or not isinstance(student, list):
        raise Malformed("should be a list")
    if len(reference) != len(student):
        raise Malformed("has a different number of cases than the lab's hidden inputs")
    return list(zip(reference, student))


def _field(item: Any, name: str, kind: type) -> Any:
    if not isinstance(item, dict) or type(item.get(name)) is not kind:
        raise Malformed(f"each case needs a {kind.__name__} field {name!r}")
    return item[name]


def _flags(reference: Any, student: Any) -> list[tuple[bool, bool]]:
    pairs = _items(reference, student)
    if not all(type(r) is bool and type(s) is bool for r, s in pairs):
        raise Malformed("should be a list of bools, one per case")
    return pairs


def recall(reference: Any, student: Any) -> float:
    """Flags: of the cases the reference flags (the positives), the fraction the student flags."""
    positives = [s for r, s in _flags(reference, student) if r]
    if not positives:
        raise Malformed("the reference flags no case")
    return sum(positives) / len(positives)


def false_positive_rate(reference: Any, student: Any) -> float:
    """Flags: of the cases the reference does not flag, the fraction the student flags."""
    negatives = [s for r, s in _flags(reference, student) if not r]
    if not negatives:
        raise Malformed("the reference has no negative case")
    return sum(negatives) / len(negatives)


def mean_overlap(reference: Any, student: Any) -> float:
    """Lists of ids per case: the mean fraction of the reference's ids the student also returned,
    with a student list no longer than the reference's."""
    total = 0.0
    pairs = _items(reference, student)
    for ref, stu in pairs:
        if not isinstance(ref, list) or not isinstance(stu, list) or not all(type(x) is str for x in stu):
            raise Malformed("each case should be a list of ids")
        if len(stu) > len(ref):
            raise Malformed("a case returned more ids than allowed")
        total += len(set(ref) & set(stu)) / len(ref) if ref else float(not stu)
    return total / len(pairs) if pairs else 0.0


def _labelled(reference: Any, student: Any, field: str) -> tuple[list[Any], list[Any]]:
    """``labels`` from the reference's record and ``field`` from the student's, of equal length."""
    if not isinstance(reference, dict) or not isinstance(reference.get("labels"), list):
        raise Malformed("the reference records no labels (an authoring error: tell your instructor)")
    if not isinstance(student, dict) or not isinstance(student.get(field), list):
        raise Malformed(f"should be a dict with a list {field!r}")
    labels, values = reference["labels"], student[field]
    if len(values) != len(labels):
        raise Malformed("has a different number of cases than the lab's hidden inputs")
    return labels, values


def accuracy(reference: Any, student: Any) -> float:
    """``{"labels": [...], "predictions": [...]}``: the fraction of the student's predictions equal
    to the reference's labels (exact types: ``1`` is not ``True``)."""
    labels, predictions = _labelled(reference, student, "predictions")
    if not labels:
        raise Malformed("the reference has no case")
    return sum(type(p) is type(t) and p == t for p, t in zip(predictions, labels)) / len(labels)


def auc(reference: Any, student: Any) -> float:
    """``{"labels": [0/1 ...], "scores": [float ...]}``: ROC AUC of the student's scores against the
    reference's labels (scikit-learn)."""
    labels, scores = _labelled(reference, student, "scores")
    if not all(type(s) in (int, float) and s == s and abs(s) != float("inf") for s in scores):
        raise Malformed("scores should be finite numbers")
    if len(set(labels)) != 2:
        raise Malformed("the reference labels need both classes (an authoring error: tell your instructor)")
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def _labelled_flags(reference: Any, student: Any) -> list[tuple[bool, bool]]:
    labels, flags = _labelled(reference, student, "flags")
    if not all(type(x) is bool for x in labels + flags):
        raise Malformed("flags should be a list of bools, one per case")
    return list(zip(labels, flags))


def flag_recall(reference: Any, student: Any) -> float:
    """``{"labels": [bool], "flags": [bool]}``: of the cases labelled positive by the reference, the
    fraction the student flags."""
    positives = [f for t, f in _labelled_flags(reference, student) if t]
    if not positives:
        raise Malformed("the reference labels no case positive")
    return sum(positives) / len(positives)


def flag_precision(reference: Any, student: Any) -> float:
    """``{"labels": [bool], "flags": [bool]}``: of the cases the student flags, the fraction
    labelled positive by the reference (0 when nothing is flagged)."""
    flagged = [t for t, f in _labelled_flags(reference, student) if f]
    return sum(flagged) / len(flagged) if flagged else 0.0


def flag_false_positives(reference: Any, student: Any) -> float:
    """``{"labels": [bool], "flags": [bool]}``: how many cases labelled negative the student flags."""
    return float(sum(f for t, f in _labelled_flags(reference, student) if not t))


SCORERS: dict[str, Callable[[Any, Any], float]] = {
    "accuracy": accuracy,
    "auc": auc,
    "flag_recall": flag_recall,
    "flag_precision": flag_precision,
    "flag_false_positives": flag_false_positives,
    "recall": recall,
    "false_positive_rate": false_positive_rate,
    "mean_overlap": mean_overlap,
}
