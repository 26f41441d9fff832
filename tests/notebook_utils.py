"""Helpers for the notebook tests: execute, read nbgrader metadata, find solution text."""

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

SOLUTION_RE = re.compile(r"### BEGIN SOLUTION(.*?)### END SOLUTION", re.S)
HIDDEN_RE = re.compile(r"### BEGIN HIDDEN TESTS(.*?)### END HIDDEN TESTS", re.S)


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


def secret_lines(nb: NotebookNode, min_len: int = 20) -> set[str]:
    """Lines of solutions, hidden tests and model answers that appear nowhere else in the source.

    These must never reach the student version. Short or generic lines (``return out``) are left
    out because they legitimately occur in given code too.
    """
    secret: set[str] = set()
    public: set[str] = set()
    for cell in nb.cells:
        src = cell.source
        meta = nbgrader_meta(cell)
        regions = SOLUTION_RE.findall(src) + HIDDEN_RE.findall(src)
        if cell.cell_type == "markdown" and meta.get("solution") and not regions:
            regions = [src]  # a model answer: nbgrader replaces the whole cell
        rest = HIDDEN_RE.sub("", SOLUTION_RE.sub("", src)) if regions != [src] else ""
        for region in regions:
            secret.update(line.strip() for line in region.splitlines())
        public.update(line.strip() for line in rest.splitlines())
    return {line for line in secret - public if len(line) >= min_len}


def nbgrader(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 3600) -> subprocess.CompletedProcess:
    """Run an nbgrader command with the course configuration; fail loudly with its log."""
    proc = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise AssertionError(f"nbgrader {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc
