"""Shared fixtures: where the course is, which labs and notebooks exist, a scratch workspace."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
LABS = ROOT / "labs"
COURSE = ROOT / "course"

# Kernels started by the tests inherit this environment: no GUI backend, no progress-bar noise
# in captured output, and the same course root whatever the working directory.
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("AISEC_COURSE_ROOT", str(ROOT))
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
# nbgrader runs `alembic` (and kernels run `python`) from PATH: put this environment's bin first.
_bin = str(Path(sys.executable).parent)
if os.environ.get("PATH", "").split(os.pathsep)[0] != _bin:
    os.environ["PATH"] = _bin + os.pathsep + os.environ.get("PATH", "")


def lab_ids() -> list[str]:
    return sorted(p.name for p in SOLUTIONS.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))


def solution_notebooks() -> list[Path]:
    return sorted(nb for lab in lab_ids() for nb in (SOLUTIONS / lab).glob("*.ipynb"))


def lesson_notebooks() -> list[Path]:
    return sorted(COURSE.glob("*.ipynb"))


def nb_id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Fast unit tests first, so a broken helper shows up before minutes of notebook execution.
    items.sort(key=lambda item: 1 if item.get_closest_marker("slow") else 0)
