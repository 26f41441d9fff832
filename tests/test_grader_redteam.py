"""Red team: hostile and broken submissions get exactly the grade and the recorded reason they deserve.

The whole red-team class (tests/redteam/submissions.py) is graded once, in parallel, by the real
pipeline (sandbox, Dask, nbgrader) on a tiny lab; every case then checks its exact score and
reason, and the cases that attack the host check that the attack left no trace.
"""

from __future__ import annotations

import json
import os
import re
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
    return "\n".join(outcome.notes + [line for q in outcome.questions for line in q["feedback"]])


def _outputs(ws: Path, student: str) -> str:
    """Everything the submission's code printed: the instructor's checkpoint of its run."""
    run = json.loads((ws / "grading" / LAB / "runs" / LAB / student / NB.replace(".ipynb", ".json")).read_text())
    return json.dumps(run["run"]["cells"])


def _graded_outputs(ws: Path, student: str) -> str:
    """The outputs feedback is made of: those of the autograded notebook."""
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
    from aisec.grading.common import hidden_lines

    secrets = hidden_lines(source) + ["[1, 4, 7, 10, 13, 16, 19]"]  # q1's reference values
    for outcome in graded["summary"].outcomes:
        for q in outcome.questions:
            for secret in secrets:
                assert all(secret not in line for line in q["feedback"]), (outcome.student, q)


def test_graded_notebooks_show_only_the_graders_verdicts(graded: dict[str, Any]) -> None:
    """Test cells carry the verdict, every other cell no output: nothing the student's code emitted."""
    from aisec.grading.common import is_test_cell

    for outcome in graded["summary"].outcomes:
        path = graded["ws"] / "autograded" / outcome.student / LAB / NB
        if not path.is_file():
            continue
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code":
                continue
            if not is_test_cell(cell):
                assert cell.outputs == [], (outcome.student, cell.source[:60])
            else:
                assert len(cell.outputs) == 1 and cell.outputs[0].output_type in ("stream", "error")
                text = cell.outputs[0].get("text", "") + "\n".join(cell.outputs[0].get("traceback", []))
                assert all(line.startswith(("✔", "✘", "ChecksFailed")) for line in text.splitlines() if line), text


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
        from aisec.grading.common import hidden_lines

        assert "SPY" in out, "the spy ran (its output is in the instructor's run checkpoint)"
        graded_outputs = _graded_outputs(ws, name)
        assert "SPY" not in graded_outputs
        source = nbformat.read(graded["root"] / "solutions" / LAB / NB, as_version=4)
        for line in hidden_lines(source):
            assert line not in graded_outputs, line
    elif extra == "no_exfiltration":
        assert "EXFIL" in out, "the exfiltration hooks ran"
        assert "EXFIL" not in _graded_outputs(ws, name)
        assert re.search(r"EXFIL[A-Za-z0-9+/=]{20,}", out), "the hooks emitted encoded hidden code"
        assert "EXFIL" not in _reason(graded["outcomes"][name])
    elif extra == "cut_early":
        run = json.loads(out)
        assert graded["outcomes"][name].seconds < 60, "a hang is cut near the reference's time, not the wall limit"
        assert run, "the cells before the hang ran"
    elif extra == "sandbox_memory":
        from aisec.grading.cgroup import memory_group_status

        held = int(out.split("CHILDREN HELD", 1)[1].split("MB", 1)[0]) if "CHILDREN HELD" in out else 0
        if memory_group_status()[0]:
            assert held <= 2500, f"six processes held {held} MB together in a 2.5 GB sandbox"
            assert graded["outcomes"][name].seconds < 60
        else:  # the stated fallback: each process is limited, not their sum
            assert held == 3000
    else:
        pytest.fail(f"unknown check {extra}")


def test_feedback_command_strips_hidden_tests(graded: dict[str, Any]) -> None:
    env = dict(os.environ, AISEC_COURSE_ROOT=str(graded["root"]), AISEC_WORKSPACE=str(graded["ws"]))
    from aisec.grading.common import hidden_lines

    proc = subprocess.run([shutil.which("aisec-grade") or "aisec-grade", "feedback", LAB], env=env,
                          capture_output=True, text=True, cwd=graded["root"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    source = nbformat.read(graded["root"] / "solutions" / LAB / NB, as_version=4)
    for student in ("honest", "marker_text_in_answer", "exfiltrate_hidden_code_encoded", "forged_threshold_hook"):
        html = (graded["ws"] / "feedback" / student / LAB / f"{LAB}.html").read_text()
        for line in hidden_lines(source):
            # The marker student's own comment quotes the marker text: that is their line, not a leak.
            assert line not in html or (student == "marker_text_in_answer" and "HIDDEN TESTS" in line), (student, line)
        assert not re.search(r"EXFIL[A-Za-z0-9+/=]{20,}", html), student  # the hook's own source may say 'EXFIL


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
