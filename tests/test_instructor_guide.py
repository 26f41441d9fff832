"""Runs ``course/instructor_guide.md``: every code block, in order, for a class of two students.

Blocks are told apart by their fence:

* ```` ```bash ````: the instructor, in the course folder (a temporary copy of the course);
* ```` ```bash student ````: each student (alice, bob) in their own home folder, with ``USER`` set to them;
* ```` ```bash hub ````: the hub administrator, with a private ``JUPYTER_CONFIG_DIR``;
* ```` ```python ````: the hub-wide ``/etc/jupyter/nbgrader_config.py``; it is written into each student's home
  folder, where nbgrader reads it, plus one line naming the student (on a hub, each student is a separate OS user
  and nbgrader takes the user name; here one OS user plays both).

Nothing else in the guide may look like a command to run: a block with another fence fails the test. Between
fetching and submitting, alice solves the lab (the reference answers pasted into her answer cells) and bob hands
it in untouched. The test then checks what the guide promises: alice outscores bob, her reflection got the hand
grade, both students received feedback without hidden tests, and the LMS CSV has one row per student.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "course" / "instructor_guide.md"
LAB = "lab00_minimisation"
STUDENTS = ("alice", "bob")
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```\s*$", re.S | re.M)
SOLUTION_RE = re.compile(r"[ \t]*### BEGIN SOLUTION\n?(.*?)[ \t]*### END SOLUTION\n?", re.S)

pytestmark = pytest.mark.slow


def guide_blocks() -> list[tuple[str, str]]:
    """``(kind, code)`` of every fenced block, kind being e.g. ``bash``, ``bash student``, ``python``."""
    return [(info.strip(), code) for info, code in FENCE.findall(GUIDE.read_text())]


def test_guide_has_only_runnable_blocks() -> None:
    kinds = {kind for kind, _ in guide_blocks()}
    assert kinds <= {"bash", "bash student", "bash hub", "python"}, f"blocks the test cannot run: {kinds}"
    assert sum(kind == "python" for kind, _ in guide_blocks()) == 1, "one python block: the hub's nbgrader config"


def solve(notebook: Path) -> None:
    """Paste the reference answers into the answer cells of a student's notebook."""
    answers = {}
    for cell in nbformat.read(ROOT / "solutions" / LAB / f"{LAB}.ipynb", as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            answers[meta["grade_id"]] = SOLUTION_RE.sub(lambda m: m.group(1), cell.source)
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    nbformat.write(nb, notebook)


def run(code: str, cwd: Path, env: dict[str, str], what: str) -> str:
    proc = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + code], cwd=cwd, env=env, capture_output=True, text=True, timeout=1800
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{what} failed (exit {proc.returncode}):\n{code}\n--- output ---\n{out[-4000:]}"
    return out


def test_instructor_guide_from_zero_to_grades(tmp_path: Path) -> None:
    course = tmp_path / "course"
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
    for folder in ("course", "labs", "solutions", "grader"):
        shutil.copytree(ROOT / folder, course / folder, ignore=ignore)
    shutil.copy(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    (course / ".venv").symlink_to(Path(sys.prefix))  # the guide activates .venv in the course folder
    homes = {s: tmp_path / "home" / s for s in STUDENTS}
    for home in homes.values():
        home.mkdir(parents=True)
    exchange = tmp_path / "exchange"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "AISEC_COURSE_ROOT": str(course),
        "AISEC_WORKSPACE": str(course / ".workspace"),
        "AISEC_EXCHANGE": str(exchange),  # on a hub: c.Spawner.environment, as the guide says
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
        "MPLBACKEND": "Agg",
    }
    env.pop("AISEC_GRADEBOOK_URL", None)

    fetched = False
    for i, (kind, code) in enumerate(guide_blocks()):
        if kind == "python":
            for student, home in homes.items():
                # On a hub every student is their own OS user, which nbgrader takes as the student id.
                # Here one OS user plays both students, so each home's copy names its student.
                identity = f"\nc.CourseDirectory.student_id = {student!r}  # test only: see above\n"
                (home / "nbgrader_config.py").write_text(code + identity)
        elif kind == "bash hub":
            run(code, tmp_path, env, f"hub block {i}")
        elif kind == "bash student":
            for student, home in homes.items():
                run(code, home, {**env, "USER": student, "LOGNAME": student}, f"student block {i} as {student}")
            if "fetch_assignment" in code and not fetched:
                fetched = True
                for student, home in homes.items():
                    assert (home / LAB / f"{LAB}.ipynb").is_file(), f"{student} did not get the lab"
                solve(homes["alice"] / LAB / f"{LAB}.ipynb")  # bob hands in the untouched notebook
        else:
            run(code, course, env, f"instructor block {i}")

    # The hub block turned the instructor tools off for the account that ran it.
    page_config = (tmp_path / "jupyter-config" / "labconfig" / "page_config.json").read_text()
    assert "@jupyter/nbgrader:formgrader" in page_config

    # Grades: alice's answers and hand grade count, bob's untouched notebook scores zero.
    lms = (course / "grades_lms.csv").read_text().splitlines()
    assert lms[0].split(",")[:4] == ["student_id", "last_name", "first_name", "email"] and LAB in lms[0]
    rows = {line.split(",")[0]: float(line.split(",")[-1]) for line in lms[1:]}
    assert set(rows) == set(STUDENTS)
    assert rows["bob"] == 0.0
    assert rows["alice"] > 3.0  # the autograded points plus the 3 hand-graded points of r1_reflection

    # Feedback reached both students, without hidden tests.
    # One OS user plays both students here, so nbgrader's fetch_feedback (which matches the
    # exchange by OS user) hands each home both students' pages: look at all of them.
    for student, home in homes.items():
        reports = sorted((home / LAB / "feedback").rglob("*.html"))
        assert reports, f"{student} fetched no feedback"
        for report in reports:
            text = report.read_text()
            assert "BEGIN HIDDEN TESTS" not in text and "record(" not in text
    alice_pages = [p.read_text() for p in (homes["alice"] / LAB / "feedback").rglob("*.html")]
    assert any("Two risks and a control" in page for page in alice_pages), "the hand-graded comment is not in alice's feedback"
