"""Scale and reliability of the grading pipeline, for real: a Dask scheduler and two workers as
separate processes, a PostgreSQL gradebook, a grader killed mid-run, self-grading, and the loud
refusal to grade untrusted work without the sandbox."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest_grader import free_port, postgres_url, require_sandbox  # noqa: F401 - postgres_url is a fixture
from redteam.builders import solved, stub, submit, with_answer
from redteam.fakelab import LAB, make_course

pytestmark = pytest.mark.slow
NB = f"{LAB}.ipynb"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_sandbox()
    return make_course(tmp_path_factory.mktemp("scale"))


@pytest.fixture()
def env(course: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("AISEC_COURSE_ROOT", str(course))
    monkeypatch.setenv("AISEC_WORKSPACE", str(tmp_path / "ws"))
    return dict(os.environ)


def _class(course: Path, ws: Path, n: int) -> dict[str, float]:
    """``n`` submissions: honest, wrong on q1, untouched, in turn; their expected scores."""
    expected = {}
    for i in range(n):
        kind = i % 3
        nb = solved(course, LAB) if kind == 0 else with_answer(solved(course, LAB), "q1_add", "def add(a, b):\n    return 0\n") \
            if kind == 1 else stub(course, LAB)
        submit(ws / "submitted", f"s{i:02d}", LAB, {NB: nb})
        expected[f"s{i:02d}"] = [4.0, 3.0, 0.0][kind]
    return expected


def _scores(db_url: str) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gb:
        return {s.student.id: float(s.score) for s in gb.assignment_submissions(LAB)}


@pytest.fixture()
def dask_cluster() -> Iterator[str]:
    """A Dask scheduler and two single-threaded workers, each its own process, on localhost."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    for _ in range(2):
        procs.append(subprocess.Popen([str(BIN / "dask"), "worker", address, "--nworkers", "1", "--nthreads", "1",
                                       "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        from dask.distributed import Client

        deadline = time.monotonic() + 120
        with Client(address, timeout=60) as client:
            while len(client.scheduler_info()["workers"]) < 2:
                assert time.monotonic() < deadline, "the Dask workers did not connect"
                time.sleep(0.5)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_class_through_an_external_dask_scheduler_into_postgresql(
    course: Path, env: dict[str, str], tmp_path: Path, dask_cluster: str, postgres_url: str  # noqa: F811
) -> None:
    from dask.distributed import Client

    from aisec.grading.pipeline import Grader

    ws = tmp_path / "ws"
    expected = _class(course, ws, 4)
    summary = Grader(LAB, ws=ws, db_url=postgres_url).grade_class(scheduler=dask_cluster, progress=False)
    assert not summary.failed, summary.render()
    assert _scores(postgres_url) == expected
    # The grades live in PostgreSQL only: no SQLite gradebook was made next to the workspace.
    assert not (ws / "gradebook.db").exists()
    # Both worker processes executed submissions (the work was distributed, not run by the driver).
    with Client(dask_cluster) as client:
        worker_pids = set(client.run(os.getpid).values())
    assert len(worker_pids) == 2 and os.getpid() not in worker_pids


def test_killed_grader_rerun_gives_the_same_gradebook(course: Path, env: dict[str, str], tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    expected = _class(course, ws, 6)
    cmd = [str(BIN / "aisec-grade"), "class", LAB, "--workers", "2", "--no-progress"]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    done = ws / "grading" / LAB / "done"
    deadline = time.monotonic() + 900
    while not (done.is_dir() and len(list(done.glob("*.json"))) >= 2):
        assert first.poll() is None, first.stdout.read().decode()[-3000:] if first.stdout else ""
        assert time.monotonic() < deadline
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)  # the grader, its Dask workers and their sandboxes
    first.wait()
    graded_before = {p.stem for p in done.glob("*.json")}
    assert 2 <= len(graded_before) < 6
    markers_before = {p.stem: p.stat().st_mtime_ns for p in done.glob("*.json")}
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "unchanged, not regraded" in second.stdout
    # Submissions graded before the kill were not graded again; the others exactly once.
    for student, mtime in markers_before.items():
        assert (done / f"{student}.json").stat().st_mtime_ns == mtime
    assert {p.stem for p in done.glob("*.json")} == set(expected)
    assert _scores("sqlite:///" + str(ws / "gradebook.db")) == expected
    summary = json.loads((ws / "grading" / LAB / "summary.json").read_text())
    assert {o["student"]: o["score"] for o in summary["outcomes"]} == expected


def test_self_grade_writes_the_result_file(course: Path, env: dict[str, str], tmp_path: Path) -> None:
    from aisec.grading.selfgrade import self_grade

    mine = tmp_path / "mine.ipynb"
    import nbformat

    nbformat.write(with_answer(solved(course, LAB), "q3_words", "def words(text):\n    return text.split()\n"), mine)
    result: dict[str, Any] = self_grade(LAB, str(mine))
    assert result["lab"] == LAB and result["score"] == 3.0 and result["max_score"] == 4.0
    assert [q["grade_id"] for q in result["questions"] if not q["passed"]] == ["q3_words_test"]
    failed = next(q for q in result["questions"] if not q["passed"])
    assert any(line.startswith("✘ hidden check: q3_words_test.words") for line in failed["feedback"]), failed
    assert not any("record(" in line for line in failed["feedback"])
    saved = json.loads((tmp_path / "ws" / "self" / LAB / "result.json").read_text())
    assert saved == result
    cli = subprocess.run([str(BIN / "aisec-grade"), "self", LAB, "--json"], env=env, capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert json.loads(cli.stdout)["score"] == 0.0  # the released stub in labs/


def test_refuses_untrusted_work_without_the_sandbox(course: Path, env: dict[str, str], tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    _class(course, ws, 1)
    no_sandbox = dict(env, AISEC_SANDBOX_BWRAP="/nonexistent/bwrap")
    cmd = [str(BIN / "aisec-grade"), "class", LAB, "--workers", "1", "--no-progress"]
    refused = subprocess.run(cmd, env=no_sandbox, capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2
    assert "THE SANDBOX CANNOT RUN ON THIS HOST" in refused.stderr and "--allow-unsandboxed" in refused.stderr
    assert not (ws / "grading" / LAB / "done").exists()
    allowed = subprocess.run(cmd + ["--allow-unsandboxed"], env=no_sandbox, capture_output=True, text=True, timeout=900)
    assert allowed.returncode == 0, allowed.stdout[-2000:] + allowed.stderr[-2000:]
    assert "WARNING: THE SANDBOX CANNOT RUN" in allowed.stdout + allowed.stderr
    assert "executed WITHOUT the sandbox" in allowed.stdout
