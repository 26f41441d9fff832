"""The class-grading driver: untrusted execution in parallel, trusted grading in one place.

The pipeline's phases, one module each:

1. :mod:`~aisec.grading.stage` (driver): read and sanitise each submission with nbgrader's own steps.
2. :mod:`~aisec.grading.execute` (Dask workers, untrusted, parallel): run it in the bubblewrap
   sandbox (:mod:`~aisec.grading.sandbox`), each cell within a limit derived from the reference run
   (:mod:`~aisec.grading.reference`); only the cells' outputs come back.
3. :mod:`~aisec.grading.judge` (driver, trusted): a structured verdict per test cell from the
   hidden records, compared with the reference's or scored by :mod:`~aisec.grading.scorers`.
4. :mod:`~aisec.grading.feedback`: the graded notebook's outputs become the grader's verdicts.
5. :mod:`~aisec.grading.record`: nbgrader's ``SaveAutoGrades`` writes the gradebook (this process
   only); the outcome is read back as data.

This module only orders them. Before the class, the lab is registered in the gradebook and its
reference run computed (cached). As each run comes back it is checkpointed to
``<workspace>/grading/<lab>/runs/`` and graded at once; a ``done`` marker per submission (keyed by
a hash of the submission, the source and the grader) makes a rerun after a crash grade only what
is left.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import nbformat
from traitlets.config import Config

from aisec.grading.common import atomic_write, course_root, digest_dir
from aisec.grading.config import GradingPipeline, load_config, workspace_of
from aisec.grading.execute import SandboxUnavailable, code_digest, run_job
from aisec.grading.record import Outcome, Summary, autograde, read_grades
from aisec.grading.sandbox import RunResult, sandbox_status
from aisec.grading.stage import Stager

PIPELINE_VERSION = "2"
EXECUTE = "aisec.grading.execute.SandboxExecute"

__all__ = ["Grader", "Outcome", "Summary", "SandboxUnavailable", "PIPELINE_VERSION"]


class Grader:
    """Grades one lab of a workspace (see the module docstring for the phases)."""

    def __init__(
        self,
        lab: str,
        ws: Path | None = None,
        db_url: str | None = None,
        allow_unsandboxed: bool = False,
        submitted_dir: Path | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.lab = lab
        self.root = course_root()
        if not (self.root / "solutions" / lab).is_dir():
            raise SystemExit(f"No lab {lab!r} in {self.root / 'solutions'}")
        self.cfg = load_config(ws, db_url)
        self.ws = Path(ws).resolve() if ws else workspace_of(self.cfg)
        if submitted_dir is not None:
            self.cfg.CourseDirectory.submitted_directory = str(submitted_dir)
        self.submitted = Path(self.cfg.CourseDirectory.submitted_directory)
        self.state = self.ws / "grading" / lab
        self.staged = self.state / "staged"
        self.runs = self.state / "runs"
        self.done = self.state / "done"
        self.verdicts = self.state / "verdicts"
        self.allow_unsandboxed = allow_unsandboxed
        self.log = log
        self.limits = GradingPipeline(config=self.cfg).limits_for(lab)
        self.source_dir = self.root / "solutions" / lab
        self.release_dir = self.root / "labs" / lab
        self.reference_dir = Path(self.cfg.JudgeRecords.reference_dir)
        self.source_digest = digest_dir(self.source_dir)
        # nbgrader's sanitize preprocessors run once, at staging (their output is the staged copy
        # and what the sandbox ran); grading the staged copy must not sanitise it a second time.
        self.cfg.OverwriteCells.add_missing_cells = True
        self.stager = Stager(lab, self.cfg, self.source_dir, self.release_dir, self.staged)
        self.notebooks = self.stager.notebooks
        self.cfg.Autograde.sanitize_preprocessors = []
        # Phase 5 grades the staged copies; Execute is replaced by the checkpoint loader.
        self.cfg.CourseDirectory.root = str(self.root)
        self.cfg.SandboxExecute.runs_dir = str(self.runs)
        self.cfg.SandboxExecute.use_runs = True
        self.cfg.AuthorFeedback.verdicts_dir = str(self.verdicts)
        pps = [EXECUTE if p in ("nbgrader.preprocessors.Execute", EXECUTE) else p
               for p in self.cfg.Autograde.autograde_preprocessors]
        # Staging already ran CheckCellMetadata on the sanitised notebook, and the steps after it
        # only write outputs and grades: a second schema validation per cell is pure cost here.
        self.cfg.Autograde.autograde_preprocessors = [p for p in pps if p != "nbgrader.preprocessors.CheckCellMetadata"]
        # nbgrader runs the `alembic` command of its own environment when it creates a gradebook.
        bindir = str(Path(sys.executable).parent)
        if bindir not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")

    # -- before the class ------------------------------------------------------------------

    def api(self, submitted: Path | None = None) -> Any:
        from nbgrader.apps import NbGraderAPI
        from nbgrader.coursedir import CourseDirectory

        cfg = Config(self.cfg)
        cfg.CourseDirectory.submitted_directory = str(submitted or self.staged)
        cfg.CourseDirectory.release_directory = str(self.ws / "release")
        return NbGraderAPI(coursedir=CourseDirectory(config=cfg), config=cfg)

    def prepare(self) -> None:
        """Register the lab in the gradebook when its source changed; compute the reference."""
        from aisec.grading.reference import reference_run

        marker = self.state / "registered.json"
        key = {"source": self.source_digest, "db": self.cfg.CourseDirectory.db_url}
        if not (marker.is_file() and json.loads(marker.read_text()) == key):
            result = self.api().generate_assignment(self.lab, force=True, create=True)
            if not result.get("success"):
                raise RuntimeError(f"nbgrader could not register {self.lab}: {result.get('log')}\n{result.get('error')}")
            atomic_write(marker, json.dumps(key))
        self.references = {name: reference_run(self.root / "solutions", self.reference_dir, self.lab, name)
                           for name in self.notebooks}

    def students(self) -> list[str]:
        if not self.submitted.is_dir():
            return []
        return sorted(p.parent.name for p in self.submitted.glob(f"*/{self.lab}") if p.is_dir())

    def submission_digest(self, student: str) -> str:
        import hashlib

        h = hashlib.sha256()
        for part in (PIPELINE_VERSION, self.source_digest, json.dumps(asdict(self.limits), sort_keys=True),
                     digest_dir(self.submitted / student / self.lab), self.cfg.CourseDirectory.db_url):
            h.update(part.encode() + b"\0")
        return h.hexdigest()[:24]

    # -- stage and execute -------------------------------------------------------------------

    def stage(self, student: str) -> tuple[dict[str, str], list[str]]:
        return self.stager.stage(student, self.submitted / student / self.lab)

    @functools.cached_property
    def data_files(self) -> dict[str, bytes]:
        """The lab's released data files, read once for every job."""
        return self.stager.data_files()

    def job(self, student: str, notebooks: dict[str, str]) -> dict[str, Any]:
        """One submission's work for a worker, with each cell's time limit from the reference."""
        from aisec.cache import cache_dir
        from aisec.grading.reference import time_limits

        timeouts: dict[str, dict[str, int]] = {}
        walls: dict[str, int] = {}
        for name, text in notebooks.items():
            per_cell, wall = time_limits(self.references[name], nbformat.reads(text, as_version=4), self.limits)
            timeouts[name] = {str(k): v for k, v in per_cell.items()}
            walls[name] = wall
        return {"student": student, "lab": self.lab, "notebooks": notebooks, "data_files": self.data_files,
                "limits": asdict(self.limits), "cell_timeouts": timeouts, "wall_seconds": walls,
                "cache": str(cache_dir()), "allow_unsandboxed": self.allow_unsandboxed}

    # -- judge, feedback, record ---------------------------------------------------------------

    def finish(self, student: str, runs: dict[str, Any], notes: list[str], digest: str, seconds: float,
               code_digests: dict[str, str]) -> Outcome:
        """Checkpoint the runs, grade with nbgrader into the gradebook, write the done marker.

        ``code_digests``: the code digest of each notebook that was sent to run (as staged)."""
        notes = list(notes)
        runs = dict(runs)
        staged = self.staged / student / self.lab
        for name in self.notebooks:
            if name not in runs and (staged / f"{name}.ipynb").is_file():
                # A stand-in for an unreadable or missing notebook: nothing of the student's ran.
                runs[name] = RunResult("not_run", "nothing was executed (see the notes)", {}, 0.0, True).to_json()
        for name, run in runs.items():
            run_digest = code_digests.get(name) or code_digest(nbformat.read(staged / f"{name}.ipynb", as_version=4))
            result = RunResult.from_json(run)
            if result.status == "no_sandbox":
                return Outcome(student, "failed", notes=notes + [result.reason], digest=digest, seconds=seconds)
            if result.status not in ("ok", "not_run"):
                notes.append(f"{name}: {result.reason}")
            if not result.sandboxed:
                notes.append(f"{name}: executed WITHOUT the sandbox (explicitly allowed)")
            atomic_write(self.runs / self.lab / student / f"{name}.json", json.dumps({"code_digest": run_digest, "run": run}))
        error = autograde(self.api(), self.lab, student)
        if error is not None:
            return Outcome(student, "failed", notes=notes + ["nbgrader could not grade it: " + error],
                           digest=digest, seconds=seconds)
        outcome = read_grades(self.cfg, self.lab, student, self.verdicts)
        outcome.notes, outcome.digest, outcome.seconds = notes, digest, seconds
        atomic_write(self.done / f"{student}.json", json.dumps(asdict(outcome)))
        return outcome

    def read_grades(self, student: str) -> Outcome:
        return read_grades(self.cfg, self.lab, student, self.verdicts)

    # -- the class ------------------------------------------------------------------------------

    def grade_class(
        self,
        workers: int = 2,
        scheduler: str | None = None,
        students: Iterable[str] | None = None,
        force: bool = False,
        progress: bool = True,
        local: bool = False,
    ) -> Summary:
        """Grade every submission of the lab in parallel on Dask; see the module docstring."""
        from dask.distributed import Client, LocalCluster, as_completed
        from tqdm.auto import tqdm

        usable, why = sandbox_status()
        if not usable:
            if not self.allow_unsandboxed:
                raise SandboxUnavailable(
                    f"THE SANDBOX CANNOT RUN ON THIS HOST: {why}.\nRefusing to run students' code with the grader's "
                    "rights. Fix the host (install bubblewrap, enable user namespaces) or, if you accept the risk, "
                    "pass --allow-unsandboxed.")
            self.log(f"WARNING: THE SANDBOX CANNOT RUN ({why}); grading UNSANDBOXED as explicitly allowed.")
        start = time.monotonic()
        self.prepare()
        todo = list(students) if students is not None else self.students()
        outcomes: dict[str, Outcome] = {}
        pending: dict[str, tuple[list[str], str, dict[str, str]]] = {}
        to_stage: list[tuple[str, str]] = []
        for student in todo:
            digest = self.submission_digest(student)
            marker = self.done / f"{student}.json"
            if not force and marker.is_file():
                saved = json.loads(marker.read_text())
                if saved.get("digest") == digest:
                    outcomes[student] = Outcome(**{**saved, "status": "skipped"})
                    continue
            to_stage.append((student, digest))
        cluster = None
        client = None
        bar = tqdm(total=len(todo), initial=len(outcomes), desc=f"grading {self.lab}", unit="sub", disable=not progress)

        def staged_jobs() -> Iterator[dict[str, Any]]:
            """Stage submissions one by one, so the first runs start while the rest are staged."""
            for student, digest in to_stage:
                try:
                    notebooks, notes = self.stage(student)
                except Exception as exc:  # noqa: BLE001 - one broken submission never stops the class
                    outcomes[student] = Outcome(student, "failed", digest=digest,
                                                notes=[f"could not be staged: {type(exc).__name__}: {exc}"])
                    bar.update(1)
                    continue
                code_digests = {name: code_digest(nbformat.reads(text, as_version=4)) for name, text in notebooks.items()}
                pending[student] = (notes, digest, code_digests)
                yield self.job(student, notebooks)

        def collect(student: str, answer: dict[str, Any] | None, error: BaseException | None) -> None:
            notes, digest, code_digests = pending[student]
            if error is not None or answer is None:
                outcomes[student] = Outcome(student, "failed", digest=digest,
                                            notes=notes + [f"execution failed: {type(error).__name__}: {error}"])
            else:
                seconds = sum(float(r.get("seconds", 0)) for r in answer["runs"].values())
                try:
                    outcomes[student] = self.finish(student, answer["runs"], notes, digest, seconds, code_digests)
                except Exception as exc:  # noqa: BLE001 - recorded, the rest of the class goes on
                    outcomes[student] = Outcome(student, "failed", digest=digest,
                                                notes=notes + [f"grading failed: {type(exc).__name__}: {exc}"])
            bar.update(1)
            bar.set_postfix_str(f"last: {student}")

        try:
            if to_stage and local:
                # One submission (self-grading): a cluster would cost more than the run.
                for job in staged_jobs():
                    collect(job["student"], run_job(job), None)
            elif to_stage:
                if scheduler:
                    client = Client(scheduler)
                else:
                    # In-process workers: a task only waits on its sandbox (a separate process tree
                    # per submission), so worker processes would add start-up and transfer cost
                    # and no isolation. Other hosts join through a scheduler address.
                    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=False,
                                           dashboard_address=None, silence_logs=40)
                    client = Client(cluster)
                futures = {}
                for job in staged_jobs():
                    key = f"aisec-{self.lab}-{job['student']}-{pending[job['student']][1]}"
                    futures[client.submit(run_job, job, key=key, pure=False, retries=1)] = job["student"]
                for future in as_completed(futures):
                    try:
                        answer = future.result()
                    except Exception as exc:  # noqa: BLE001 - a lost worker or task fails this submission only
                        collect(futures[future], None, exc)
                    else:
                        collect(futures[future], answer, None)
        finally:
            bar.close()
            if client is not None:
                client.close()
            if cluster is not None:
                cluster.close()
        summary = Summary(self.lab, [outcomes[s] for s in todo if s in outcomes], time.monotonic() - start)
        atomic_write(self.state / "summary.json", json.dumps(
            {"lab": self.lab, "seconds": summary.seconds, "outcomes": [asdict(o) for o in summary.outcomes]}, indent=1))
        return summary
