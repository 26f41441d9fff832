"""Helpers for the notebook tests: execute, read nbgrader metadata, find solution text, solve a lab."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat.notebooknode import NotebookNode

# One implementation of "what of a solution must not reach students", shared with aisec-grade publish.
from aisec.grading.publish import HIDDEN_RE, SOLUTION_RE, secret_lines  # noqa: F401 - re-exported for the tests


# A solution region with its markers and their indentation, for pasting the answer into a student's cell.
ANSWER_RE = re.compile(r"[ \t]*### BEGIN SOLUTION\n?(.*?)[ \t]*### END SOLUTION\n?", re.S)


def paste_answers(nb: NotebookNode, source: Path, *, code_only: bool = False) -> tuple[int, int]:
    """Put the reference answers of the source notebook ``source`` into the matching answer cells of the student
    notebook ``nb`` (in place), as a student who solved the lab. Test cells stay the student's, so no hidden test
    is pasted. ``code_only`` leaves written (markdown) answers alone. Returns (cells pasted, answers in the source).
    """
    answers = {}
    for cell in nbformat.read(source, as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and not (code_only and (cell.cell_type != "code" or meta.get("grade"))):
            answers[meta["grade_id"]] = ANSWER_RE.sub(lambda m: m.group(1), cell.source)
    pasted = 0
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
            pasted += 1
    return pasted, len(answers)


def execute(path: Path, workdir: Path, timeout: int = 600) -> tuple[NotebookNode, float]:
    """Execute a copy of the notebook's folder in ``workdir``; return the executed notebook and seconds."""
    target = workdir / path.parent.name
    shutil.copytree(path.parent, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    nb = nbformat.read(target / path.name, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(target)}}).execute()
    return nb, time.perf_counter() - start


def nbgrader_meta(cell: NotebookNode) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def autograded_code_cells(nb: NotebookNode) -> list[NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code" and nbgrader_meta(c).get("grade")]


def nbgrader(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 3600) -> subprocess.CompletedProcess:
    """Run an nbgrader command with the course configuration; fail loudly with its log."""
    proc = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise AssertionError(f"nbgrader {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc
