"""Helpers every phase of the grader shares: where the course is, files written atomically,
folder digests, and which cells nbgrader grades."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any


class CourseNotFound(RuntimeError):
    """Raised when the course folder (with grader/nbgrader_config.py) cannot be found."""


def course_root() -> Path:
    """The course folder: ``$AISEC_COURSE_ROOT``, or the checkout this package lives in."""
    override = os.environ.get("AISEC_COURSE_ROOT")
    root = Path(override) if override else Path(__file__).resolve().parents[2]
    if not (root / "grader" / "nbgrader_config.py").is_file():
        raise CourseNotFound(
            f"{root} is not the course folder (no grader/nbgrader_config.py). Run from a clone of the course, "
            "or set AISEC_COURSE_ROOT to it."
        )
    return root


def workspace() -> Path:
    """The instructor workspace (submissions, gradebook, feedback): ``$AISEC_WORKSPACE`` or ``.workspace``."""
    override = os.environ.get("AISEC_WORKSPACE")
    return Path(override).resolve() if override else course_root() / ".workspace"


def lab_ids() -> list[str]:
    """Every lab in ``solutions/`` (folders holding at least one notebook), sorted."""
    src = course_root() / "solutions"
    return sorted(p.name for p in src.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))


# --------------------------------------------------------------------- files and digests


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def digest_dir(folder: Path) -> str:
    """SHA-256 over a folder's file names and contents (checkpoint folders ignored)."""
    h = hashlib.sha256()
    if folder.is_dir():
        for f in sorted(p for p in folder.rglob("*") if p.is_file() and ".ipynb_checkpoints" not in p.parts):
            h.update(str(f.relative_to(folder)).encode() + b"\0")
            h.update(f.read_bytes())
    return h.hexdigest()


# ------------------------------------------------------------------------ nbgrader cells


def nbgrader_meta(cell: Any) -> dict[str, Any]:
    """A cell's nbgrader metadata, or {} when it has none (or a malformed one)."""
    meta = cell.get("metadata", {}).get("nbgrader") if isinstance(cell.get("metadata"), dict) else None
    return meta if isinstance(meta, dict) else {}


def is_test_cell(cell: Any) -> bool:
    """An autograded test cell: a graded code cell (its points come from the grader's verdict)."""
    meta = nbgrader_meta(cell)
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and bool(meta.get("grade_id"))


HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


def hidden_lines(source_nb: Any) -> list[str]:
    """The telling lines (12 characters or more) of every hidden test block of a source notebook,
    with the two markers: what a leak scan of feedback or of released files looks for."""
    lines: list[str] = []
    for cell in source_nb.cells:
        inside = False
        for line in cell.source.splitlines():
            stripped = line.strip()
            if stripped.startswith(HIDDEN_BEGIN):
                inside = True
                lines.append(HIDDEN_BEGIN)
            elif stripped.startswith(HIDDEN_END):
                inside = False
                lines.append(HIDDEN_END)
            elif inside and len(stripped) >= 12:
                lines.append(stripped)
    return lines
