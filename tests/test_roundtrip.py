"""The instructor's round trip, for every lab: source → release → submission → grade → feedback → export.

Labs are discovered from ``solutions/``, so a new lab is covered without editing this file. Each solution
runs top to bottom once, as the grader's reference run (which fails on any cell that raises), and once as
the 'reference' student's submission.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
from html import unescape
from pathlib import Path

import nbformat
import pytest

from conftest import LABS, ROOT, SOLUTIONS, lab_ids
from notebook_utils import HIDDEN_RE, autograded_code_cells, nbgrader, nbgrader_meta, secret_lines

pytestmark = pytest.mark.slow
RECORD_KEY = re.compile(r"""record\(\s*f?["']([A-Za-z0-9_.]+)""")


def test_labs_are_in_sync_with_solutions(tmp_path: Path) -> None:
    from aisec.grading.release import release

    release(lab_ids(), into=tmp_path)
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(p.relative_to(LABS) for p in LABS.rglob("*") if p.is_file())
    assert committed == fresh, "labs/ has other files than a fresh release: run python -m aisec.grading.release"
    drifted = [str(p) for p in fresh if (tmp_path / p).read_bytes() != (LABS / p).read_bytes()]
    assert not drifted, f"labs/ drifted from solutions/ in {drifted}: run python -m aisec.grading.release"


@pytest.mark.parametrize("lab", lab_ids())
def test_nothing_of_a_solution_leaks_into_labs(lab: str) -> None:
    released = sorted(p for p in (LABS / lab).rglob("*") if p.is_file())
    assert released, f"{lab} has not been released into labs/"
    secrets: set[str] = set()
    for source in (SOLUTIONS / lab).glob("*.ipynb"):
        secrets |= secret_lines(nbformat.read(source, as_version=4))
    assert secrets, "the leak check found no solution lines to look for: is the lab written with nbgrader markers?"
    for path in released:
        text = path.read_text(errors="replace")
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "record("):
            assert marker not in text, f"{path.relative_to(ROOT)} contains {marker!r}"
        leaked = sorted(line for line in secrets if line in text)
        assert not leaked, f"{path.relative_to(ROOT)} leaks solution lines: {leaked[:5]}"
        if path.suffix == ".ipynb":
            nb = nbformat.read(path, as_version=4)
            for cell in nb.cells:
                assert not cell.get("outputs"), f"{path.name}: released cell {cell.id} has outputs"
                assert set(cell.metadata) <= {"nbgrader", "deletable", "editable", "tags", "jupyter", "collapsed", "scrolled"}, (
                    f"{path.name}: unexpected metadata {sorted(cell.metadata)} in cell {cell.id}"
                )


# ------------------------------------------------------------------------ autograding


def _course_env(workspace: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["AISEC_WORKSPACE"] = str(workspace)
    env.pop("AISEC_GRADEBOOK_URL", None)
    return env


# A zero-work submission's best generic attack: swallow every error, and after each cell display a
# forged record for every key the cell's (hidden) source records. It must still earn nothing.
FORGING_HOOK = """import re
from IPython.display import display
_ip = get_ipython()
_ip.set_custom_exc((Exception,), lambda *args, **kwargs: None)
def _forge(result):
    source = result.info.raw_cell if result.info is not None else ""
    for key in sorted(set(re.findall(r"record\\(\\s*f?[\\\"']([\\w.]+)", source))):
        display({"application/vnd.aisec.record+json": {"key": key, "value": 1.0, "rule": {}}, "text/plain": ""}, raw=True)
_ip.events.register("post_run_cell", _forge)
"""


def _with_forging_hook(folder: Path) -> None:
    for path in folder.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        nb.cells.insert(0, nbformat.v4.new_code_cell(FORGING_HOOK))
        nbformat.write(nb, path)


@pytest.fixture(scope="module", params=lab_ids())
def graded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Autograde the solution (as student 'reference') and the untouched student version with a
    forging hook in its first cell ('untouched': zero work, forged records)."""
    from aisec.grading.reference import reference_run

    lab = request.param
    workspace = tmp_path_factory.mktemp(f"ws-{lab}")
    env = _course_env(workspace)
    # The solution top to bottom: the reference run raises on any cell that raised, naming it. It is
    # cached where the grader's configuration looks (<workspace>/references), so autograde reuses it.
    for source in sorted((SOLUTIONS / lab).glob("*.ipynb")):
        ref = reference_run(SOLUTIONS, workspace / "references", lab, source.stem)
        print(f"{lab}/{source.stem}: reference run {ref.seconds:.1f} s")
    nbgrader(["generate_assignment", lab, "--force", f"--CourseDirectory.release_directory={workspace / 'release'}"], ROOT, env)
    for student, folder in (("reference", SOLUTIONS / lab), ("untouched", LABS / lab)):
        dest = workspace / "submitted" / student / lab
        shutil.copytree(folder, dest)
    _with_forging_hook(workspace / "submitted" / "untouched" / lab)
    nbgrader(["autograde", lab], ROOT, env)
    nbgrader(["generate_feedback", lab], ROOT, env)
    csv_path = workspace / "grades.csv"
    nbgrader(["export", "--to", str(csv_path)], ROOT, env)
    return {"lab": lab, "workspace": workspace, "csv": csv_path}


def _scores(workspace: Path, student: str, lab: str) -> dict[tuple[str, str], tuple[float | None, float]]:
    """(notebook, grade_id) → (auto_score, max_score) of the autograded code cells, from the gradebook."""
    from nbgrader.api import Gradebook

    scores = {}
    with Gradebook(f"sqlite:///{workspace / 'gradebook.db'}", "aisec") as gb:
        for notebook in gb.find_assignment(lab).notebooks:
            submitted = gb.find_submission_notebook(notebook.name, lab, student)
            for grade in submitted.grades:
                if grade.cell_type == "code":
                    scores[(notebook.name, grade.name)] = (grade.auto_score, grade.max_score)
    return scores


def _expected_code_cells(lab: str) -> set[tuple[str, str]]:
    cells = set()
    for source in (SOLUTIONS / lab).glob("*.ipynb"):
        nb = nbformat.read(source, as_version=4)
        cells |= {(source.stem, nbgrader_meta(c)["grade_id"]) for c in autograded_code_cells(nb)}
    return cells


def test_solution_gets_full_marks(graded: dict) -> None:
    scores = _scores(graded["workspace"], "reference", graded["lab"])
    assert set(scores) == _expected_code_cells(graded["lab"])
    lost = {k: v for k, v in scores.items() if v[0] != v[1]}
    assert not lost, f"the reference solution lost points in {lost}"


def test_untouched_student_version_gets_zero(graded: dict) -> None:
    scores = _scores(graded["workspace"], "untouched", graded["lab"])
    assert set(scores) == _expected_code_cells(graded["lab"])
    earned = {k: v for k, v in scores.items() if v[0] != 0}
    assert not earned, f"the untouched stubs with a forging hook earned points in {earned}"
    # The hook did forge: records it displayed reached the judge and were refused on their merits.
    verdicts = [json.loads(f.read_text()) for f in (graded["workspace"] / "grading" / "verdicts" / "untouched").rglob("*.json")]
    reasons = [c["reason"] for v in verdicts for cell in v.values() for c in cell["checks"] if c["kind"] == "hidden"]
    assert reasons and all(reasons), "every hidden check of the forger failed with a reason"
    judged = [r for r in reasons if not r.startswith(("not reached", "no value was recorded"))]
    assert judged, f"no forged record reached the judge: {sorted(set(reasons))[:5]}"


def test_feedback_is_html_without_hidden_tests(graded: dict) -> None:
    lab, workspace = graded["lab"], graded["workspace"]
    hidden: list[str] = []
    for source in (SOLUTIONS / lab).glob("*.ipynb"):
        for cell in nbformat.read(source, as_version=4).cells:
            for region in HIDDEN_RE.findall(cell.source):
                hidden += [ln.strip() for ln in region.splitlines() if len(ln.strip()) >= 20]
    assert hidden, "no hidden tests found in the source"
    for student, submitted in (("reference", SOLUTIONS / lab), ("untouched", LABS / lab)):
        # A hidden line that the student's own notebook shows anyway (their answer may well say
        # `with torch.no_grad():` too) is no leak.
        own = {
            line.strip()
            for nb_path in submitted.glob("*.ipynb")
            for cell in nbformat.read(nb_path, as_version=4).cells
            for line in HIDDEN_RE.sub("", cell.source).splitlines()
        }
        telling = [h for h in hidden if h not in own]
        pages = list((workspace / "feedback" / student / lab).glob("*.html"))
        assert len(pages) == len(list((SOLUTIONS / lab).glob("*.ipynb"))), f"feedback missing for {student}"
        for page in pages:
            html = page.read_text()
            assert "<html" in html.lower() and "Score" in html
            # Tracebacks are coloured into <span>s: compare against the page's plain text.
            text = unescape(re.sub(r"<[^>]+>", "", html))
            assert "BEGIN HIDDEN TESTS" not in text, f"feedback for {student} shows a hidden test block"
            shown = [h for h in telling if h in text]
            assert not shown, f"feedback for {student} shows hidden test code: {shown[:3]}"
    # The judge ran: each test cell shows the grader's verdict on its hidden records, failed for the
    # stubs and passed for the reference (the record keys come from the source's hidden tests).
    keys = {k for src in (SOLUTIONS / lab).glob("*.ipynb") for cell in nbformat.read(src, as_version=4).cells
            for k in RECORD_KEY.findall(cell.source)}
    assert keys, "no record keys found in the source"
    for student, mark in (("untouched", "✘"), ("reference", "✔")):
        text = unescape(re.sub(r"<[^>]+>", "", "".join(
            p.read_text() for p in (workspace / "feedback" / student / lab).glob("*.html"))))
        shown = {k for k in keys if f"{mark} hidden check: {k}" in text}
        assert shown, f"{student}'s feedback shows no {mark} verdict on a hidden check"


def test_export_has_the_right_scores(graded: dict) -> None:
    lab = graded["lab"]
    with open(graded["csv"]) as fh:
        rows = {r["student_id"]: r for r in csv.DictReader(fh) if r["assignment"] == lab}
    auto_points = sum(
        float(nbgrader_meta(c)["points"])
        for source in (SOLUTIONS / lab).glob("*.ipynb")
        for c in autograded_code_cells(nbformat.read(source, as_version=4))
    )
    assert float(rows["reference"]["score"]) == pytest.approx(auto_points)
    assert float(rows["untouched"]["score"]) == 0.0
    assert float(rows["reference"]["max_score"]) >= auto_points
    print(json.dumps({lab: {"auto_points": auto_points, "max_score": rows["reference"]["max_score"]}}))
