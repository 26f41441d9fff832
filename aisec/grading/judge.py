"""Verdicts decided outside the student's process.

Hidden tests call :func:`aisec.check.record` to display plain values under a private MIME
type. After a submission has run, :class:`JudgeRecords` (an nbgrader preprocessor placed
between execution and ``SaveAutoGrades``) compares each autograded test cell's records with
the records of the instructor's reference run, using the reference's rules. A test cell
whose records are missing, malformed or wrong gets an error output, which nbgrader scores
as zero; one whose records all pass has harmless stderr (warnings) turned into stdout so
that it is not scored as a failure. Feedback names the check that failed and why, never
the reference value or the hidden test code.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import nbformat
from nbformat.notebooknode import NotebookNode
from traitlets import Integer, Unicode

from aisec.check import RECORD_MIME

Record = dict[str, Any]

# ------------------------------------------------------------------------- comparisons


def _is_number(x: Any) -> bool:
    return type(x) in (int, float)


def _describe(x: Any) -> str:
    if isinstance(x, list):
        return "list"
    return {bool: "bool", int: "int", float: "float", str: "str", dict: "dict", type(None): "None"}.get(type(x), "value")


def _close(expected: Any, actual: Any, atol: float, rtol: float, path: str) -> str | None:
    if type(expected) is bool or type(actual) is bool:
        if type(expected) is not type(actual) or expected != actual:
            return f"{path}differs from the expected value"
        return None
    if _is_number(expected):
        if not _is_number(actual):
            return f"{path}should be a number, got {_describe(actual)}"
        if not math.isfinite(actual) or abs(actual - expected) > atol + rtol * abs(expected):
            return f"{path}is not within the tolerance of the expected value"
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return f"{path}should be a list/array, got {_describe(actual)}"
        if len(actual) != len(expected):
            return f"{path}has length {len(actual)}, expected {len(expected)}"
        for i, (e, a) in enumerate(zip(expected, actual)):
            reason = _close(e, a, atol, rtol, f"{path}[{i}] ")
            if reason:
                return reason
        return None
    if isinstance(expected, dict):
        if not isinstance(actual, dict) or set(actual) != set(expected):
            return f"{path}should be a dict with keys {sorted(expected)}"
        for k in expected:
            reason = _close(expected[k], actual[k], atol, rtol, f"{path}[{k!r}] ")
            if reason:
                return reason
        return None
    if type(actual) is not type(expected):
        return f"{path}should be a {_describe(expected)}, got {_describe(actual)}"
    return None if actual == expected else f"{path}differs from the expected value"


def compare(reference: Record, student: Record | None) -> str | None:
    """Why ``student`` fails the rule of ``reference``, or None when it passes."""
    if student is None:
        return "no value was recorded: the test stopped before this check (see the error above)"
    if "invalid" in student:
        return f"the value could not be graded ({student['invalid']})"
    rule = reference["rule"]
    value = student.get("value")
    measured = "is"
    if rule.get("score"):
        # A rate the grader measures itself from the student's raw outputs (aisec.grading.scorers).
        from aisec.grading.scorers import SCORERS, Malformed

        scorer = SCORERS.get(rule["score"])
        if scorer is None:
            return f"names an unknown scorer {rule['score']!r} (an authoring error: tell your instructor)"
        try:
            value = scorer(reference["value"], value)
        except Malformed as exc:
            return f"{exc}"
        measured = f"(its {rule['score'].replace('_', ' ')}, measured by the grader) is"
    if rule.get("at_least") is not None or rule.get("at_most") is not None:
        if not _is_number(value) or not math.isfinite(value):
            return f"should be a finite number, got {_describe(value)}"
        if rule.get("at_least") is not None and value < rule["at_least"]:
            return f"{measured} below the required threshold"
        if rule.get("at_most") is not None and value > rule["at_most"]:
            return f"{measured} above the allowed threshold"
        return None
    expected = reference["value"]
    if rule.get("unordered"):
        if not isinstance(value, list):
            return f"should be a list, got {_describe(value)}"
        key = lambda v: json.dumps(v, sort_keys=True)  # noqa: E731 - a sort key for plain data
        expected, value = sorted(expected, key=key), sorted(value, key=key)
    return _close(expected, value, float(rule.get("atol", 0.0)), float(rule.get("rtol", 0.0)), "")


# -------------------------------------------------------------------- reading records


def cell_records(cell: NotebookNode) -> tuple[dict[str, Record], list[str]]:
    """The records displayed by one cell, and the keys recorded more than once."""
    found: dict[str, Record] = {}
    duplicates: list[str] = []
    for output in cell.get("outputs", []):
        if output.get("output_type") not in ("display_data", "execute_result"):
            continue
        payload = output.get("data", {}).get(RECORD_MIME)
        if not isinstance(payload, dict) or not isinstance(payload.get("key"), str):
            continue
        key = payload["key"]
        if key in found:
            duplicates.append(key)
        found[key] = payload
    return found, duplicates


def notebook_records(nb: NotebookNode) -> dict[str, dict[str, Record]]:
    """``{grade_id: {key: record}}`` for every autograded code cell of an executed notebook."""
    result: dict[str, dict[str, Record]] = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade") and meta.get("grade_id"):
            result[meta["grade_id"]] = cell_records(cell)[0]
    return result


# ------------------------------------------------------------------- reference runs


def execute_notebook(path: Path, workdir: Path, timeout: int = 600, cache: Path | None = None) -> NotebookNode:
    """Execute a trusted notebook (the reference) exactly as submissions are executed.

    Same runner, same environment, same sandbox when it is available (otherwise the same
    runner unsandboxed: the source notebook is the instructor's own code), so that nothing in
    the environment tells a reference run from a student's run. The model cache is mounted
    writable here, which pre-warms it for the submissions (which only read it).
    """
    from aisec.grading.sandbox import Limits, apply_run, execute, sandbox_status

    nb = nbformat.read(path, as_version=4)
    limits = Limits(cell_timeout=timeout, wall_seconds=max(timeout * 3, 900), output_bytes=64 * 1024 * 1024)
    usable, _ = sandbox_status()
    run = execute(nb, path.name, workdir, limits, cache=cache, cache_writable=True, sandboxed=usable)
    if run.status != "ok":
        raise RuntimeError(f"reference run of {path.name} failed ({run.status}): {run.reason}")
    apply_run(nb, run)
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                raise RuntimeError(f"reference run of {path.name}: cell {index} raised {out.get('ename')}: {out.get('evalue')}")
    return nb


def reference_records(source_dir: Path, cache_dir: Path, assignment: str, notebook: str, timeout: int = 600) -> dict[str, dict[str, Record]]:
    """Records of the reference solution, from cache or by running the source notebook.

    The cache key is the hash of the whole source assignment folder, so editing a solution
    or a hidden test recomputes the reference. The reference must pass its own threshold
    rules; a reference that does not is an authoring error, raised here.
    """
    src = source_dir / assignment
    nb_path = src / f"{notebook}.ipynb"
    digest = hashlib.sha256()
    for f in sorted(p for p in src.rglob("*") if p.is_file() and ".ipynb_checkpoints" not in p.parts):
        digest.update(str(f.relative_to(src)).encode())
        digest.update(f.read_bytes())
    cached = cache_dir / assignment / f"{notebook}.{digest.hexdigest()[:16]}.json"
    if cached.exists():
        return json.loads(cached.read_text())
    with tempfile.TemporaryDirectory(prefix=f"aisec-ref-{assignment}-") as tmp:
        work = Path(tmp) / assignment
        shutil.copytree(src, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        from aisec.cache import cache_dir as model_cache_dir

        cache = model_cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        nb = execute_notebook(work / f"{notebook}.ipynb", work, timeout=timeout, cache=cache)
    records = notebook_records(nb)
    for grade_id, recs in records.items():
        for key, rec in recs.items():
            if "invalid" in rec:
                raise ValueError(f"reference {assignment}/{notebook}: record {key} is not gradable: {rec['invalid']}")
            reason = compare(rec, rec)
            if reason:
                raise ValueError(f"reference {assignment}/{notebook}: record {key} fails its own rule: {reason}")
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp_file = cached.with_suffix(".tmp")
    tmp_file.write_text(json.dumps(records, sort_keys=True))
    os.replace(tmp_file, cached)
    return records


# ------------------------------------------------------------------- the preprocessor


def judge_cell(cell: NotebookNode, reference: dict[str, Record]) -> list[str]:
    """Judge one executed autograded test cell in place; return the failure reasons."""
    student, duplicates = cell_records(cell)
    failures = [f"`{key}` was recorded more than once" for key in sorted(set(duplicates))]
    for key in sorted(reference):
        reason = compare(reference[key], student.get(key))
        if reason:
            failures.append(f"`{key}` {reason}")
    # The verdict comes from the records: a number displayed as the cell's result must not
    # become nbgrader's "partial credit".
    cell.outputs = [o for o in cell.outputs if o.get("output_type") != "execute_result"]
    has_error = any(o.get("output_type") == "error" for o in cell.outputs)
    if failures:
        cell.outputs.append(
            nbformat.v4.new_output(
                "error",
                ename="HiddenCheckFailed",
                evalue="; ".join(failures),
                traceback=["HiddenCheckFailed: hidden checks failed:"] + [f"  - {f}" for f in failures],
            )
        )
    elif not has_error:
        for o in cell.outputs:
            if o.get("output_type") == "stream" and o.get("name") == "stderr":
                o["name"] = "stdout"  # warnings are not failures
    return failures


try:
    from nbgrader.preprocessors import NbGraderPreprocessor
except ImportError:  # the student-side package works without nbgrader
    NbGraderPreprocessor = object  # type: ignore[misc,assignment]


class JudgeRecords(NbGraderPreprocessor):  # type: ignore[misc,valid-type]
    """nbgrader preprocessor: judge autograded test cells by their records."""

    source_root = Unicode("", help="Folder of the source (instructor) assignments").tag(config=True)
    reference_dir = Unicode("", help="Folder caching the reference runs' records").tag(config=True)
    timeout = Integer(900, help="Seconds allowed for a reference run").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]) -> tuple[NotebookNode, dict[str, Any]]:
        info = resources["nbgrader"]
        reference = reference_records(
            Path(self.source_root), Path(self.reference_dir), info["assignment"], info["notebook"], self.timeout
        )
        for cell in nb.cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if cell.cell_type != "code" or not meta.get("grade"):
                continue
            expected = reference.get(meta.get("grade_id"), {})
            if not expected:
                # Authoring rule: every autograded cell records something. Without records
                # the cell cannot be judged outside the student's kernel: fail closed.
                cell.outputs.append(
                    nbformat.v4.new_output(
                        "error", ename="UngradableCell", evalue="this test cell records no value", traceback=[]
                    )
                )
                continue
            failures = judge_cell(cell, expected)
            if failures:
                self.log.info("%s: %s failed: %s", info["student"], meta["grade_id"], "; ".join(failures))
        return nb, resources
