"""Build submissions from a lab's released (student) and source (instructor) notebooks.

``solved(lab)`` is the released notebook with every answer cell replaced by the source's
solution (what a student who got everything right submits); ``stub(lab)`` is the released
notebook untouched; ``with_answer(nb, grade_id, code)`` swaps one answer.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import nbformat
from nbformat.notebooknode import NotebookNode


def _by_id(nb: NotebookNode) -> dict[str, NotebookNode]:
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "grade_id" in c.get("metadata", {}).get("nbgrader", {})}


def stub(root: Path, lab: str, notebook: str | None = None) -> NotebookNode:
    name = notebook or lab
    return nbformat.read(root / "labs" / lab / f"{name}.ipynb", as_version=4)


def solved(root: Path, lab: str, notebook: str | None = None) -> NotebookNode:
    name = notebook or lab
    nb = stub(root, lab, name)
    source = _by_id(nbformat.read(root / "solutions" / lab / f"{name}.ipynb", as_version=4))
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution") and cell.cell_type == "code":
            cell.source = source[meta["grade_id"]].source
    return nb


def with_answer(nb: NotebookNode, grade_id: str, code: str) -> NotebookNode:
    nb = copy.deepcopy(nb)
    _by_id(nb)[grade_id].source = code
    return nb


def insert_after(nb: NotebookNode, grade_id: str, code: str) -> NotebookNode:
    """A new (unmarked) code cell after the cell ``grade_id``, as a student adds scratch cells."""
    nb = copy.deepcopy(nb)
    index = next(i for i, c in enumerate(nb.cells) if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id)
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(code))
    return nb


def submit(submitted: Path, student: str, lab: str, files: dict[str, Any]) -> Path:
    """Write a submission folder: ``files`` maps names to notebooks, str or bytes."""
    folder = submitted / student / lab
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        target = folder / name
        if isinstance(content, NotebookNode) or isinstance(content, dict):
            target.write_text(json.dumps(content))
        elif isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    (folder / "timestamp.txt").write_text("2026-11-20 12:00:00.000000 UTC")
    os.utime(folder, None)
    return folder
