"""The house rules for notebooks, checked on every lab and lesson (see grader/AUTHORING.md)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import nbformat
import pytest

from conftest import ROOT, SOLUTIONS, lesson_notebooks, nb_id, solution_notebooks
from notebook_utils import HIDDEN_RE, SOLUTION_RE, autograded_code_cells, nbgrader_meta


def tracked_notebooks() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / line for line in out.split()]


def test_committed_notebooks_have_no_outputs() -> None:
    dirty = []
    for path in tracked_notebooks():
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        if any(c.get("outputs") or c.get("execution_count") for c in nb.cells):
            dirty.append(str(path.relative_to(ROOT)))
    assert not dirty, f"strip outputs and execution counts from: {dirty}"


@pytest.mark.parametrize("notebook", solution_notebooks(), ids=nb_id)
def test_lab_opens_with_objectives_time_prerequisites_and_threat_mappings(notebook: Path) -> None:
    nb = nbformat.read(notebook, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "markdown").source
    for needle in ("Learning objectives", "Estimated time", "Prerequisites", "ATLAS", "OWASP"):
        assert needle.lower() in first.lower(), f"the lab's first cell does not state {needle!r}"
    assert re.search(r"AML\.T\d{4}", first), "name MITRE ATLAS technique ids (AML.Txxxx)"
    assert re.search(r"\bML\d{2}\b", first) or re.search(r"\bLLM\d{2}:2025\b", first), (
        "name OWASP ML Top 10 entries (MLxx) or OWASP Top 10 for LLM Applications 2025 entries (LLMxx:2025)"
    )


def threshold_records_without_a_scorer(source: str) -> list[str]:
    """The ``record(...)`` calls of ``source`` that put a threshold on a number the kernel reported.

    A threshold (``at_least``/``at_most``) is only allowed on a rate the grader computes itself from
    raw outputs, i.e. with ``score=`` naming a registered scorer."""
    import ast

    from aisec.grading.scorers import SCORERS

    bad = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "record"):
            continue
        kw = {k.arg: k.value for k in node.keywords}
        if "at_least" in kw or "at_most" in kw:
            score = kw.get("score")
            if not (isinstance(score, ast.Constant) and score.value in SCORERS):
                bad.append(ast.unparse(node)[:120])
    return bad


def test_the_threshold_rule_catches_a_reported_number() -> None:
    assert threshold_records_without_a_scorer("record('q.x', acc, at_least=0.9)") == ["record('q.x', acc, at_least=0.9)"]
    assert threshold_records_without_a_scorer("record('q.x', v, score='nope', at_most=1)")
    assert not threshold_records_without_a_scorer("record('q.x', v, score='accuracy', at_least=0.9)")
    assert not threshold_records_without_a_scorer("record('q.x', v, atol=1e-6)")


@pytest.mark.parametrize("notebook", solution_notebooks(), ids=nb_id)
def test_no_point_hinges_on_a_number_the_students_kernel_reports(notebook: Path) -> None:
    nb = nbformat.read(notebook, as_version=4)
    bad = [call for cell in autograded_code_cells(nb) for call in threshold_records_without_a_scorer(cell.source)]
    assert not bad, f"thresholds on kernel-reported numbers (record raw outputs with score=...): {bad}"


@pytest.mark.parametrize("notebook", solution_notebooks(), ids=nb_id)
def test_every_graded_cell_is_judged_by_hidden_records(notebook: Path) -> None:
    nb = nbformat.read(notebook, as_version=4)
    cells = autograded_code_cells(nb)
    assert cells, "a lab needs auto-graded test cells"
    ids = [nbgrader_meta(c).get("grade_id") for c in nb.cells if nbgrader_meta(c)]
    assert len(ids) == len(set(ids)), "grade_ids must be unique"
    for cell in cells:
        meta = nbgrader_meta(cell)
        assert meta.get("locked") and meta.get("points", 0) > 0, f"{meta['grade_id']}: test cells are locked and worth points"
        hidden = HIDDEN_RE.findall(cell.source)
        assert hidden and any("record(" in h for h in hidden), f"{meta['grade_id']}: no record() in a hidden test block"
        keys = re.findall(r"record\(\s*f?[\"']([^\"'{]+)", "".join(hidden))
        assert all(k.startswith(meta["grade_id"] + ".") for k in keys), f"{meta['grade_id']}: record keys start with the grade_id"
        last = cell.source.strip().splitlines()[-1]
        assert not re.fullmatch(r"[\w.]+", last), f"{meta['grade_id']}: a bare expression as last line becomes partial credit"


def hidden_record_keys(nb: nbformat.NotebookNode) -> list[str]:
    """The keys recorded in a notebook's hidden blocks; an f-string key's fields are kept as ``{...}``."""
    hidden = "".join(h for cell in autograded_code_cells(nb) for h in HIDDEN_RE.findall(cell.source))
    return re.findall(r"""record\(\s*f?["']([^"']+)["']""", hidden)


def key_pattern(key: str) -> re.Pattern[str]:
    """A recorded key as a pattern: an f-string field ``{_i}`` stands for any text."""
    return re.compile("".join(".+" if part.startswith("{") else re.escape(part) for part in re.split(r"(\{[^}]*\})", key)))


def test_hidden_record_keys_read_f_strings_as_patterns() -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "check('lab00.q1', f)\n### BEGIN HIDDEN TESTS\nrecord('q_test.a', 1)\nrecord(f\"q_test.rows_{_i}\", 2)\n"
        "### END HIDDEN TESTS", metadata={"nbgrader": {"grade": True, "grade_id": "q_test", "points": 1}})])
    assert hidden_record_keys(nb) == ["q_test.a", "q_test.rows_{_i}"]
    assert key_pattern("q_test.rows_{_i}").fullmatch("q_test.rows_0") and not key_pattern("q_test.a").fullmatch("q_test.ab")


@pytest.mark.parametrize("notebook", solution_notebooks(), ids=nb_id)
def test_every_hidden_record_has_an_authored_hint(notebook: Path) -> None:
    """Feedback on a failed hidden record names the property it tests (aisec.grading.judge.hidden_hints),
    never a value: every recorded key has a hint in the lab's checks module, and every hint a record."""
    from aisec.grading.judge import hidden_hints

    lab = notebook.parent.name.split("_", 1)[0]
    hints = hidden_hints(lab)
    keys = hidden_record_keys(nbformat.read(notebook, as_version=4))
    patterns = [key_pattern(k) for k in keys]
    unhinted = [k for k, p in zip(keys, patterns) if not any(p.fullmatch(h) for h in hints)]
    assert not unhinted, f"{lab}: hidden records without a hint in aisec/{lab}/checks.py HIDDEN_HINTS: {unhinted}"
    stale = [h for h in hints if not any(p.fullmatch(h) for p in patterns)]
    assert not stale, f"{lab}: HIDDEN_HINTS for keys no hidden block records: {stale}"
    valued = [h for h, text in hints.items() if not text.strip() or re.search(r"\d\.\d|\d{2,}", text)]
    assert not valued, f"{lab}: hints name properties, not values (no numbers): {valued}"


@pytest.mark.parametrize("notebook", solution_notebooks(), ids=nb_id)
def test_labs_have_manually_graded_reflection(notebook: Path) -> None:
    nb = nbformat.read(notebook, as_version=4)
    solutions = [c for c in nb.cells if nbgrader_meta(c).get("solution")]
    assert all(SOLUTION_RE.search(c.source) for c in solutions if c.cell_type == "code"), "code answers need solution markers"
    lab_dir = notebook.parent
    manual = [
        c
        for path in lab_dir.glob("*.ipynb")
        for c in nbformat.read(path, as_version=4).cells
        if c.cell_type == "markdown" and nbgrader_meta(c).get("grade") and nbgrader_meta(c).get("solution")
    ]
    assert manual, f"{lab_dir.name} needs at least one manually graded written answer"


@pytest.mark.parametrize("notebook", [p for p in lesson_notebooks() if p.name.startswith("lesson")], ids=nb_id)
def test_lessons_end_with_summary_and_exercises(notebook: Path) -> None:
    nb = nbformat.read(notebook, as_version=4)
    headings = [line for c in nb.cells if c.cell_type == "markdown" for line in c.source.splitlines() if line.startswith("#")]
    tail = " ".join(headings[-4:]).lower()
    assert "summary" in tail and "exercises" in tail, f"the last headings are {headings[-4:]}"
    first = next(c for c in nb.cells if c.cell_type == "markdown").source.lower()
    assert "objectives" in first, "a lesson opens with its learning objectives"


MODULE_HOURS = re.compile(r"^### Module (\d+) — .*· ≈ (\d+(?:\.\d+)?) h \+ (\d+(?:\.\d+)?) h$", re.M)
STATED_TIME = re.compile(r"\*\*Estimated time[.:]?\*\*[.:]?\s*\|?\s*(?:About\s+)?(\d+(?:\.\d+)?)\s*(minutes|hours?)\b")


def stated_minutes(notebook: Path) -> float:
    """The time a notebook's opening states, in minutes: one value, no range (the syllabus adds them up)."""
    opening = " ".join(c.source for c in nbformat.read(notebook, as_version=4).cells[:3] if c.cell_type == "markdown")
    match = STATED_TIME.search(opening)
    assert match, f"{notebook.name}: the opening needs '**Estimated time.** N minutes' (or N hours)"
    value = float(match.group(1))
    return value * 60 if match.group(2).startswith("hour") else value


def test_estimated_times_match_the_syllabus() -> None:
    """Each module's lesson and lab state the hours the syllabus gives them, and the total adds them up."""
    syllabus = (ROOT / "course" / "syllabus.md").read_text()
    modules = {int(n): (float(lesson), float(lab)) for n, lesson, lab in MODULE_HOURS.findall(syllabus)}
    assert modules, "the syllabus's module headings should end with '· ≈ L h + B h'"
    for number, (lesson_h, lab_h) in sorted(modules.items()):
        lessons = sorted((ROOT / "course").glob(f"lesson{number:02d}_*.ipynb"))
        labs = sorted(SOLUTIONS.glob(f"lab{number:02d}_*/lab{number:02d}_*.ipynb"))
        assert len(lessons) == 1 and len(labs) == 1, f"module {number}: lessons {lessons}, labs {labs}"
        assert stated_minutes(lessons[0]) == lesson_h * 60, f"{lessons[0].name} vs the syllabus's {lesson_h} h"
        assert stated_minutes(labs[0]) == lab_h * 60, f"{labs[0].name} vs the syllabus's {lab_h} h"
    lesson_total = sum(lesson for lesson, _ in modules.values())
    lab_total = sum(lab for _, lab in modules.values())
    total = re.search(r"\*\*Total: about (\d+(?:\.\d+)?) hours\*\*: (\d+(?:\.\d+)?) h of lessons and (\d+(?:\.\d+)?) h of labs",
                      syllabus)
    assert total, "the syllabus states '**Total: about T hours**: L h of lessons and B h of labs'"
    assert (float(total.group(2)), float(total.group(3))) == (lesson_total, lab_total), (
        f"the modules add up to {lesson_total} h of lessons and {lab_total} h of labs")
    assert abs(float(total.group(1)) - (lesson_total + lab_total)) <= 0.5
    modules_with_labs = {int(p.name[3:5]) for p in SOLUTIONS.glob("lab*_*") if p.is_dir()}
    assert modules_with_labs <= set(modules), f"labs without a syllabus module: {sorted(modules_with_labs - set(modules))}"


@pytest.mark.parametrize("notebook", solution_notebooks(), ids=nb_id)
def test_run_all_goes_on_past_unanswered_questions(notebook: Path) -> None:
    """Every given code cell after the first answer cell (test cells, and cells that use answers or their results)
    is tagged ``raises-exception``: JupyterLab's Run All then goes on past a failing check or a stub, so a student
    sees every question's status in one pass. Grading is unaffected (the grader runs every cell whatever the tag,
    and scores a test cell by its verdict; the round trip shows full marks and zero as before)."""
    untagged, answered = [], False
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        if nbgrader_meta(cell).get("solution"):
            answered = True
        elif (answered or nbgrader_meta(cell).get("grade")) and "raises-exception" not in cell.metadata.get("tags", []):
            untagged.append(nbgrader_meta(cell).get("grade_id") or cell.get("id"))
    assert not untagged, f"cells that would stop Run All at an unanswered question (tag them raises-exception): {untagged}"


ATLAS_ID = re.compile(r"\bAML\.(?:TA|T|M)\d{4}(?:\.\d{3})?\b")


def test_every_atlas_id_exists_in_the_release_the_course_cites() -> None:
    """Every MITRE ATLAS id in a lesson, lab or the syllabus is a tactic, technique or mitigation of ATLAS 5.6.0
    (tests/data/atlas-5.6.0.tsv, from the ATLAS data release): a typo or a retired id fails here."""
    known = {line.split("\t")[0] for line in (ROOT / "tests" / "data" / "atlas-5.6.0.tsv").read_text().splitlines()
             if line and not line.startswith("#")}
    sources = [*(ROOT / "course").glob("*.ipynb"), *(ROOT / "course").glob("*.md"), *solution_notebooks()]
    unknown = {f"{path.name}: {atlas_id}" for path in sources for atlas_id in ATLAS_ID.findall(path.read_text())
               if atlas_id not in known}
    assert not unknown, f"ATLAS ids that ATLAS 5.6.0 does not have: {sorted(unknown)}"
