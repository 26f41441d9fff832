"""Stage: read a submission, record what is wrong with it, and sanitise it with nbgrader's own steps.

nbgrader's sanitize preprocessors (``ClearOutput``, ``DeduplicateIds``, ``OverwriteKernelspec``,
``OverwriteCells`` with missing cells re-added, ``CheckCellMetadata``) make the test cells the
source's whatever the student did to them. A missing or unreadable notebook is staged as the
sanitised blank release (its questions then get a recorded zero). The staged copy is exactly what
the sandbox runs and what nbgrader then grades.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path
from typing import Any

import nbformat
from nbformat.notebooknode import NotebookNode
from traitlets.config import Config

from aisec.grading.common import is_test_cell, nbgrader_meta


def _well_formed(meta: Any) -> bool:
    """nbgrader cell metadata of the shape nbgrader's own steps expect (else they raise)."""
    if not isinstance(meta, dict):
        return False
    if "grade_id" in meta and not isinstance(meta["grade_id"], str):
        return False
    flags_ok = all(isinstance(meta.get(k, False), bool) for k in ("grade", "solution", "locked", "task"))
    points = meta.get("points", 0)
    return flags_ok and type(points) in (int, float)


class Stager:
    """Stages the submissions of one lab into ``staged/<student>/<lab>/``."""

    def __init__(self, lab: str, cfg: Config, source_dir: Path, release_dir: Path, staged: Path) -> None:
        from nbgrader.converters import Autograde

        self.lab, self.cfg = lab, cfg
        self.source_dir, self.release_dir, self.staged = source_dir, release_dir, staged
        self.notebooks = sorted(p.stem for p in source_dir.glob("*.ipynb"))
        self.sanitizers = [cls(config=cfg) for cls in Autograde(config=cfg).sanitize_preprocessors]

    @functools.cached_property
    def _sources(self) -> dict[str, NotebookNode]:
        return {name: nbformat.read(self.source_dir / f"{name}.ipynb", as_version=4) for name in self.notebooks}

    @functools.cached_property
    def test_ids(self) -> dict[str, set[str]]:
        return {name: {nbgrader_meta(c)["grade_id"] for c in nb.cells if is_test_cell(c)}
                for name, nb in self._sources.items()}

    @functools.cached_property
    def source_ids(self) -> dict[str, set[str]]:
        return {name: {nbgrader_meta(c)["grade_id"] for c in nb.cells if "grade_id" in nbgrader_meta(c)}
                for name, nb in self._sources.items()}

    def stage(self, student: str, src: Path) -> tuple[dict[str, str], list[str]]:
        """Stage and sanitise one submission: ``({notebook: sanitised JSON to run}, notes)``."""
        dest = self.staged / student / self.lab
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        notes: list[str] = []
        # nbgrader's own bookkeeping travels with the submission (release_feedback needs the secret).
        for extra in ("timestamp.txt", "submission_secret.txt"):
            if (src / extra).is_file():
                shutil.copy2(src / extra, dest / extra)
        present = sorted(p for p in src.glob("*.ipynb"))
        unmatched = [p for p in present if p.stem not in self.notebooks]
        to_run: dict[str, str] = {}
        for name in self.notebooks:
            path = src / f"{name}.ipynb"
            if not path.is_file():
                if len(self.notebooks) == 1 and len(unmatched) == 1:
                    path = unmatched[0]
                    notes.append(f"notebook renamed to {path.name!r}: graded as {name}.ipynb")
                else:
                    notes.append(f"{name}.ipynb is missing from the submission: its questions score 0")
                    self._stage_blank(student, name, dest)
                    continue
            try:
                nb = nbformat.read(path, as_version=4)
                if not isinstance(nb.get("cells"), list):
                    raise ValueError("no list of cells")
            except Exception as exc:  # noqa: BLE001 - any unreadable file is the submission's fault, recorded
                notes.append(f"{path.name} is not a readable notebook ({type(exc).__name__}: {str(exc)[:120]}): scored 0")
                self._stage_blank(student, name, dest)
                continue
            notes += self._repair(nb, name)
            to_run[name] = nbformat.writes(self.sanitise(nb, student, name))
            (dest / f"{name}.ipynb").write_text(to_run[name])
        return to_run, notes

    def _repair(self, nb: NotebookNode, name: str) -> list[str]:
        """Notes on what the student changed that grading undoes; strips renamed grade ids."""
        notes = []
        spec = nb.metadata.get("kernelspec")
        kernel = spec.get("name") if isinstance(spec, dict) else None
        if kernel != "python3":
            notes.append(f"kernel {kernel!r} replaced by python3")
        for cell in nb.cells:
            if "nbgrader" in cell.get("metadata", {}) and not _well_formed(cell.metadata["nbgrader"]):
                notes.append("a cell's nbgrader metadata was malformed: treated as an ordinary cell")
                del cell.metadata["nbgrader"]
        submitted_ids = {nbgrader_meta(c).get("grade_id") for c in nb.cells}
        for missing in sorted(self.test_ids[name] - submitted_ids):
            notes.append(f"test cell {missing!r} was missing: restored from the source")
        for cell in nb.cells:
            grade_id = nbgrader_meta(cell).get("grade_id")
            if grade_id is not None and grade_id not in self.source_ids[name]:
                notes.append(f"cell id {grade_id!r} is not in the lab (renamed?): treated as an ordinary cell, "
                             "the lab's own cell was restored")
                del cell.metadata["nbgrader"]
        return notes

    def _stage_blank(self, student: str, name: str, dest: Path) -> None:
        blank = nbformat.read(self.release_dir / f"{name}.ipynb", as_version=4)
        (dest / f"{name}.ipynb").write_text(nbformat.writes(self.sanitise(blank, student, name)))

    def sanitise(self, nb: NotebookNode, student: str, name: str) -> NotebookNode:
        """nbgrader's own sanitize step (as ``nbgrader autograde`` runs it), in this process."""
        resources: dict[str, Any] = {"nbgrader": {"student": student, "assignment": self.lab, "notebook": name,
                                                  "db_url": self.cfg.CourseDirectory.db_url}}
        nb = nbformat.reads(nbformat.writes(nb), as_version=4)  # a copy, with sources as str
        for pp in self.sanitizers:
            nb, resources = pp.preprocess(nb, resources)
        return nb

    def data_files(self) -> dict[str, bytes]:
        """The lab's released files other than notebooks (they travel with every job)."""
        files: dict[str, bytes] = {}
        if self.release_dir.is_dir():
            for f in self.release_dir.rglob("*"):
                if f.is_file() and f.suffix != ".ipynb" and ".ipynb_checkpoints" not in f.parts:
                    files[str(f.relative_to(self.release_dir))] = f.read_bytes()
        return files
