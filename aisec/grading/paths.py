"""Where the course's folders are."""

from __future__ import annotations

import os
from pathlib import Path


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
