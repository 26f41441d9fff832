"""Self-grading for a learner: the same pipeline, on one's own notebook, with hints.

    from aisec.grading.selfgrade import self_grade
    result = self_grade("lab00_minimisation")            # grades labs/lab00_minimisation/
    result = self_grade("lab00_minimisation", "my.ipynb")

``self_grade`` picks one of three modes, in this order (the result's ``"mode"`` says which ran):

``"service"``
    ``$AISEC_GRADING_SERVICE_URL`` is set (a class on JupyterHub): the notebook is sent to the
    course's grading service (:mod:`aisec.grading.service`) with the learner's hub token
    (``$JUPYTERHUB_API_TOKEN``, which every single-user server has). The hidden tests run there,
    never on the learner's machine. :class:`GradingServiceError` says what went wrong (no access,
    too many requests, service unreachable).
``"local"``
    the hidden tests are in this copy of the course (``<course>/solutions/<lab>`` exists: a
    self-paced learner with the whole repository). The learner's notebook is sanitised (test cells
    restored), executed in the sandbox when the host allows it (otherwise unsandboxed with a
    printed notice: it is the learner's own code) and judged against the hidden tests' reference
    records, in a private workspace, ``<workspace>/self/<lab>/`` (its own SQLite gradebook).
``"visible-only"``
    neither (a student's copy of a class's course, without ``solutions/``): the notebook runs (in
    the sandbox when available) with the released test cells restored, and the result reports the
    visible checks that :func:`aisec.check.check` displays, question by question. Hidden tests were
    not run, so there is no score (``"score": None``); the result's ``"hint"`` says where a full
    grade comes from.

In every mode only scores and the grader's verdict on each check (one line each) come back: never
hidden test code or reference values. The result is also written to
``<workspace>/self/<lab>/result.json`` for the progress overview (:mod:`aisec.progress`).
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aisec.grading.sandbox import sandbox_status

STUDENT = "self"
SERVICE_URL_ENV = "AISEC_GRADING_SERVICE_URL"
TOKEN_ENV = "JUPYTERHUB_API_TOKEN"
#: How long the client waits for the service: a grading runs the whole notebook.
SERVICE_TIMEOUT_ENV = "AISEC_GRADING_SERVICE_TIMEOUT"
SERVICE_TIMEOUT = 1200.0
#: The service's endpoint, relative to its URL (``<JUPYTERHUB_SERVICE_PREFIX>api/grade``).
GRADE_PATH = "api/grade"
RESULT_KEYS = ("grade_id", "points", "max_points", "passed", "checks", "feedback")
VISIBLE_ONLY_HINT = ("Hidden tests were not run (this copy of the course has none), so there is no score. "
                     "In a class, your instructor's grading service gives the full grade: ask for its address "
                     f"(it is set as {SERVICE_URL_ENV} on the class's JupyterHub).")


class GradingServiceError(RuntimeError):
    """The grading service could not grade the notebook; the message says why and what to do."""


# ----------------------------------------------------------------------------- where things are


def learner_root() -> Path:
    """The learner's course folder: ``$AISEC_COURSE_ROOT``, else the checkout this package is in.

    Unlike :func:`aisec.grading.common.course_root` it does not require the instructor's grader
    configuration: a student's copy of a course may hold only ``course/`` and ``labs/``."""
    override = os.environ.get("AISEC_COURSE_ROOT")
    return Path(override).resolve() if override else Path(__file__).resolve().parents[2]


def learner_workspace() -> Path:
    """Where results are kept: ``$AISEC_WORKSPACE``, else ``<learner root>/.workspace``."""
    override = os.environ.get("AISEC_WORKSPACE")
    return Path(override).resolve() if override else learner_root() / ".workspace"


def has_hidden_tests(lab: str) -> bool:
    """Whether this copy of the course holds the lab's source with its hidden tests."""
    return (learner_root() / "solutions" / lab).is_dir()


def default_notebooks(lab: str) -> list[Path]:
    """The learner's copy of the lab: every notebook of ``labs/<lab>/``."""
    folder = learner_root() / "labs" / lab
    found = sorted(folder.glob("*.ipynb")) if folder.is_dir() else []
    if not found:
        raise FileNotFoundError(f"no notebook in {folder}: is {lab!r} spelled right?")
    return found


# ----------------------------------------------------------------------------- the three modes


def self_grade(lab: str, notebook: str | None = None, quiet: bool = True) -> dict[str, Any]:
    """Grade the learner's copy of ``lab`` (or ``notebook``); return and save the result dict.

    The mode is chosen as the module docstring says; the result carries it as ``"mode"``."""
    if os.environ.get(SERVICE_URL_ENV):
        source = Path(notebook) if notebook else default_notebooks(lab)[0]
        result = grade_via_service(os.environ[SERVICE_URL_ENV], lab, source)
    elif has_hidden_tests(lab):
        result = grade_locally(lab, notebook, quiet=quiet)
    else:
        result = grade_visible_only(lab, notebook)
    save_result(result)
    return result


def save_result(result: dict[str, Any]) -> Path:
    """Write ``result`` to ``<workspace>/self/<lab>/result.json`` (atomically), return the path."""
    base = learner_workspace() / "self" / str(result["lab"])
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / "result.json.tmp"
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(base / "result.json")
    return base / "result.json"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- (a) the service


def grade_via_service(url: str, lab: str, notebook: Path, token: str | None = None,
                      timeout: float | None = None) -> dict[str, Any]:
    """Send ``notebook`` to the grading service at ``url`` as the token's owner; its result.

    Raises :class:`GradingServiceError` with a message for the learner on any failure."""
    token = token if token is not None else os.environ.get(TOKEN_ENV, "")
    if not token:
        raise GradingServiceError(f"{SERVICE_URL_ENV} is set but there is no {TOKEN_ENV}: grade from your "
                                  "server on the class's JupyterHub, where it is set for you.")
    try:
        body = {"lab": lab, "notebook": json.loads(notebook.read_text(encoding="utf-8"))}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GradingServiceError(f"{notebook} is not a readable notebook ({exc}): save it from Jupyter and "
                                  "grade again.") from exc
    request = urllib.request.Request(
        url.rstrip("/") + "/" + GRADE_PATH, data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    wait = timeout if timeout is not None else float(os.environ.get(SERVICE_TIMEOUT_ENV, SERVICE_TIMEOUT))
    try:
        with urllib.request.urlopen(request, timeout=wait) as response:
            result = json.loads(response.read().decode())
    except urllib.error.HTTPError as exc:
        raise GradingServiceError(_service_refusal(exc)) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise GradingServiceError(f"the grading service at {url} cannot be reached ({reason}). Try again in a "
                                  "minute; if it keeps failing, tell your instructor.") from exc
    except json.JSONDecodeError as exc:
        raise GradingServiceError(f"the grading service at {url} sent an answer that is not a result: tell "
                                  "your instructor.") from exc
    if not isinstance(result, dict) or not isinstance(result.get("questions"), list):
        raise GradingServiceError(f"the grading service at {url} sent an answer that is not a result: tell "
                                  "your instructor.")
    result["mode"] = "service"
    return result


def _service_refusal(exc: urllib.error.HTTPError) -> str:
    """A message for the learner from the service's error response."""
    try:
        reason = str(json.loads(exc.read().decode()).get("reason") or exc.reason)
    except (ValueError, AttributeError, OSError):
        reason = str(exc.reason)
    if exc.code == 403:
        return (f"the grading service refused your token ({reason}). Your server's token may not allow the "
                "grading service: restart your server (File → Hub Control Panel → Stop My Server, then start "
                "it), and tell your instructor if it persists.")
    if exc.code == 429:
        wait = exc.headers.get("Retry-After") if exc.headers else None
        return f"too many gradings: {reason}" + (f" Try again in {wait} s." if wait else "")
    if exc.code == 400:
        return f"the grading service could not grade this notebook: {reason}"
    return f"the grading service failed (HTTP {exc.code}: {reason}). Try again later; tell your instructor if it persists."


# ----------------------------------------------------------------------------- (b) local, hidden tests


def grade_locally(lab: str, notebook: str | None = None, quiet: bool = True) -> dict[str, Any]:
    """Full grading with the hidden tests in this copy of the course (private gradebook)."""
    from aisec.grading.common import workspace

    usable, why = sandbox_status()
    if not usable:
        print(f"Notice: the grading sandbox cannot run on this machine ({why}). Your notebook runs without it: "
              "fine for your own code, but class grading refuses to do this.")
    sources = [Path(notebook)] if notebook else default_notebooks(lab)
    private = workspace() / "self" / lab / "nbgrader"
    if private.exists():
        shutil.rmtree(private)  # a fresh private gradebook: self-grading keeps no history
    # The reference records are shared with class grading (same cache, same sources).
    result = grade_files(lab, sources, private, workspace() / "references", quiet=quiet, renamed=bool(notebook))
    result["mode"] = "local"
    return result


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (a file), between processes: one reference run at a time."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def grade_files(lab: str, sources: list[Path], private: Path, reference_dir: Path, quiet: bool = True,
                renamed: bool = False) -> dict[str, Any]:
    """Grade ``sources`` (the learner's notebook(s) of ``lab``) through the class pipeline.

    Everything is written under ``private`` (submission, staged copy, runs, a SQLite gradebook of
    its own); the reference run is read from, or cached into, ``reference_dir``. ``renamed``: a
    single notebook of any name stands for the lab's (first) notebook. Returns the result dict
    (without ``"mode"``): score, max_score, and per question the grader's verdicts."""
    from aisec.grading.pipeline import Grader
    from aisec.grading.reference import reference_run

    grader = Grader(lab, ws=private, db_url="sqlite:///" + str(private / "gradebook.db"), allow_unsandboxed=True,
                    log=(lambda _m: None) if quiet else print)
    dest = grader.submitted / STUDENT / lab
    dest.mkdir(parents=True, exist_ok=True)
    for source in sources:
        if not source.is_file():
            raise FileNotFoundError(f"no notebook at {source}")
        name = f"{grader.notebooks[0]}.ipynb" if renamed or len(grader.notebooks) == 1 else source.name
        shutil.copy2(source, dest / name)
    grader.reference_dir = reference_dir
    grader.cfg.JudgeRecords.reference_dir = str(reference_dir)
    with _locked(reference_dir / f".{lab}.lock"):
        # Gradings that start together compute a missing reference once (the others wait for it).
        for name in grader.notebooks:
            reference_run(grader.root / "solutions", reference_dir, lab, name)
    outcome = grader.grade_class(workers=1, progress=not quiet, local=True).outcomes[0]
    result: dict[str, Any] = {
        "lab": lab,
        "score": float(outcome.score),
        "max_score": float(outcome.max_score),
        "graded_at": _now(),
        "questions": [{k: q[k] for k in RESULT_KEYS} for q in outcome.questions],
    }
    if outcome.status == "failed":
        result["error"] = "; ".join(outcome.notes)
    elif outcome.notes:
        result["notes"] = outcome.notes
    return result


# ----------------------------------------------------------------------------- (c) visible checks only


def _restore_test_cells(nb: Any, released: Any) -> list[str]:
    """Make every test cell the released one (by grade id), re-adding missing ones; notes on changes."""
    from aisec.grading.common import is_test_cell, nbgrader_meta

    tests = {nbgrader_meta(c)["grade_id"]: c for c in released.cells if is_test_cell(c)}
    notes: list[str] = []
    seen: set[str] = set()
    for index, cell in enumerate(nb.cells):
        grade_id = nbgrader_meta(cell).get("grade_id")
        if grade_id in tests:
            seen.add(grade_id)
            nb.cells[index] = copy.deepcopy(tests[grade_id])
    for grade_id in sorted(set(tests) - seen):
        notes.append(f"test cell {grade_id!r} was missing: restored from the lab")
        nb.cells.append(copy.deepcopy(tests[grade_id]))
    return notes


def grade_visible_only(lab: str, notebook: str | None = None) -> dict[str, Any]:
    """Run the learner's notebook and report its visible checks; no hidden tests, no score."""
    import nbformat

    from aisec.cache import cache_dir
    from aisec.grading.common import is_test_cell
    from aisec.grading.judge import judge_cell, run_notes
    from aisec.grading.sandbox import Limits, apply_run, execute

    released_path = default_notebooks(lab)[0]
    source = Path(notebook) if notebook else released_path
    if not source.is_file():
        raise FileNotFoundError(f"no notebook at {source}")
    nb = nbformat.read(source, as_version=4)
    notes = _restore_test_cells(nb, nbformat.read(released_path, as_version=4))
    usable, why = sandbox_status()
    if not usable:
        notes.append(f"executed without the sandbox ({why}): fine for your own code")
    run = execute(nb, released_path.name, released_path.parent, Limits(), cache=cache_dir(), sandboxed=usable)
    apply_run(nb, run)
    stops = run_notes({"status": run.status, "executed": sorted(run.cells)}, nb)
    questions = []
    for index, cell in enumerate(nb.cells):
        if not is_test_cell(cell):
            continue
        # The judge's own reading of the cell, without records: its visible and run checks only.
        verdict = judge_cell(cell, {}, stops.get(index))
        verdict.checks[:] = [c for c in verdict.checks if c.kind != "hidden"]
        questions.append({"grade_id": verdict.grade_id, "points": None,
                          "max_points": float(cell.metadata["nbgrader"].get("points", 0) or 0),
                          "passed": verdict.passed, "checks": verdict.to_json()["checks"],
                          "feedback": verdict.lines()})
    result: dict[str, Any] = {"lab": lab, "mode": "visible-only", "score": None,
                              "max_score": sum(q["max_points"] for q in questions), "graded_at": _now(),
                              "hidden_tests_run": False, "questions": questions, "hint": VISIBLE_ONLY_HINT}
    if run.status != "ok":
        notes.append(f"the run stopped: {run.reason}")
    if notes:
        result["notes"] = notes
    return result


# ----------------------------------------------------------------------------- text


def render(result: dict[str, Any]) -> str:
    """The result as text for a terminal or a notebook cell (any mode)."""
    visible_only = result.get("mode") == "visible-only"
    if visible_only:
        passed = sum(bool(q["passed"]) for q in result["questions"])
        lines = [f"{result['lab']}: visible checks only, no score: {passed}/{len(result['questions'])} "
                 "questions pass their visible checks"]
    else:
        via = " (graded by the class's grading service)" if result.get("mode") == "service" else ""
        lines = [f"{result['lab']}: {result['score']:g} / {result['max_score']:g} automatic points{via}"]
    for q in result["questions"]:
        mark = "✔" if q["passed"] else "✘"
        points = "" if q["points"] is None else f": {q['points']:g}/{q['max_points']:g}"
        lines.append(f"  {mark} {q['grade_id']}{points}")
        if not q["passed"]:
            lines += [f"      {line}" for line in q["feedback"]]
    if result.get("error"):
        lines.append(f"  could not grade: {result['error']}")
    for note in result.get("notes", []):
        lines.append(f"  note: {note}")
    if visible_only:
        lines.append(result.get("hint") or VISIBLE_ONLY_HINT)
    lines.append("Written answers are graded by your instructor.")
    return "\n".join(lines)
