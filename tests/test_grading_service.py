"""The grading service for a class, for real: a JupyterHub with its proxy, the ``aisec-grader``
service registered through ``hub_service``, users and tokens made through the hub's REST API, and
students grading lab 0 through ``self_grade`` (and the ``aisec-grade`` command) with their tokens.
Plus the visible-only mode of a student's copy of the course, which has no hidden tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import nbformat
import pytest

from conftest_grader import free_port, require_sandbox
from notebook_utils import paste_answers

ROOT = Path(__file__).resolve().parents[1]
LAB = "lab00_minimisation"
BIN = Path(sys.executable).parent
PROXY = ROOT / ".venv" / "node" / "node_modules" / ".bin" / "configurable-http-proxy"
ADMIN_TOKEN = "test-admin-" + os.urandom(16).hex()


# ----------------------------------------------------------------------------- helpers


def call(method: str, url: str, token: str | None = None, body: Any = None,
         timeout: float = 60) -> tuple[int, Message, Any]:
    """An HTTP request: ``(status, headers (case-insensitive), JSON body or text)``, errors included."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"token {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, head, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        status, head, raw = exc.code, exc.headers, exc.read()
    try:
        return status, head, json.loads(raw)
    except ValueError:
        return status, head, raw.decode(errors="replace")


def solve(notebook: Path) -> None:
    """Paste the reference answers into the answer cells of a student's notebook."""
    nb = nbformat.read(notebook, as_version=4)
    paste_answers(nb, ROOT / "solutions" / LAB / f"{LAB}.ipynb")
    nbformat.write(nb, notebook)


def lab_test_cells() -> list[str]:
    """The grade ids of the released lab's autograded test cells."""
    from aisec.grading.common import is_test_cell, nbgrader_meta

    released = nbformat.read(ROOT / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    return [nbgrader_meta(c)["grade_id"] for c in released.cells if is_test_cell(c)]


def reference_values(references: Path) -> list[str]:
    """The telling reference values cached by the service, as JSON text (what a leak would show)."""
    found: list[str] = []

    def walk(value: Any) -> None:
        text = json.dumps(value)
        if isinstance(value, str) and len(value) >= 6 or isinstance(value, (list, dict)) and len(text) >= 12:
            found.append(text)
        if isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    for cached in references.rglob("*.json"):
        for records in json.loads(cached.read_text())["records"].values():
            for record in records.values():
                walk(record["value"])
    return found


# ----------------------------------------------------------------------------- a real hub


@dataclass
class Hub:
    url: str  # the public URL (the proxy)
    api: str  # the hub's REST API
    service_url: str  # the grading service, through the proxy
    service_ws: Path
    instructor_ws: Path
    registration: Any

    def user_token(self, user: str, scopes: list[str]) -> str:
        status, _, body = call("POST", f"{self.api}/users/{user}/tokens", ADMIN_TOKEN,
                               {"scopes": scopes, "note": "as a single-user server"})
        assert status == 201, body
        return str(body["token"])

    def server_token(self, user: str) -> str:
        """A token with the scopes JupyterHub gives ``user``'s single-user server (server_token_scopes)."""
        scopes = [s + f"={user}/" if s.endswith("!server") else s for s in self.registration.server_token_scopes]
        return self.user_token(user, scopes)

    def log_lines(self) -> list[dict[str, Any]]:
        path = self.service_ws / "requests.log"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def _config(tmp: Path, ports: dict[str, int], service_ws: Path, instructor_ws: Path) -> str:
    return f"""
from aisec.grading.service import hub_service

grader = hub_service(port={ports['service']}, course_root={str(ROOT)!r}, workspace={str(service_ws)!r},
                     per_hour=1, per_user=1, workers=2,
                     environment={{"AISEC_WORKSPACE": {str(instructor_ws)!r}, "AISEC_CACHE": {str(tmp / 'cache')!r},
                                  "OMP_NUM_THREADS": "1"}})
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {ports['public']}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {ports['hub']}
c.ConfigurableHTTPProxy.command = [{str(PROXY)!r}]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{ports['proxy_api']}"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.db_url = "sqlite:///{tmp / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = {str(tmp / 'cookie_secret')!r}
c.JupyterHub.services = [grader.service, {{"name": "test-admin", "api_token": {ADMIN_TOKEN!r}}}]
c.JupyterHub.load_roles = grader.roles + [
    {{"name": "test-admin", "scopes": ["admin:users", "tokens"], "services": ["test-admin"]}}]
c.Spawner.server_token_scopes = grader.server_token_scopes
c.Spawner.environment = grader.spawner_environment
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    require_sandbox()
    if not PROXY.is_file() or shutil.which("node") is None:
        pytest.skip("configurable-http-proxy (./course.sh installs it into .venv/node) and node are needed")
    from aisec.grading.service import hub_service

    tmp = tmp_path_factory.mktemp("hub")
    ports = {name: free_port() for name in ("public", "hub", "proxy_api", "service")}
    service_ws, instructor_ws = tmp / "service", tmp / "instructor"
    (instructor_ws / "submitted").mkdir(parents=True)
    (instructor_ws / "gradebook.db").write_bytes(b"")  # the course's gradebook: must stay as it is
    (tmp / "jupyterhub_config.py").write_text(_config(tmp, ports, service_ws, instructor_ws))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1"}
    for leak in ("AISEC_GRADING_SERVICE_URL", "JUPYTERHUB_API_TOKEN", "AISEC_WORKSPACE", "AISEC_COURSE_ROOT"):
        env.pop(leak, None)
    started = time.monotonic()
    with open(tmp / "hub.log", "wb") as hub_log:
        proc = subprocess.Popen([str(BIN / "jupyterhub"), "-f", str(tmp / "jupyterhub_config.py")], cwd=tmp, env=env,
                                stdout=hub_log, stderr=subprocess.STDOUT)
    registration = hub_service(port=ports["service"])
    hub = Hub(f"http://127.0.0.1:{ports['public']}", f"http://127.0.0.1:{ports['hub']}/hub/api",
              f"http://127.0.0.1:{ports['public']}/services/aisec-grader/", service_ws, instructor_ws, registration)
    try:
        # Ready when a request without a token reaches the service through the proxy and is refused.
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (tmp / "hub.log").read_text()[-4000:]
            assert time.monotonic() < deadline, (tmp / "hub.log").read_text()[-4000:]
            try:
                status, _, body = call("POST", hub.service_url + "api/grade", None, {"lab": LAB}, timeout=5)
            except OSError:
                status, body = 0, None
            if status == 403 and isinstance(body, dict) and body.get("status") == 403:
                break
            time.sleep(0.5)
        print(f"\nhub, proxy and grading service up in {time.monotonic() - started:.1f} s")
        for user in ("alice", "bob"):
            status, _, body = call("POST", f"{hub.api}/users/{user}", ADMIN_TOKEN)
            assert status == 201, body
        yield hub
    finally:
        proc.terminate()  # the hub stops its managed service and its proxy on the way out
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ----------------------------------------------------------------------------- the tests


@pytest.mark.slow
def test_grading_service_on_a_real_hub(hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aisec.grading.common import digest_dir, hidden_lines
    from aisec.grading.selfgrade import GradingServiceError, self_grade

    instructor_before = digest_dir(hub.instructor_ws)
    baseline = len(hub.log_lines())  # the readiness probe's refusal
    grade_url = hub.service_url + "api/grade"
    released = nbformat.read(ROOT / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    alice_nb, bob_nb = tmp_path / "alice" / f"{LAB}.ipynb", tmp_path / "bob" / f"{LAB}.ipynb"
    for path in (alice_nb, bob_nb):
        path.parent.mkdir()
        nbformat.write(released, path)
    solve(alice_nb)
    alice, bob = hub.server_token("alice"), hub.server_token("bob")

    # Who may call: a user's token with the service's scope, nothing else.
    assert call("POST", grade_url, None, {"lab": LAB, "notebook": released})[0] == 403
    assert call("POST", grade_url, "not-a-token", {"lab": LAB, "notebook": released})[0] == 403
    no_scope = hub.user_token("alice", ["users:activity!user=alice"])
    assert call("POST", grade_url, no_scope, {"lab": LAB, "notebook": released})[0] == 403
    # What may be sent: a lab the service knows, a notebook; reasons say what is wrong.
    status, _, body = call("POST", grade_url, alice, {"lab": "lab99_nope", "notebook": released})
    assert status == 400 and "unknown lab" in body["reason"], body
    status, _, body = call("POST", grade_url, alice, {"lab": LAB, "notebook": {"cells": "not a list"}})
    assert status == 400 and "not a valid Jupyter notebook" in body["reason"], body

    # Bob through the command, alice through self_grade, at the same time (the real client paths).
    client_env = {**os.environ, "AISEC_GRADING_SERVICE_URL": hub.service_url, "JUPYTERHUB_API_TOKEN": bob,
                  "AISEC_WORKSPACE": str(tmp_path / "bob" / "ws")}
    started = time.monotonic()
    bob_cli = subprocess.Popen([str(BIN / "aisec-grade"), "self", LAB, "--notebook", str(bob_nb), "--json"],
                               env=client_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    monkeypatch.setenv("AISEC_GRADING_SERVICE_URL", hub.service_url)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", alice)
    monkeypatch.setenv("AISEC_WORKSPACE", str(tmp_path / "alice" / "ws"))
    outcome: dict[str, Any] = {}

    def grade_alice() -> None:
        try:
            outcome["result"] = self_grade(LAB, str(alice_nb))
        except GradingServiceError as exc:
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - started

    worker = threading.Thread(target=grade_alice)
    worker.start()
    # Both gradings are in the service's worker processes once both private workspaces exist.
    requests_dir = hub.service_ws / "requests"
    deadline = time.monotonic() + 120
    while not (requests_dir.is_dir() and len(list(requests_dir.iterdir())) >= 2):
        assert time.monotonic() < deadline and worker.is_alive() and bob_cli.poll() is None, \
            "both gradings should be running"
        time.sleep(0.2)
    # A second grading of alice's while hers runs: refused at once (the event loop is free).
    asked = time.monotonic()
    status, headers, body = call("POST", grade_url, alice, {"lab": LAB, "notebook": released}, timeout=10)
    busy_seconds = time.monotonic() - asked
    assert status == 429 and "still running" in body["reason"], body
    assert int(headers["Retry-After"]) > 0
    assert busy_seconds < 5, f"the service took {busy_seconds:.1f} s to answer while grading"

    out, err = bob_cli.communicate(timeout=600)
    bob_seconds = time.monotonic() - started
    worker.join(timeout=600)
    assert bob_cli.returncode == 0, err[-3000:]
    assert "error" not in outcome, outcome.get("error")
    print(f"alice (solved) graded in {outcome['seconds']:.1f} s, bob (untouched) in {bob_seconds:.1f} s, "
          f"reference run included; a refusal while grading took {busy_seconds:.2f} s")
    mine, his = outcome["result"], json.loads(out)
    assert mine["mode"] == his["mode"] == "service"
    assert mine["user"] == "alice" and his["user"] == "bob"
    assert mine["max_score"] == his["max_score"] > 0
    assert mine["score"] == mine["max_score"], [q["feedback"] for q in mine["questions"] if not q["passed"]]
    assert his["score"] == 0 and not any(q["passed"] for q in his["questions"])
    for result in (mine, his):
        assert {q["grade_id"] for q in result["questions"]} == set(lab_test_cells())
        assert all(set(q) == {"grade_id", "points", "max_points", "passed", "checks", "feedback"}
                   for q in result["questions"])
    assert any("hidden check" in line for q in his["questions"] for line in q["feedback"])
    # Saved for the progress overview, in each learner's own workspace.
    assert json.loads((tmp_path / "alice" / "ws" / "self" / LAB / "result.json").read_text()) == mine

    # Nothing hidden in what came back: no line of a hidden test, no reference value.
    answers = json.dumps(mine) + json.dumps(his)
    source = nbformat.read(ROOT / "solutions" / LAB / f"{LAB}.ipynb", as_version=4)
    leaked = [line for line in hidden_lines(source) if line in answers]
    assert not leaked, leaked
    values = reference_values(hub.service_ws / "references")
    assert values, "the service caches the reference run in its own workspace"
    assert not [v for v in values if v in answers]

    # Bob's hourly quota (1 in these tests) is used: refused with the time until it frees up.
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", bob)
    with pytest.raises(GradingServiceError, match="too many gradings.*Try again in"):
        self_grade(LAB, str(bob_nb))
    status, headers, body = call("POST", grade_url, bob, {"lab": LAB, "notebook": released})
    assert status == 429 and "past hour" in body["reason"]
    assert 3000 < int(headers["Retry-After"]) <= 3600

    # One log line per request, with who, what and how it ended.
    logged = hub.log_lines()[baseline:]
    assert all(set(e) >= {"time", "user", "lab", "status", "score", "seconds"} for e in logged)
    assert Counter((e["user"], e["status"]) for e in logged) == Counter({
        (None, 403): 3, ("alice", 400): 2, ("alice", 200): 1, ("bob", 200): 1, ("alice", 429): 1, ("bob", 429): 2})
    assert {e["user"]: e["score"] for e in logged if e["status"] == 200} == {"alice": mine["score"], "bob": 0.0}
    # The course's gradebook and workspace are untouched; the per-request workspaces are gone.
    assert digest_dir(hub.instructor_ws) == instructor_before
    assert sorted(p.name for p in hub.instructor_ws.iterdir()) == ["gradebook.db", "submitted"]
    assert not list(requests_dir.iterdir())


def test_rate_limiter_counts_running_and_hourly_gradings() -> None:
    from aisec.grading.service import HOUR, RateLimiter

    now = [1000.0]
    limiter = RateLimiter(per_user=1, per_hour=2, clock=lambda: now[0])
    assert limiter.acquire("alice") is None
    assert "still running" in limiter.acquire("alice")[1]
    assert limiter.acquire("bob") is None  # per user
    limiter.release("alice", 30.0)
    now[0] += 100
    assert limiter.acquire("alice") is None
    limiter.release("alice", 30.0)
    retry, why = limiter.acquire("alice")
    assert "past hour" in why and retry == pytest.approx(HOUR - 100)
    now[0] += HOUR - 100
    assert limiter.acquire("alice") is None  # the first grading left the window


def test_visible_only_without_hidden_tests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A student's copy of the course (no solutions/): visible checks only, no score, no hidden check."""
    from aisec.grading.selfgrade import render, self_grade

    for folder in ("course", "labs"):
        shutil.copytree(ROOT / folder, tmp_path / "course_copy" / folder,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    monkeypatch.setenv("AISEC_COURSE_ROOT", str(tmp_path / "course_copy"))
    monkeypatch.setenv("AISEC_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.delenv("AISEC_GRADING_SERVICE_URL", raising=False)
    mine = tmp_path / "mine.ipynb"
    shutil.copy(ROOT / "labs" / LAB / f"{LAB}.ipynb", mine)
    solve(mine)
    nb = nbformat.read(mine, as_version=4)
    for cell in nb.cells:  # the last answer left unanswered: its visible check must say so
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "q8_minimise":
            cell.source = "def minimise(df, key, k=5):\n    raise NotImplementedError()\n"
    nbformat.write(nb, mine)
    started = time.monotonic()
    result = self_grade(LAB, str(mine))
    print(f"\nvisible-only run of lab00 in {time.monotonic() - started:.1f} s")
    assert result["mode"] == "visible-only" and result["score"] is None and result["hidden_tests_run"] is False
    assert "grading service" in result["hint"] and "no score" in render(result)
    kinds = {c["kind"] for q in result["questions"] for c in q["checks"]}
    assert kinds == {"visible"}, kinds
    assert all(q["points"] is None for q in result["questions"])
    passed = {q["grade_id"]: q["passed"] for q in result["questions"]}
    assert passed == {q: q != "q8_minimise_test" for q in lab_test_cells()}, render(result)
    failed = next(q for q in result["questions"] if q["grade_id"] == "q8_minimise_test")
    assert any("not answered yet" in line for line in failed["feedback"]), failed
    saved = json.loads((tmp_path / "ws" / "self" / LAB / "result.json").read_text())
    assert saved == result
