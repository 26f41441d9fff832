"""Every lesson and course notebook runs top to bottom (CPU only, offline)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import lesson_notebooks, nb_id
from notebook_utils import execute

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("notebook", lesson_notebooks(), ids=nb_id)
def test_course_notebook_executes(notebook: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Notebooks that self-grade write only into a scratch workspace.
    monkeypatch.setenv("AISEC_WORKSPACE", str(tmp_path / "workspace"))
    nb, seconds = execute(notebook, tmp_path)
    errors = [c.id for c in nb.cells if c.cell_type == "code" and any(o.output_type == "error" for o in c.outputs)]
    assert not errors, f"cells raised: {errors}"
    print(f"{nb_id(notebook)} executed in {seconds:.1f} s")
