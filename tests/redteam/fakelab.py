"""A tiny course lab for the red-team tests: four one-point questions, seconds to execute.

``make_course(tmp)`` builds a throw-away course folder (the real grader configuration, a
``solutions/redteam_lab`` source notebook, its release in ``labs/``) so hostile submissions are
graded by exactly the pipeline the course uses, without the cost of a real lab.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode

ROOT = Path(__file__).resolve().parents[2]
LAB = "redteam_lab"


def _meta(grade_id: str, *, grade: bool = False, solution: bool = False, locked: bool = False, points: int = 0) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution, "task": False}
    if grade:
        meta["points"] = points
    return {"nbgrader": meta}


def _code(source: str, **meta: object) -> NotebookNode:
    return nbformat.v4.new_code_cell(source, metadata=_meta(**meta))  # type: ignore[arg-type]


ANSWERS = {
    "q1_add": ("def add(a, b):\n    \"\"\"Return a + b.\"\"\"\n", "    return a + b\n"),
    "q2_mean": ("def mean(xs):\n    \"\"\"Return the mean of the numbers xs as a float.\"\"\"\n", "    return float(sum(xs)) / len(xs)\n"),
    "q3_words": ("def words(text):\n    \"\"\"Return the distinct lower-case words of text, as a list.\"\"\"\n", "    return list({w.lower() for w in text.split()})\n"),
    "q4_accuracy": ("def accuracy(pred, truth):\n    \"\"\"Return the share of positions where pred equals truth.\"\"\"\n",
                    "    return sum(p == t for p, t in zip(pred, truth)) / len(truth)\n"),
}

TESTS = {
    "q1_add": ("assert add(1, 2) == 3, 'add(1, 2) should be 3'",
               "record('q1_add_test.values', [add(i, 3 * i + 1) for i in range(SEED + 7)])"),
    "q2_mean": ("assert abs(mean([1, 2, 3]) - 2.0) < 1e-9, 'mean([1, 2, 3]) should be 2.0'",
                "record('q2_mean_test.value', mean([0.1 * i for i in range(SEED + 11)]), atol=1e-9)"),
    "q3_words": ("assert sorted(words('A b a')) == ['a', 'b'], 'words should be distinct and lower-case'",
                 "record('q3_words_test.words', words('Hidden Tests see Other data and other DATA'), unordered=True)"),
    "q4_accuracy": ("assert accuracy([1, 0], [1, 1]) == 0.5, 'accuracy([1, 0], [1, 1]) should be 0.5'",
                    "_acc = accuracy([1, 0, 1, 1, 0, 1], [1, 1, 1, 1, 0, 0])\n"
                    "record('q4_accuracy_test.value', _acc, atol=1e-9)\n"
                    "_cases = [([1], [1]), ([0, 0], [0, 0]), ([1, 0, 1], [1, 0, 1])]\n"
                    "record('q4_accuracy_test.good_enough', {'labels': [1.0] * 3, 'predictions': [accuracy(p, t) for p, t in _cases]},\n"
                    "       score='accuracy', at_least=0.99)"),
}


def source_notebook() -> NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    cells = [nbformat.v4.new_markdown_cell("# Red-team lab\n\nFour tiny questions.", metadata=_meta("intro", locked=True)),
             _code("from aisec.check import record\n\nSEED = 0", grade_id="setup", locked=True)]
    for qid, (head, body) in ANSWERS.items():
        cells.append(_code(f"{head}    ### BEGIN SOLUTION\n{body}    ### END SOLUTION", grade_id=qid, solution=True))
        visible, hidden = TESTS[qid]
        cells.append(_code(f"{visible}\n### BEGIN HIDDEN TESTS\n{hidden}\n### END HIDDEN TESTS",
                           grade_id=f"{qid}_test", grade=True, locked=True, points=1))
    nb.cells = cells
    return nb


def make_course(tmp: Path) -> Path:
    """A course folder with the real grader configuration and the red-team lab, released."""
    root = tmp / "course"
    (root / "grader").mkdir(parents=True)
    for name in ("nbgrader_config.py", "header.ipynb"):
        shutil.copy2(ROOT / "grader" / name, root / "grader" / name)
    shutil.copy2(ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    (root / "solutions" / LAB).mkdir(parents=True)
    nbformat.write(source_notebook(), root / "solutions" / LAB / f"{LAB}.ipynb")
    (root / "solutions" / LAB / "data.txt").write_text("lab data file\n")
    limit_course(root)
    env = dict(os.environ, AISEC_COURSE_ROOT=str(root), AISEC_WORKSPACE=str(tmp / "ws-release"))
    subprocess.run([sys.executable, "-m", "aisec.grading.release", LAB], cwd=root, env=env, check=True,
                   capture_output=True)
    return root

# Tight limits for the hostile cases: they must trip quickly on a 2-core CI machine.
LIMITS = {"wall_seconds": 150, "cell_timeout": 20, "memory_mb": 2048, "sandbox_memory_mb": 2560, "processes": 64,
          "output_bytes": 1024 * 1024, "scratch_mb": 128, "file_mb": 64, "cpu_seconds": 120}


def limit_course(root: Path) -> None:
    with open(root / "grader" / "nbgrader_config.py", "a") as f:
        f.write(f"\nc.GradingPipeline.lab_limits = {{**c.GradingPipeline.lab_limits, {LAB!r}: {LIMITS!r}}}\n")
