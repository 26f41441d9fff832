"""The reference run: the instructor's source notebook, run once per version, as submissions are run.

It gives the judge the records every hidden check is compared with, and the execute step the time
each cell took, from which each cell's time limit for submissions derives (a hang is cut within
seconds of where an honest run would have finished). Cached in the workspace under the hash of the
whole source folder, so editing a solution or a hidden test recomputes it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbformat.notebooknode import NotebookNode

from aisec.grading.common import atomic_write, digest_dir, nbgrader_meta
from aisec.grading.sandbox import Limits

CACHE_VERSION = "2"  # bump when the cached format changes


@dataclass
class Reference:
    """What the grader keeps of a reference run."""

    records: dict[str, dict[str, Any]]  # {grade_id: {key: record}}
    cell_seconds: dict[str, float] = field(default_factory=dict)  # {cell key: seconds}
    seconds: float = 0.0  # the whole run, kernel start included


def cell_key(cell: Any, index: int) -> str:
    """How a cell is matched between the reference and a submission: nbgrader id, else cell id."""
    grade_id = nbgrader_meta(cell).get("grade_id")
    if isinstance(grade_id, str) and grade_id:
        return f"grade:{grade_id}"
    cell_id = cell.get("id")
    return f"id:{cell_id}" if isinstance(cell_id, str) and cell_id else f"index:{index}"


def execute_notebook(path: Path, workdir: Path, limits: Limits, cache: Path | None = None) -> tuple[NotebookNode, Any]:
    """Execute a trusted notebook (the reference) exactly as submissions are executed.

    Same runner, same environment, same sandbox when it is available (otherwise the same runner
    unsandboxed: the source notebook is the instructor's own code), so that nothing in the
    environment tells a reference run from a student's run. The model cache is mounted writable
    here, which pre-warms it for the submissions (which only read it).
    """
    from aisec.grading.sandbox import apply_run, execute, sandbox_status

    nb = nbformat.read(path, as_version=4)
    usable, _ = sandbox_status()
    run = execute(nb, path.name, workdir, limits, cache=cache, cache_writable=True, sandboxed=usable)
    if run.status != "ok":
        raise RuntimeError(f"reference run of {path.name} failed ({run.status}): {run.reason}")
    apply_run(nb, run)
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                raise RuntimeError(f"reference run of {path.name}: cell {index} raised {out.get('ename')}: {out.get('evalue')}")
    return nb, run


def reference_run(source_dir: Path, cache_dir: Path, assignment: str, notebook: str,
                  limits: Limits | None = None) -> Reference:
    """The reference run of ``source_dir/assignment/notebook.ipynb``, from cache or computed now.

    The reference must pass its own rules; one that does not is an authoring error, raised here.
    """
    from aisec.grading.judge import compare, notebook_records

    src = source_dir / assignment
    cached = cache_dir / assignment / f"{notebook}.{digest_dir(src)[:16]}.v{CACHE_VERSION}.json"
    if cached.exists():
        return Reference(**json.loads(cached.read_text()))
    limits = limits or Limits.for_reference()
    with tempfile.TemporaryDirectory(prefix=f"aisec-ref-{assignment}-") as tmp:
        work = Path(tmp) / assignment
        shutil.copytree(src, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        from aisec.cache import cache_dir as model_cache_dir

        cache = model_cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        nb, run = execute_notebook(work / f"{notebook}.ipynb", work, limits, cache=cache)
    records = notebook_records(nb)
    for recs in records.values():
        for key, rec in recs.items():
            if "invalid" in rec:
                raise ValueError(f"reference {assignment}/{notebook}: record {key} is not gradable: {rec['invalid']}")
            reason = compare(rec, rec)
            if reason:
                raise ValueError(f"reference {assignment}/{notebook}: record {key} fails its own rule: {reason}")
    seconds = {cell_key(c, i): float(run.cells[i].get("seconds", 0.0))
               for i, c in enumerate(nb.cells) if i in run.cells}
    ref = Reference(records, seconds, float(run.seconds))
    atomic_write(cached, json.dumps({"records": ref.records, "cell_seconds": ref.cell_seconds, "seconds": ref.seconds},
                                    sort_keys=True))
    return ref


def reference_records(source_dir: Path, cache_dir: Path, assignment: str, notebook: str) -> dict[str, dict[str, Any]]:
    """Only the records of :func:`reference_run`."""
    return reference_run(source_dir, cache_dir, assignment, notebook).records


def time_limits(reference: Reference, nb: Any, limits: Limits) -> tuple[dict[int, int], int]:
    """Per-cell time limits for a submission, and its wall-time limit, from the reference's times.

    A cell the reference ran gets ``time_factor`` × its reference time + ``time_slack`` seconds;
    a cell of the student's own gets the allowance of the lab's slowest cell; both are bounded by
    ``cell_timeout``. The wall limit is ``time_factor`` × the reference's whole run + six times the
    slack (kernel start-up varies), bounded by ``wall_seconds``.
    """
    slowest = max(reference.cell_seconds.values(), default=0.0)
    per_cell: dict[int, int] = {}
    for index, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        seconds = reference.cell_seconds.get(cell_key(cell, index), slowest)
        per_cell[index] = int(min(limits.cell_timeout, limits.time_factor * seconds + limits.time_slack))
    wall = int(min(limits.wall_seconds, limits.time_factor * reference.seconds + 6 * limits.time_slack))
    return per_cell, wall
