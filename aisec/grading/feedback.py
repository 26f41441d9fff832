"""Feedback: what a student sees of their graded notebook is written by the grader, not by their code.

At autograde time :class:`AuthorFeedback` (after the judge) replaces the outputs of every test
cell by its verdict, one check per line, and drops the outputs of every other cell: once hidden
test code has been in the kernel, anything the student's code printed, displayed or raised may
carry it out, encoded or not. The student saw those outputs in their own notebook already; the
instructor keeps them in the run checkpoints. The verdicts also go, as data, to a JSON file per
notebook that the gradebook step reads.

At feedback time :class:`ReleasedTestSources` replaces nbgrader's ``ClearHiddenTests``: each
test cell shows its released source, looked up by grade id, and the student's own cells are left
alone whatever text they contain (marker text in a student's comment made ``ClearHiddenTests``
fail the whole feedback for that student).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
from nbformat.notebooknode import NotebookNode
from traitlets import Unicode

from aisec.check import counted
from aisec.grading.common import atomic_write, is_test_cell, nbgrader_meta
from aisec.grading.verdicts import CellVerdict

try:
    from nbgrader.preprocessors import NbGraderPreprocessor
except ImportError:  # the student-side package works without nbgrader
    NbGraderPreprocessor = object  # type: ignore[misc,assignment]

FAILED_NAME = "ChecksFailed"


def verdict_outputs(verdict: CellVerdict) -> list[NotebookNode]:
    """A test cell's outputs written from its verdict: a stream when it passed, an error when not
    (an error output is what makes nbgrader score the cell zero)."""
    lines = verdict.lines()
    if verdict.passed:
        return [nbformat.v4.new_output("stream", name="stdout", text="\n".join(lines) + "\n")]
    failed = counted(sum(not c.passed for c in verdict.checks) or 1, "check")
    return [nbformat.v4.new_output("error", ename=FAILED_NAME, evalue=f"{failed} failed",
                                   traceback=[f"{FAILED_NAME}: {failed} failed"] + lines)]


class AuthorFeedback(NbGraderPreprocessor):  # type: ignore[misc,valid-type]
    """nbgrader preprocessor: every output of the graded notebook is the grader's own."""

    verdicts_dir = Unicode("", help="Folder for the verdicts as JSON (<student>/<lab>/<notebook>.json)").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]) -> tuple[NotebookNode, dict[str, Any]]:
        info = resources["nbgrader"]
        verdicts = resources.get("aisec", {}).get("verdicts", {})
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            if is_test_cell(cell):
                saved = verdicts.get(nbgrader_meta(cell)["grade_id"])
                verdict = CellVerdict.from_json(saved) if saved else CellVerdict(nbgrader_meta(cell)["grade_id"])
                cell.outputs = verdict_outputs(verdict)
            else:
                cell.outputs = []
        if self.verdicts_dir:
            path = Path(self.verdicts_dir) / info["student"] / info["assignment"] / f"{info['notebook']}.json"
            atomic_write(path, json.dumps(verdicts))
        return nb, resources


class ReleasedTestSources(NbGraderPreprocessor):  # type: ignore[misc,valid-type]
    """nbgrader preprocessor for feedback: test cells show their released source; nothing raises."""

    release_root = Unicode("", help="Folder of the released assignments").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]) -> tuple[NotebookNode, dict[str, Any]]:
        info = resources["nbgrader"]
        released = self._released(info["assignment"], info["notebook"])
        for cell in nb.cells:
            if is_test_cell(cell):
                cell.source = released.get(nbgrader_meta(cell)["grade_id"], "# (this test cell's code is not shown)")
        nb.metadata.pop("celltoolbar", None)
        return nb, resources

    def _released(self, lab: str, notebook: str) -> dict[str, str]:
        path = Path(self.release_root) / lab / f"{notebook}.ipynb"
        if not path.is_file():
            return {}
        return {nbgrader_meta(c)["grade_id"]: c.source for c in nbformat.read(path, as_version=4).cells if is_test_cell(c)}
