"""Red team: hostile and broken submissions get exactly the grade and the recorded reason they deserve.

The whole red-team class (tests/redteam/submissions.py) is graded once, in parallel, by the real
pipeline (sandbox, Dask, nbgrader) on a tiny lab; every case then checks its exact score and
reason, and the cases that attack the host check that the attack left no trace.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import nbformat
import pytest

from aisec.grading.sandbox import sandbox_env, sandbox_status
from conftest_grader import require_sandbox
from redteam.builders import submit
from redteam.fakelab import LAB, make_course
from redteam.submissions import CASES, MAX, NB

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    require_sandbox()
    tmp = tmp_path_factory.mktemp("redteam")
    root = make_course(tmp)
    ws = tmp / "ws"
    old = {k: os.environ.get(k) for k in ("AISEC_COURSE_ROOT", "AISEC_WORKSPACE")}
    os.environ["AISEC_COURSE_ROOT"] = str(root)
    os.environ["AISEC_WORKSPACE"] = str(ws)
    try:
        from aisec.grading.pipeline import Grader

        for name, case in CASES.items():
            submit(ws / "submitted", name, LAB, case.build(root))
        grader = Grader(LAB, ws=ws)
        summary = grader.grade_class(workers=2, progress=False)
        yield {"summary": summary, "outcomes": {o.student: o for o in summary.outcomes}, "ws": ws, "root": root,
               "grader": grader}
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _reason(outcome: Any) -> str:
    return " | ".join(outcome.notes + [q["feedback"] for q in outcome.questions])


def _outputs(ws: Path, student: str) -> str:
    nb = nbformat.read(ws / "autograded" / student / LAB / NB, as_version=4)
    return json.dumps([c.get("outputs", []) for c in nb.cells])


def test_there_are_at_least_twenty_hostile_or_broken_cases() -> None:
    hostile = [n for n in CASES if not n.startswith("honest")]
    assert len(hostile) >= 20


@pytest.mark.parametrize("name", sorted(CASES))
def test_exact_grade_and_reason(graded: dict[str, Any], name: str) -> None:
    case = CASES[name]
    outcome = graded["outcomes"][name]
    assert outcome.status == "graded", f"{name}: {outcome.notes}"
    assert outcome.max_score == MAX
    assert outcome.score == case.score, f"{name}: {outcome.score} != {case.score}: {_reason(outcome)}"
    for fragment in case.reasons:
        assert fragment in _reason(outcome), f"{name}: {fragment!r} not in {_reason(outcome)!r}"
    if case.score == MAX:
        assert all(q["passed"] for q in outcome.questions)


def test_feedback_never_shows_hidden_code_or_reference_values(graded: dict[str, Any]) -> None:
    source = nbformat.read(graded["root"] / "solutions" / LAB / NB, as_version=4)
    from aisec.grading.pipeline import hidden_lines

    secrets = hidden_lines(source) + ["[1, 4, 7, 10, 13, 16, 19]"]  # q1's reference values
    for outcome in graded["summary"].outcomes:
        for q in outcome.questions:
            for secret in secrets:
                assert secret not in q["feedback"], (outcome.student, q)


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c.extra))
def test_attack_left_no_trace(graded: dict[str, Any], name: str) -> None:
    ws: Path = graded["ws"]
    out = _outputs(ws, name)
    extra = CASES[name].extra
    if extra == "found_nothing":
        assert "FOUND []" in out
    elif extra == "gradebook_clean":
        assert "DBS []" in out
        from nbgrader.api import Gradebook

        with Gradebook("sqlite:///" + str(ws / "gradebook.db")) as gb:
            scores = [g.auto_score for s in gb.assignment_submissions(LAB) for n in s.notebooks for g in n.grades]
        assert scores and max(s or 0 for s in scores) <= 3.0  # no grade was set to 100 by the submission
    elif extra == "network_blocked":
        assert "NET OK" not in out and out.count("NET BLOCKED") == 2
    elif extra == "env_is_sandbox_env":
        assert "NBGRADER" not in out and "AISEC_WORKSPACE" not in out and "sandbox" in out
        for key in sandbox_env():
            assert key in out
    elif extra == "fork_refused":
        assert "FORK REFUSED after" in out
    elif extra == "no_leftover":
        leftover = subprocess.run(["pgrep", "-f", "sleep 98[67]"], capture_output=True, text=True).stdout.split()
        assert leftover == []
    elif extra == "memory_limited":
        assert "MEMORY LIMIT after" in out
    elif extra == "small_notebook":
        assert (ws / "autograded" / name / LAB / NB).stat().st_size < 3 * 1024 * 1024
        assert "output truncated by the grader" in out
    elif extra == "write_refused":
        assert "WRITE REFUSED" in out
    elif extra == "no_hidden_code":
        from aisec.grading.pipeline import hidden_lines

        source = nbformat.read(graded["root"] / "solutions" / LAB / NB, as_version=4)
        for line in hidden_lines(source):
            assert line not in out
        assert "hidden test code removed by the grader" in out
    else:
        pytest.fail(f"unknown check {extra}")


def test_feedback_command_strips_hidden_tests(graded: dict[str, Any]) -> None:
    env = dict(os.environ, AISEC_COURSE_ROOT=str(graded["root"]), AISEC_WORKSPACE=str(graded["ws"]))
    from aisec.grading.pipeline import hidden_lines

    proc = subprocess.run([shutil.which("aisec-grade") or "aisec-grade", "feedback", LAB], env=env,
                          capture_output=True, text=True, cwd=graded["root"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    html = (graded["ws"] / "feedback" / "honest" / LAB / f"{LAB}.html").read_text()
    source = nbformat.read(graded["root"] / "solutions" / LAB / NB, as_version=4)
    for line in hidden_lines(source):
        assert line not in html


def test_rerun_grades_nothing_twice(graded: dict[str, Any]) -> None:
    grader = graded["grader"]
    again = grader.grade_class(workers=1, progress=False)
    assert {o.student for o in again.outcomes if o.status == "skipped"} == set(CASES)
    assert {o.student: o.score for o in again.outcomes} == {o.student: o.score for o in graded["summary"].outcomes}


def test_sandbox_status_is_reported() -> None:
    usable, why = sandbox_status()
    assert isinstance(why, str) and why
    if os.environ.get("CI") == "true":
        assert usable, why


def test_concurrent_sandboxes_of_one_process_get_their_own_uid(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dask's local workers are threads of one process: each running sandbox needs its own uid,
    or a fork bomb in one submission would use up the process limit of the one beside it."""
    from aisec.grading import sandbox

    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 0)  # the uid is only dropped to as root
    with sandbox._uid_slot() as first, sandbox._uid_slot() as second:
        assert sandbox._sandbox_uid(first) != sandbox._sandbox_uid(second)
        held = {sandbox._sandbox_uid(first), sandbox._sandbox_uid(second)}
    with sandbox._uid_slot() as again:  # released slots are reused, never leaked
        assert sandbox._sandbox_uid(again) in held
    assert all(uid > 65535 for uid in held)  # never a system or ordinary user's uid
