"""Judge: the grader's verdict on every autograded test cell, decided outside the student's process.

Hidden tests call :func:`aisec.check.record` to display plain values under a private MIME type;
:func:`aisec.check.check` reports which of a question's catalogued visible checks passed. After a
submission has run, :class:`JudgeRecords` (an nbgrader preprocessor after execution) compares each
test cell's records with the reference run's records under the reference's rules and builds a
:class:`~aisec.grading.verdicts.CellVerdict` per cell, kept in ``resources["aisec"]["verdicts"]``.
:class:`~aisec.grading.feedback.AuthorFeedback` then writes the cells' outputs from those verdicts.

Reasons are fixed texts: a reason never echoes a value, length, index or name the student's code
chose (each would be a channel out of the hidden tests), nor the reference value. A failed hidden
record also carries its authored hint (:func:`hidden_hints`: the lab's ``HIDDEN_HINTS`` in
``aisec/<lab>/checks.py``, the property the record tests), looked up by the reference's key.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from nbformat.notebooknode import NotebookNode
from traitlets import Unicode

from aisec.check import RECORD_MIME, UNGRADABLE_REASONS, VISIBLE_MIME
from aisec.grading.common import is_test_cell, nbgrader_meta
from aisec.grading.verdicts import CellVerdict, CheckVerdict, exception_name

Record = dict[str, Any]

# ------------------------------------------------------------------------- comparisons


def _is_number(x: Any) -> bool:
    return type(x) in (int, float)


def _kind(x: Any) -> str:
    if isinstance(x, list):
        return "a list"
    return {bool: "a bool", int: "an int", float: "a float", str: "a str", dict: "a dict", type(None): "None"}.get(
        type(x), "a value")


def _close(expected: Any, actual: Any, atol: float, rtol: float, path: str) -> str | None:
    """Why ``actual`` is not ``expected`` (path names the reference's dict keys only), or None."""
    where = f"{path} " if path else ""
    if type(expected) is bool or type(actual) is bool:
        if type(expected) is not type(actual):
            return f"{where}should be {_kind(expected)}"
        return None if expected == actual else f"{where}differs from the expected value"
    if _is_number(expected):
        if not _is_number(actual):
            return f"{where}should be a number"
        if not math.isfinite(actual) or abs(actual - expected) > atol + rtol * abs(expected):
            return f"{where}is not within the tolerance of the expected value"
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return f"{where}should be a list/array"
        if len(actual) != len(expected):
            return f"{where}has the wrong length"
        for e, a in zip(expected, actual):
            reason = _close(e, a, atol, rtol, f"{path}, an item," if path else "an item")
            if reason:
                return reason
        return None
    if isinstance(expected, dict):
        if not isinstance(actual, dict) or set(actual) != set(expected):
            return f"{where}should be a dict with keys {sorted(expected)}"
        for k in expected:
            reason = _close(expected[k], actual[k], atol, rtol, f"{path}[{k!r}]")
            if reason:
                return reason
        return None
    if type(actual) is not type(expected):
        return f"{where}should be {_kind(expected)}"
    return None if actual == expected else f"{where}differs from the expected value"


def _plain(value: Any) -> Any:
    """``value`` as plain JSON types (dict, list, str, numbers, None)."""
    return json.loads(json.dumps(value))


def compare(reference: Record, student: Record | None) -> str | None:
    """Why ``student`` fails the rule of ``reference``, or None when it passes."""
    if student is None:
        return "no value was recorded"
    if "invalid" in student:
        return f"the value could not be graded: {student['invalid']}" if student["invalid"] in UNGRADABLE_REASONS else \
            "the value could not be graded"
    rule = reference["rule"]
    value = student.get("value")
    measured = "is"
    if rule.get("score"):
        # A rate the grader measures itself from the student's raw outputs (aisec.grading.scorers).
        from aisec.grading.scorers import SCORERS, Malformed

        scorer = SCORERS.get(rule["score"])
        if scorer is None:
            return "names an unknown scorer (an authoring error: tell your instructor)"
        try:
            # Scorers get plain JSON data: records read back from a notebook are nbformat nodes (dict
            # subclasses), which a scorer's strict type checks would refuse.
            value = scorer(_plain(reference["value"]), _plain(value))
        except Malformed as exc:
            return str(exc)
        measured = f"(its {rule['score'].rsplit('.', 1)[-1].replace('_', ' ')}, measured by the grader) is"
    elif rule.get("at_least") is not None or rule.get("at_most") is not None:
        # A threshold on a number the student's kernel computed would be forgeable: refused.
        return "thresholds a number the submission reported (an authoring error: tell your instructor)"
    if rule.get("at_least") is not None or rule.get("at_most") is not None:
        if not _is_number(value) or not math.isfinite(value):
            return "should be a finite number"
        if rule.get("at_least") is not None and value < rule["at_least"]:
            return f"{measured} below the required threshold"
        if rule.get("at_most") is not None and value > rule["at_most"]:
            return f"{measured} above the allowed threshold"
        return None
    expected = reference["value"]
    if rule.get("unordered"):
        if not isinstance(value, list):
            return "should be a list"
        key = lambda v: json.dumps(v, sort_keys=True)  # noqa: E731 - a sort key for plain data
        expected, value = sorted(expected, key=key), sorted(value, key=key)
    return _close(expected, value, float(rule.get("atol", 0.0)), float(rule.get("rtol", 0.0)), "")



# -------------------------------------------------------------------- reading records


def _payloads(cell: NotebookNode, mime: str) -> list[Any]:
    found = []
    for output in cell.get("outputs", []):
        if output.get("output_type") in ("display_data", "execute_result"):
            data = output.get("data", {})
            if isinstance(data, Mapping) and mime in data:
                found.append(data[mime])
    return found


def cell_records(cell: NotebookNode) -> tuple[dict[str, Record], list[str]]:
    """The records displayed by one cell, and the keys recorded more than once."""
    found: dict[str, Record] = {}
    duplicates: list[str] = []
    for payload in _payloads(cell, RECORD_MIME):
        if not isinstance(payload, dict) or not isinstance(payload.get("key"), str):
            continue
        key = payload["key"]
        if key in found:
            duplicates.append(key)
        found[key] = payload
    return found, duplicates


def notebook_records(nb: NotebookNode) -> dict[str, dict[str, Record]]:
    """``{grade_id: {key: record}}`` for every autograded test cell of an executed notebook."""
    return {nbgrader_meta(c)["grade_id"]: cell_records(c)[0] for c in nb.cells if is_test_cell(c)}


QUESTION = re.compile(r"""\bcheck\(\s*["']([A-Za-z0-9_]+\.[A-Za-z0-9_]+)["']""")
VISIBLE_STATUS = {
    "passed": "",
    "failed": "failed: run this cell in your notebook to see the hint",
    "not_answered": "not answered yet: replace `raise NotImplementedError()` with your code",
    "not_run": "not reached: an earlier visible check of this question stopped",
}


def _catalogue(question: str) -> list[str]:
    """The descriptions of a question's visible checks (aisec/<lab>/checks.py), or [] if unknown."""
    from aisec.check import _load_checks

    try:
        return [c.description for c in _load_checks(question)]
    except ValueError:
        return []


def _visible_checks(cell: NotebookNode, question: str, stopped: bool) -> list[CheckVerdict]:
    """The catalogue's checks of ``question`` with the status the cell reported for them."""
    descriptions = _catalogue(question)
    reports = [p for p in _payloads(cell, VISIBLE_MIME)
               if isinstance(p, dict) and p.get("question") == question and isinstance(p.get("status"), list)]
    status = reports[-1]["status"] if reports else None
    if status is None or len(status) != len(descriptions) or not all(s in VISIBLE_STATUS for s in status):
        why = "not reached: the cell stopped before them" if stopped else "not reported (did the cell run `check`?)"
        return [CheckVerdict("visible", f"the checks of {question}", False, why)]
    return [CheckVerdict("visible", d, s == "passed", VISIBLE_STATUS[s]) for d, s in zip(descriptions, status)]


def hidden_hints(lab: str) -> dict[str, str]:
    """The authored hints of a lab's hidden records, ``{record key: property tested}``.

    ``lab`` is the assignment (``lab00_minimisation``) or its short id (``lab00``); a lab without a
    checks module or without ``HIDDEN_HINTS`` has none (its failed records show their key alone)."""
    import importlib

    short = lab.split("_", 1)[0]
    if not re.fullmatch(r"lab\d+", short):
        return {}
    try:
        module = importlib.import_module(f"aisec.{short}.checks")
    except ModuleNotFoundError:
        return {}
    hints = getattr(module, "HIDDEN_HINTS", {})
    return {str(k): str(v) for k, v in hints.items()} if isinstance(hints, Mapping) else {}


def judge_cell(cell: NotebookNode, reference: dict[str, Record], run_note: str | None = None,
               hints: Mapping[str, str] | None = None) -> CellVerdict:
    """The verdict on one executed test cell: how it ran, its visible checks, its hidden records.

    ``run_note``: why the grader stopped the notebook in or before this cell (None: it ran).
    ``hints``: the lab's authored hints by record key (:func:`hidden_hints`), shown with a failed record."""
    hints = hints or {}
    verdict = CellVerdict(nbgrader_meta(cell).get("grade_id", "?"))
    checks = verdict.checks
    if run_note:
        checks.append(CheckVerdict("run", "the cell", False, run_note))
    errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    stopped = bool(run_note) or bool(errors)
    for question in dict.fromkeys(QUESTION.findall(cell.get("source", ""))):
        checks.extend(_visible_checks(cell, question, stopped))
    raised = {str(o.get("ename")) for o in errors} - {"CheckFailed"}
    if "NotImplementedError" in raised:
        checks.append(CheckVerdict("run", "your code", False, VISIBLE_STATUS["not_answered"]))
        raised.discard("NotImplementedError")
    for name in sorted({exception_name(e) for e in raised}):
        checks.append(CheckVerdict("run", "your code", False, f"raised {name}"))
    if not reference:
        # Authoring rule: every autograded cell records something; without records the cell
        # cannot be judged outside the student's kernel: fail closed.
        checks.append(CheckVerdict("hidden", "records", False, "this test cell records no value (an authoring "
                                                                  "error: tell your instructor)"))
        return verdict
    student, duplicates = cell_records(cell)
    for key in sorted(reference):
        hint = hints.get(key, "")
        if key in duplicates:
            checks.append(CheckVerdict("hidden", key, False, "was recorded more than once", hint))
            continue
        if key not in student and stopped:
            checks.append(CheckVerdict("hidden", key, False, "not reached: the cell stopped before this check", hint))
            continue
        reason = compare(reference[key], student.get(key))
        checks.append(CheckVerdict("hidden", key, reason is None, reason or "", "" if reason is None else hint))
    return verdict


# ------------------------------------------------------------------- the preprocessor


try:
    from nbgrader.preprocessors import NbGraderPreprocessor
except ImportError:  # the student-side package works without nbgrader
    NbGraderPreprocessor = object  # type: ignore[misc,assignment]


def run_notes(run: Mapping[str, Any] | None, nb: NotebookNode) -> dict[int, str]:
    """``{cell index: why it did not finish}`` from the run summary the execute step left."""
    if not run or run.get("status") == "ok":
        return {}
    executed = set(run.get("executed", []))
    last = max(executed) if executed else -1
    why = STOP_REASONS.get(str(run.get("status")), "the run stopped")
    notes = {last: f"the grader stopped the notebook in this cell ({why})"} if last >= 0 else {}
    for index, cell in enumerate(nb.cells):
        if cell.get("cell_type") == "code" and index > last:
            notes[index] = f"not run: the grader stopped the notebook at an earlier cell ({why})"
    return notes


#: Fixed texts for how a run ended (the instructor's summary keeps the detailed reason).
STOP_REASONS = {
    "timeout": "a cell ran past its time limit",
    "wall_time": "the notebook ran past its wall-time limit",
    "dead_kernel": "the kernel died: memory limit or a crash",
    "memory": "the sandbox ran out of its memory limit",
    "output_limit": "the notebook's output exceeded its limit",
    "error": "the notebook could not be executed",
    "crashed": "the run ended without a result",
    "not_run": "nothing of the submission was executed",
}


class JudgeRecords(NbGraderPreprocessor):  # type: ignore[misc,valid-type]
    """nbgrader preprocessor: a structured verdict for every autograded test cell."""

    source_root = Unicode("", help="Folder of the source (instructor) assignments").tag(config=True)
    reference_dir = Unicode("", help="Folder caching the reference runs' records").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]) -> tuple[NotebookNode, dict[str, Any]]:
        from pathlib import Path

        from aisec.grading.reference import reference_run

        info = resources["nbgrader"]
        reference = reference_run(Path(self.source_root), Path(self.reference_dir), info["assignment"],
                                  info["notebook"]).records
        aisec = resources.setdefault("aisec", {})
        notes = run_notes(aisec.get("run"), nb)
        hints = hidden_hints(info["assignment"])
        verdicts: dict[str, dict[str, Any]] = {}
        for index, cell in enumerate(nb.cells):
            if not is_test_cell(cell):
                continue
            verdict = judge_cell(cell, reference.get(nbgrader_meta(cell)["grade_id"], {}), notes.get(index), hints)
            verdicts[verdict.grade_id] = verdict.to_json()
            if not verdict.passed:
                self.log.info("%s: %s failed: %s", info["student"], verdict.grade_id, "; ".join(verdict.lines()))
        aisec["verdicts"] = verdicts
        return nb, resources


__all__ = ["CellVerdict", "JudgeRecords", "compare", "hidden_hints", "judge_cell", "notebook_records", "cell_records"]
