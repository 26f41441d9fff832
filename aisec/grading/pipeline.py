"""The class-grading pipeline: untrusted execution in parallel, trusted grading in one place.

Phase 0 (driver, once per lab): register the lab in the gradebook (``nbgrader
generate_assignment`` into ``<workspace>/release``) and compute the reference records (the
source notebook run in the same sandbox, cached in ``<workspace>/references``; it also
pre-warms the model cache).

Phase 1 (Dask workers, untrusted, parallel): for every submission the driver *stages* it (reads
it, records anything malformed, strips renamed grade ids) and *sanitises* it with nbgrader's own
sanitize preprocessors (``ClearOutput``, ``DeduplicateIds``, ``OverwriteKernelspec``,
``OverwriteCells`` with missing cells re-added, ``CheckCellMetadata``): test cells are the
source's whatever the student did to them. The sanitised notebook and the lab's data files
travel to a worker, which runs them in the bubblewrap sandbox (:mod:`aisec.grading.sandbox`)
and sends back only the cells' outputs.

Phase 2 (driver, trusted, serial): as each run comes back it is checkpointed to
``<workspace>/grading/<lab>/runs/`` and graded by nbgrader's own ``autograde`` whose Execute
step is :class:`SandboxExecute` (it loads the checkpointed outputs instead of running code),
followed by ``JudgeRecords`` and ``SaveAutoGrades``: the gradebook (SQLite or PostgreSQL) is
written by this process only. A ``done`` marker per submission (keyed by a hash of the
submission, the source and the grader) makes a rerun after a crash grade only what is left.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbformat.notebooknode import NotebookNode
from traitlets import Bool, Dict, Unicode
from traitlets.config import Config, Configurable
from traitlets.config.loader import PyFileConfigLoader

from aisec.grading.paths import course_root, workspace
from aisec.grading.sandbox import Limits, RunResult, apply_run, execute, sandbox_status

PIPELINE_VERSION = "1"
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
SCRUBBED = "[hidden test code removed by the grader]"
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot run here and untrusted work was not explicitly allowed to run without it."""


# ----------------------------------------------------------------------- configuration


class GradingPipeline(Configurable):
    """Per-course and per-lab settings of the pipeline (set in grader/nbgrader_config.py)."""

    limits = Dict({}, help="Sandbox limits for every lab (see aisec.grading.sandbox.Limits)").tag(config=True)
    lab_limits = Dict({}, help="{lab: {limit: value}}: per-lab overrides of the sandbox limits").tag(config=True)

    def limits_for(self, lab: str) -> Limits:
        return Limits().merged(self.limits).merged(self.lab_limits.get(lab))


def load_config(ws: Path | None = None, db_url: str | None = None) -> Config:
    """The course's nbgrader configuration, optionally pointed at another workspace/gradebook."""
    root = course_root()
    previous = {k: os.environ.get(k) for k in ("AISEC_WORKSPACE", "AISEC_GRADEBOOK_URL")}
    try:
        if ws is not None:
            os.environ["AISEC_WORKSPACE"] = str(ws)
        if db_url is not None:
            os.environ["AISEC_GRADEBOOK_URL"] = db_url
        cfg = PyFileConfigLoader("nbgrader_config.py", path=str(root / "grader")).load_config()
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return cfg


def workspace_of(cfg: Config) -> Path:
    """The workspace a loaded configuration points at (the parent of its submitted folder)."""
    return Path(cfg.CourseDirectory.submitted_directory).parent


# ----------------------------------------------------------------- hidden test handling


def hidden_lines(source_nb: NotebookNode) -> list[str]:
    """The lines of every hidden test block of the source notebook (long enough to be telling)."""
    lines: list[str] = []
    for cell in source_nb.cells:
        inside = False
        for line in cell.source.splitlines():
            stripped = line.strip()
            if stripped.startswith(HIDDEN_BEGIN):
                inside = True
                lines.append(HIDDEN_BEGIN)
                continue
            if stripped.startswith(HIDDEN_END):
                inside = False
                lines.append(HIDDEN_END)
                continue
            if inside and len(stripped) >= 12:
                lines.append(stripped)
    return lines


def scrub_text(text: str, secret_lines: list[str]) -> str:
    """``text`` with every line that quotes hidden test code replaced by a notice."""
    if not secret_lines or not text:
        return text
    out = []
    for line in text.split("\n"):
        # IPython colours tracebacks: match against the line without its ANSI escape codes.
        plain = ANSI_ESCAPE.sub("", line)
        out.append(SCRUBBED if any(s in plain for s in secret_lines) else line)
    return "\n".join(out)


def scrub_outputs(nb: NotebookNode, secret_lines: list[str]) -> None:
    """Remove hidden test code from every output (tracebacks quote code; a student's hook may too)."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            kind = out.get("output_type")
            if kind == "stream":
                out["text"] = scrub_text(out.get("text", ""), secret_lines)
            elif kind == "error":
                out["evalue"] = scrub_text(out.get("evalue", ""), secret_lines)
                out["traceback"] = [scrub_text(t, secret_lines) for t in out.get("traceback", [])]
            elif kind in ("display_data", "execute_result"):
                for mime, value in list(out.get("data", {}).items()):
                    if isinstance(value, str) and mime != "application/vnd.aisec.record+json":
                        out["data"][mime] = scrub_text(value, secret_lines)


@functools.lru_cache(maxsize=32)
def _source_hidden_lines(path: str, mtime_ns: int) -> list[str]:
    """:func:`hidden_lines` of a source notebook file, read once per version of the file."""
    return hidden_lines(nbformat.read(path, as_version=4))


def code_digest(nb: NotebookNode) -> str:
    """Hash of the code cells' sources: ties a sandbox run to the notebook it ran."""
    h = hashlib.sha256()
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            h.update(f"{index}\0{cell.source}\0".encode())
    return h.hexdigest()


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
    itself (serially), so the stock command is sandboxed too.
    """

    runs_dir = Unicode("", help="Folder of the checkpointed sandbox runs").tag(config=True)
    use_runs = Bool(False, help="Load checkpointed runs (the class pipeline) instead of executing").tag(config=True)
    allow_unsandboxed = Bool(False, help="Execute without the sandbox where it cannot run (trusted code only)").tag(config=True)
    source_root = Unicode("", help="Folder of the source assignments (for hidden test code scrubbing)").tag(config=True)
    release_root = Unicode("", help="Folder of the released assignments (the lab's data files)").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]) -> tuple[NotebookNode, dict[str, Any]]:
        info = resources["nbgrader"]
        lab, student, notebook = info["assignment"], info["student"], info["notebook"]
        run_file = Path(self.runs_dir) / lab / student / f"{notebook}.json"
        run: RunResult | None = None
        if self.use_runs:
            if not run_file.is_file():
                raise RuntimeError(f"no sandbox run for {student}/{lab}/{notebook}")
            saved = json.loads(run_file.read_text())
            if saved.get("code_digest") != code_digest(nb):
                raise RuntimeError(f"the sandbox run of {student}/{lab}/{notebook} does not match the sanitised notebook")
            run = RunResult.from_json(saved["run"])
        else:
            usable, why = sandbox_status()
            if not usable and not self.allow_unsandboxed:
                raise SandboxUnavailable(f"refusing to execute untrusted work: {why}")
            cfg = self.parent.config if self.parent is not None else self.config
            limits = GradingPipeline(config=cfg).limits_for(lab)
            # The reference run first: it fills the model cache the submission then reads.
            from aisec.grading.judge import reference_records

            judge_cfg = cfg.JudgeRecords
            if "source_root" in judge_cfg and "reference_dir" in judge_cfg:
                reference_records(Path(judge_cfg.source_root), Path(judge_cfg.reference_dir), lab, notebook,
                                  int(judge_cfg.get("timeout", 900)))
            data_dir = Path(self.release_root) / lab if self.release_root else None
            from aisec.cache import cache_dir

            run = execute(nb, f"{notebook}.ipynb", data_dir, limits, cache=cache_dir(), sandboxed=usable)
        apply_run(nb, run, not_run_note=True)
        if self.source_root:
            source = Path(self.source_root) / lab / f"{notebook}.ipynb"
            if source.is_file():
                scrub_outputs(nb, _source_hidden_lines(str(source), source.stat().st_mtime_ns))
        resources.setdefault("aisec", {})["run"] = {"status": run.status, "reason": run.reason, "sandboxed": run.sandboxed}
        return nb, resources


# ------------------------------------------------------------------------ worker side


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Execute one submission's sanitised notebooks in the sandbox (runs on a Dask worker).

    ``job``: ``{"student", "lab", "notebooks": {name: nb_json}, "data_files": {relpath: bytes},
    "limits": {...}, "cache": path or None, "allow_unsandboxed": bool}``. Returns
    ``{"student", "runs": {name: RunResult json}, "worker_pid"}``. Never raises for the
    student's faults; a host without the sandbox returns status ``no_sandbox``.
    """
    import tempfile

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
            runs[name] = execute(nb, f"{name}.ipynb", data_dir, limits, cache=cache, sandboxed=usable).to_json()
    return {"student": job["student"], "runs": runs, "worker_pid": os.getpid()}


# ------------------------------------------------------------------------ driver side


@dataclass
class Outcome:
    """How one submission ended: graded (with a score) or failed (with the reason)."""

    student: str
    status: str  # graded | failed | skipped (already graded, unchanged)
    score: float = 0.0
    max_score: float = 0.0
    notes: list[str] = field(default_factory=list)
    questions: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    digest: str = ""


@dataclass
class Summary:
    lab: str
    outcomes: list[Outcome]
    seconds: float

    @property
    def graded(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status in ("graded", "skipped")]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def render(self) -> str:
        lines = [f"{self.lab}: {len(self.graded)} graded, {len(self.failed)} failed, in {self.seconds:.1f} s"]
        for o in sorted(self.outcomes, key=lambda o: o.student):
            tag = "FAILED" if o.status == "failed" else f"{o.score:g}/{o.max_score:g}"
            note = f"  ({'; '.join(o.notes)})" if o.notes else ""
            lines.append(f"  {o.student:<24} {tag}{' (unchanged, not regraded)' if o.status == 'skipped' else ''}{note}")
        return "\n".join(lines)


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _digest_dir(folder: Path) -> str:
    h = hashlib.sha256()
    if folder.is_dir():
        for f in sorted(p for p in folder.rglob("*") if p.is_file() and ".ipynb_checkpoints" not in p.parts):
            h.update(str(f.relative_to(folder)).encode() + b"\0")
            h.update(f.read_bytes())
    return h.hexdigest()


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
        self.allow_unsandboxed = allow_unsandboxed
        self.log = log
        self.limits = GradingPipeline(config=self.cfg).limits_for(lab)
        self.source_dir = self.root / "solutions" / lab
        self.release_dir = self.root / "labs" / lab
        self.notebooks = sorted(p.stem for p in self.source_dir.glob("*.ipynb"))
        self.source_digest = _digest_dir(self.source_dir)
        self._secret_lines: list[str] = []
        for name in self.notebooks:
            self._secret_lines += hidden_lines(nbformat.read(self.source_dir / f"{name}.ipynb", as_version=4))
        # Phase 2 reads the staged copies; Execute is replaced by the checkpoint loader.
        self.cfg.CourseDirectory.root = str(self.root)
        self.cfg.SandboxExecute.runs_dir = str(self.runs)
        self.cfg.SandboxExecute.use_runs = True
        self.cfg.SandboxExecute.source_root = str(self.root / "solutions")
        self.cfg.OverwriteCells.add_missing_cells = True
        pps = list(self.cfg.Autograde.autograde_preprocessors)
        pps = ["aisec.grading.pipeline.SandboxExecute" if p in ("nbgrader.preprocessors.Execute", "aisec.grading.pipeline.SandboxExecute") else p for p in pps]
        # Staging already ran CheckCellMetadata on the sanitised notebook, and the steps after it
        # only write outputs and grades: a second schema validation per cell is pure cost here.
        self.cfg.Autograde.autograde_preprocessors = [p for p in pps if p != "nbgrader.preprocessors.CheckCellMetadata"]
        # nbgrader's sanitize preprocessors run once, at staging (their output is the staged copy
        # and what the sandbox ran); grading the staged copy must not sanitise it a second time.
        from nbgrader.converters import Autograde

        self._sanitizers = [cls(config=self.cfg) for cls in Autograde(config=self.cfg).sanitize_preprocessors]
        self.cfg.Autograde.sanitize_preprocessors = []
        self._api: Any = None
        # nbgrader runs the `alembic` command of its own environment when it creates a gradebook.
        bindir = str(Path(sys.executable).parent)
        if bindir not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")

    # -- phase 0 ---------------------------------------------------------------------

    def api(self, submitted: Path | None = None) -> Any:
        from nbgrader.apps import NbGraderAPI
        from nbgrader.coursedir import CourseDirectory

        cfg = Config(self.cfg)
        cfg.CourseDirectory.submitted_directory = str(submitted or self.staged)
        cfg.CourseDirectory.release_directory = str(self.ws / "release")
        coursedir = CourseDirectory(config=cfg)
        return NbGraderAPI(coursedir=coursedir, config=cfg)

    def prepare(self) -> None:
        """Register the lab in the gradebook when its source changed; compute the reference."""
        marker = self.state / "registered.json"
        key = {"source": self.source_digest, "db": self.cfg.CourseDirectory.db_url}
        if not (marker.is_file() and json.loads(marker.read_text()) == key):
            result = self.api().generate_assignment(self.lab, force=True, create=True)
            if not result.get("success"):
                raise RuntimeError(f"nbgrader could not register {self.lab}: {result.get('log')}\n{result.get('error')}")
            _atomic_write(marker, json.dumps(key))
        from aisec.grading.judge import reference_records

        for name in self.notebooks:
            reference_records(self.root / "solutions", Path(self.cfg.JudgeRecords.reference_dir), self.lab, name,
                              int(self.cfg.JudgeRecords.get("timeout", 900)))

    # -- staging (driver) ------------------------------------------------------------------

    def students(self) -> list[str]:
        if not self.submitted.is_dir():
            return []
        return sorted(p.parent.name for p in self.submitted.glob(f"*/{self.lab}") if p.is_dir())

    def submission_digest(self, student: str) -> str:
        h = hashlib.sha256()
        for part in (PIPELINE_VERSION, self.source_digest, json.dumps(asdict(self.limits), sort_keys=True),
                     _digest_dir(self.submitted / student / self.lab), self.cfg.CourseDirectory.db_url):
            h.update(part.encode() + b"\0")
        return h.hexdigest()[:24]

    def stage(self, student: str) -> tuple[dict[str, str], list[str]]:
        """Stage and sanitise one submission: ``({notebook: sanitised JSON to run}, notes)``.

        The staged copies are the sanitised notebooks (nbgrader grades exactly what ran); a
        missing or unreadable notebook is staged as the sanitised blank release, not run."""
        src = self.submitted / student / self.lab
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
        source_ids = self._source_ids
        for name in self.notebooks:
            path = src / f"{name}.ipynb"
            if not path.is_file():
                if len(self.notebooks) == 1 and len(unmatched) == 1:
                    path = unmatched[0]
                    notes.append(f"notebook renamed to {path.name!r}: graded as {name}.ipynb")
                else:
                    notes.append(f"{name}.ipynb is missing from the submission: its questions score 0")
                    # The blank release stands in for it, so its questions get a recorded zero.
                    self._stage_blank(student, name, dest)
                    continue
            try:
                nb = nbformat.read(path, as_version=4)
                if not isinstance(nb.get("cells"), list):
                    raise ValueError("no list of cells")
            except Exception as exc:  # noqa: BLE001 - any unreadable file is the submission's fault, recorded
                notes.append(f"{path.name} is not a readable notebook ({type(exc).__name__}: {str(exc)[:120]}): scored 0")
                self._stage_blank(student, name, dest)
                continue  # nothing of the student's to run: the blank release scores 0
            kernel = nb.metadata.get("kernelspec", {}).get("name") if isinstance(nb.metadata.get("kernelspec"), dict) else None
            if kernel != "python3":
                notes.append(f"kernel {kernel!r} replaced by python3")
            submitted_ids = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in nb.cells
                             if isinstance(c.get("metadata", {}).get("nbgrader"), dict)}
            for missing in sorted(self._test_ids[name] - submitted_ids):
                notes.append(f"test cell {missing!r} was missing: restored from the source")
            for cell in nb.cells:
                meta = cell.get("metadata", {}).get("nbgrader")
                if isinstance(meta, dict) and meta.get("grade_id") is not None and meta["grade_id"] not in source_ids[name]:
                    notes.append(f"cell id {meta['grade_id']!r} is not in the lab (renamed?): treated as an ordinary cell, "
                                 "the lab's own cell was restored")
                    del cell.metadata["nbgrader"]
            to_run[name] = nbformat.writes(self._sanitise(nb, student, name))
            (dest / f"{name}.ipynb").write_text(to_run[name])
        return to_run, notes

    def _stage_blank(self, student: str, name: str, dest: Path) -> None:
        blank = nbformat.read(self.release_dir / f"{name}.ipynb", as_version=4)
        (dest / f"{name}.ipynb").write_text(nbformat.writes(self._sanitise(blank, student, name)))

    @functools.cached_property
    def _test_ids(self) -> dict[str, set[str]]:
        ids: dict[str, set[str]] = {}
        for name in self.notebooks:
            nb = nbformat.read(self.source_dir / f"{name}.ipynb", as_version=4)
            ids[name] = {c.metadata["nbgrader"]["grade_id"] for c in nb.cells
                         if c.get("metadata", {}).get("nbgrader", {}).get("grade") and c.cell_type == "code"}
        return ids

    @functools.cached_property
    def _source_ids(self) -> dict[str, set[str]]:
        ids: dict[str, set[str]] = {}
        for name in self.notebooks:
            nb = nbformat.read(self.source_dir / f"{name}.ipynb", as_version=4)
            ids[name] = {c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "grade_id" in c.get("metadata", {}).get("nbgrader", {})}
        return ids

    def _sanitise(self, nb: NotebookNode, student: str, name: str) -> NotebookNode:
        """nbgrader's own sanitize step (as ``nbgrader autograde`` runs it), in this process."""
        resources = {"nbgrader": {"student": student, "assignment": self.lab, "notebook": name,
                                  "db_url": self.cfg.CourseDirectory.db_url}}
        nb = nbformat.reads(nbformat.writes(nb), as_version=4)  # a copy, with sources as str
        for pp in self._sanitizers:
            nb, resources = pp.preprocess(nb, resources)
        return nb

    def job(self, student: str, notebooks: dict[str, str]) -> dict[str, Any]:
        data_files: dict[str, bytes] = {}
        if self.release_dir.is_dir():
            for f in self.release_dir.rglob("*"):
                if f.is_file() and f.suffix != ".ipynb" and ".ipynb_checkpoints" not in f.parts:
                    data_files[str(f.relative_to(self.release_dir))] = f.read_bytes()
        from aisec.cache import cache_dir

        return {"student": student, "lab": self.lab, "notebooks": notebooks, "data_files": data_files,
                "limits": asdict(self.limits), "cache": str(cache_dir()), "allow_unsandboxed": self.allow_unsandboxed}

    # -- phase 2 -------------------------------------------------------------------------

    def finish(self, student: str, runs: dict[str, Any], notes: list[str], digest: str, seconds: float,
               code_digests: dict[str, str]) -> Outcome:
        """Checkpoint the runs, grade with nbgrader into the gradebook, write the done marker.

        ``code_digests``: the code digest of each notebook that was sent to run (as staged)."""
        notes = list(notes)
        runs = dict(runs)
        for name in self.notebooks:
            if name not in runs and (self.staged / student / self.lab / f"{name}.ipynb").is_file():
                # A stand-in for an unreadable or missing notebook: nothing of the student's ran.
                runs[name] = RunResult("not_run", "nothing was executed (see the notes)", {}, 0.0, True).to_json()
        for name, run in runs.items():
            if name in code_digests:
                run_digest = code_digests[name]
            else:  # a stand-in: the staged copy is already sanitised
                run_digest = code_digest(nbformat.read(self.staged / student / self.lab / f"{name}.ipynb", as_version=4))
            result = RunResult.from_json(run)
            if result.status == "no_sandbox":
                return Outcome(student, "failed", notes=notes + [result.reason], digest=digest, seconds=seconds)
            if result.status not in ("ok", "not_run"):
                notes.append(f"{name}: {result.reason}")
            if not result.sandboxed:
                notes.append(f"{name}: executed WITHOUT the sandbox (explicitly allowed)")
            _atomic_write(self.runs / self.lab / student / f"{name}.json",
                          json.dumps({"code_digest": run_digest, "run": run}))
        with warnings.catch_warnings():
            # nbgrader 0.9 triggers SQLAlchemy autoflush warnings on every autograde: noise.
            warnings.filterwarnings("ignore", module="nbgrader")
            warnings.filterwarnings("ignore", message=".*not in session.*")
            result = self.api().autograde(self.lab, student, force=True, create=True)
        if not result.get("success"):
            err = (result.get("error") or result.get("log") or "unknown error").strip().splitlines()
            return Outcome(student, "failed", notes=notes + ["nbgrader could not grade it: " + (err[-1] if err else "")],
                           digest=digest, seconds=seconds)
        outcome = self.read_grades(student)
        outcome.notes = notes
        outcome.digest = digest
        outcome.seconds = seconds
        _atomic_write(self.done / f"{student}.json", json.dumps(asdict(outcome)))
        return outcome

    def read_grades(self, student: str) -> Outcome:
        """Score and per-question feedback of a graded submission (gradebook + autograded notebooks)."""
        from nbgrader.api import Gradebook

        questions: list[dict[str, Any]] = []
        with Gradebook(self.cfg.CourseDirectory.db_url, self.cfg.CourseDirectory.course_id) as gb:
            sub = gb.find_submission(self.lab, student)
            auto_max = 0.0
            auto_score = 0.0
            for nb_sub in sub.notebooks:
                graded = Path(self.cfg.CourseDirectory.autograded_directory) / student / self.lab / f"{nb_sub.name}.ipynb"
                cells = {}
                if graded.is_file():
                    nb = nbformat.read(graded, as_version=4)
                    cells = {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells
                             if c.get("metadata", {}).get("nbgrader", {}).get("grade_id")}
                for grade in nb_sub.grades:
                    if grade.cell_type != "code":
                        continue  # written answers: graded by hand in formgrader
                    score = float(grade.score or 0.0)
                    auto_max += grade.max_score
                    auto_score += score
                    passed = score >= grade.max_score
                    questions.append({
                        "grade_id": grade.name, "points": score, "max_points": float(grade.max_score),
                        "passed": passed, "feedback": feedback_for(cells.get(grade.name), passed, self._secret_lines),
                    })
        return Outcome(student, "graded", score=auto_score, max_score=auto_max, questions=questions)

    # -- the class ------------------------------------------------------------------------

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
        _atomic_write(self.state / "summary.json", json.dumps(
            {"lab": self.lab, "seconds": summary.seconds, "outcomes": [asdict(o) for o in summary.outcomes]}, indent=1))
        return summary


def feedback_for(cell: NotebookNode | None, passed: bool, secret_lines: list[str]) -> str:
    """One line of feedback for a graded cell: which check failed and the hint, never hidden code."""
    if passed:
        return "passed"
    if cell is None:
        return "this question's test cell could not be graded"
    hints: list[str] = []
    errors: list[str] = []
    hidden: list[str] = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            for line in out.get("text", "").splitlines():
                s = line.strip()
                if s.startswith("✘") or s.startswith("hint:") or s.startswith("not answered yet") or s.startswith("your code raised"):
                    hints.append(s)
        elif out.get("output_type") == "error":
            ename, evalue = out.get("ename", "Error"), out.get("evalue", "")
            if ename == "HiddenCheckFailed":
                hidden.append(evalue)
            elif ename == "CheckFailed":
                errors.append("visible checks failed (see the hints)")
            else:
                errors.append(f"{ename}: {evalue}"[:300])
    for evalue in hidden:
        parts = evalue.split("; ")
        # After an error in the cell, "no value was recorded" only repeats it: name the checks once.
        missed = [p.split(" ", 1)[0] for p in parts if errors and "no value was recorded" in p]
        failed = [p for p in parts if not (errors and "no value was recorded" in p)]
        if failed:
            errors.append(f"hidden checks failed: {'; '.join(failed)}")
        if missed:
            errors.append(f"hidden checks not reached: {', '.join(missed)}")
    text = " | ".join(errors + hints) or "the test cell failed"
    return scrub_text(text, secret_lines)
