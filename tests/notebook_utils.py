"""Helpers for the notebook tests: execute, read nbgrader metadata, find solution text."""

from __future__ import annotations

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
