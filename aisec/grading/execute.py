"""Execute: run a staged submission's code in the sandbox, and hand its outputs to nbgrader.

:func:`run_job` is what a Dask worker runs (untrusted work, in parallel): the sanitised notebooks
and the lab's data files go in, only the cells' outputs come back. :class:`SandboxExecute` is the
nbgrader preprocessor that replaces ``Execute``: in the class pipeline it loads the checkpointed
run of exactly this notebook; run by plain ``nbgrader autograde`` it executes in the sandbox itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import nbformat
from nbformat.notebooknode import NotebookNode
from traitlets import Bool, Unicode

from aisec.grading.common import atomic_write
from aisec.grading.config import GradingPipeline
from aisec.grading.sandbox import Limits, RunResult, apply_run, execute, sandbox_status


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot run here and untrusted work was not explicitly allowed to run without it."""


def code_digest(nb: NotebookNode) -> str:
    """Hash of the code cells' sources: ties a sandbox run to the notebook it ran."""
    h = hashlib.sha256()
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            h.update(f"{index}\0{cell.source}\0".encode())
    return h.hexdigest()


def run_summary(run: RunResult) -> dict[str, Any]:
    """What the judge needs to know of a run: how it ended and which cells finished."""
    return {"status": run.status, "reason": run.reason, "sandboxed": run.sandboxed, "executed": sorted(run.cells)}


# ------------------------------------------------------------------------ worker side


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Execute one submission's sanitised notebooks in the sandbox (runs on a Dask worker).

    ``job``: ``{"student", "lab", "notebooks": {name: nb_json}, "data_files": {relpath: bytes},
    "limits": {...}, "cell_timeouts": {name: {index: s}}, "wall_seconds": {name: s}, "cache": path
    or None, "allow_unsandboxed": bool}``. Returns ``{"student", "runs": {name: RunResult json},
    "worker_pid"}``. Never raises for the student's faults; a host without the sandbox returns
    status ``no_sandbox``.
    """
    usable, why = sandbox_status()
    limits = Limits().merged(job.get("limits"))
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="aisec-data-") as tmp:
        data_dir = Path(tmp)
        for rel, blob in job.get("data_files", {}).items():
            target = data_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(blob)
        cache = Path(job["cache"]) if job.get("cache") and Path(job["cache"]).is_dir() else None
        for name, nb_json in job["notebooks"].items():
            if not usable and not job.get("allow_unsandboxed"):
                runs[name] = RunResult("no_sandbox", f"the sandbox cannot run on this worker: {why}", {}).to_json()
                continue
            nb = nbformat.reads(nb_json, as_version=4)
            wall = job.get("wall_seconds", {}).get(name)
            run_limits = replace(limits, wall_seconds=int(wall)) if wall else limits
            timeouts = {int(k): int(v) for k, v in job.get("cell_timeouts", {}).get(name, {}).items()}
            runs[name] = execute(nb, f"{name}.ipynb", data_dir, run_limits, cache=cache, sandboxed=usable,
                                 cell_timeouts=timeouts).to_json()
    return {"student": job["student"], "runs": runs, "worker_pid": os.getpid()}


# -------------------------------------------------------- Execute, replaced (nbgrader side)


try:
    from nbgrader.preprocessors import NbGraderPreprocessor
except ImportError:  # learners' installs without nbgrader still import this module's helpers
    NbGraderPreprocessor = object  # type: ignore[misc,assignment]


class SandboxExecute(NbGraderPreprocessor):  # type: ignore[misc,valid-type]
    """nbgrader preprocessor replacing ``Execute``: the notebook's code runs in the sandbox.

    In the class pipeline the run already happened on a Dask worker (``use_runs``): its
    checkpointed outputs are loaded, after checking that they belong to exactly this sanitised
    notebook. Run by plain ``nbgrader autograde`` it executes the notebook in the sandbox
    itself (serially), so the stock command is sandboxed too. Either way the run's summary goes
    to ``resources["aisec"]["run"]`` for the judge.
    """

    runs_dir = Unicode("", help="Folder of the checkpointed sandbox runs").tag(config=True)
    use_runs = Bool(False, help="Load checkpointed runs (the class pipeline) instead of executing").tag(config=True)
    allow_unsandboxed = Bool(False, help="Execute without the sandbox where it cannot run (trusted code only)").tag(config=True)
    source_root = Unicode("", help="Folder of the source assignments").tag(config=True)
    release_root = Unicode("", help="Folder of the released assignments (the lab's data files)").tag(config=True)
    reference_dir = Unicode("", help="Folder caching the reference runs").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]) -> tuple[NotebookNode, dict[str, Any]]:
        info = resources["nbgrader"]
        lab, student, notebook = info["assignment"], info["student"], info["notebook"]
        run_file = Path(self.runs_dir) / lab / student / f"{notebook}.json"
        if self.use_runs:
            if not run_file.is_file():
                raise RuntimeError(f"no sandbox run for {student}/{lab}/{notebook}")
            saved = json.loads(run_file.read_text())
            if saved.get("code_digest") != code_digest(nb):
                raise RuntimeError(f"the sandbox run of {student}/{lab}/{notebook} does not match the sanitised notebook")
            run = RunResult.from_json(saved["run"])
        else:
            run = self._execute(nb, lab, notebook)
            if self.runs_dir:
                # The instructor's copy of what the student's code printed (feedback shows only verdicts).
                atomic_write(run_file, json.dumps({"code_digest": code_digest(nb), "run": run.to_json()}))
        apply_run(nb, run)
        resources.setdefault("aisec", {})["run"] = run_summary(run)
        return nb, resources

    def _execute(self, nb: NotebookNode, lab: str, notebook: str) -> RunResult:
        from aisec.cache import cache_dir
        from aisec.grading.reference import reference_run, time_limits

        usable, why = sandbox_status()
        if not usable and not self.allow_unsandboxed:
            raise SandboxUnavailable(f"refusing to execute untrusted work: {why}")
        cfg = self.parent.config if self.parent is not None else self.config
        limits = GradingPipeline(config=cfg).limits_for(lab)
        # The reference run first: it fills the model cache the submission then reads, and times each cell.
        reference = reference_run(Path(self.source_root), Path(self.reference_dir), lab, notebook)
        timeouts, wall = time_limits(reference, nb, limits)
        data_dir = Path(self.release_root) / lab if self.release_root else None
        return execute(nb, f"{notebook}.ipynb", data_dir, replace(limits, wall_seconds=wall), cache=cache_dir(),
                       sandboxed=usable, cell_timeouts=timeouts)
