"""A class on a live JupyterHub, exactly as ``course/instructor_guide.md`` says: every code block, in order.

The hub is real (``grader/jupyterhub_config.py``, JupyterHub with configurable-http-proxy, each user's own
Jupyter server), on free loopback ports, with an instructor and two students, *alice* and *bob*. Blocks are told
apart by their fence:

* ```` ```bash ````: the instructor's commands, in the course folder (a temporary copy of the course);
* ```` ```bash hub ````: the hub administrator's set-up commands;
* ```` ```python ````: the hub-wide ``/etc/jupyter/nbgrader_config.py``, written into a folder that stands in for
  ``/etc/jupyter`` (on the hub's ``JUPYTER_CONFIG_PATH``, which the hub passes on to every user's server);
* ```` ```bash hub-start ````: starts the hub, in the background; the test waits until its API answers, then logs
  the three users in through the hub's REST API (a token each, from their password) and starts their servers;
* ```` ```http student ````: one request a line, ``METHOD PATH [JSON body]``, what the *Assignments* tab sends: the
  test sends it through the hub's proxy to each student's own server, with that student's token.

Nothing else in the guide may look like a command to run: a block with another fence fails the test. Between
fetching and submitting, alice solves the lab (the reference answers pasted into her notebook through her server's
contents API, as JupyterLab saves it), then runs ``aisec-grade self`` in a kernel on her server, which the hub's
grading service (``aisec-grader``) grades; bob hands the lab in untouched. The test also checks the modes on the
live servers (a student has no Formgrader and JupyterLab without nbgrader's instructor extensions; the instructor
has them, and the instructor's Formgrader sees the class's submissions), then what the guide promises: alice
outscores bob, the service gave her the class grading's score, her reflection got the hand grade, and each student
fetched their own feedback only, without hidden tests. The phases' durations are printed; on a failure, the tail of
the hub's log (its proxy's, the users' servers' and the grading service's too) comes with the message.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest
import requests
import websocket  # websocket-client, a dependency of jupyter_server: a kernel's channels
from notebook_utils import paste_answers

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "course" / "instructor_guide.md"
# Where ./course.sh test installs the hub's proxy (the course copy's .venv links to this environment).
PROXY = Path(sys.prefix) / "node" / "node_modules" / ".bin" / "configurable-http-proxy"
LAB = "lab00_minimisation"
INSTRUCTOR = "instructor"
STUDENTS = ("alice", "bob")
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```\s*$", re.S | re.M)
KINDS = {"bash", "bash hub", "bash hub-start", "python", "http student"}
HUB_START_TIMEOUT = 120  # seconds until the hub's API answers
SERVER_START_TIMEOUT = 240  # seconds until the three users' servers are ready (a busy 2-core machine)
REQUEST_TIMEOUT = 120  # one request to a user's server (fetch, submit)

pytestmark = pytest.mark.slow


def guide_blocks() -> list[tuple[str, str]]:
    """``(kind, code)`` of every fenced block, kind being e.g. ``bash``, ``http student``, ``python``."""
    return [(info.strip(), code) for info, code in FENCE.findall(GUIDE.read_text())]


def test_guide_has_only_runnable_blocks() -> None:
    kinds = [kind for kind, _ in guide_blocks()]
    assert set(kinds) <= KINDS, f"blocks the test cannot run: {set(kinds) - KINDS}"
    assert kinds.count("python") == 1, "one python block: the hub's nbgrader config"
    assert kinds.count("bash hub-start") == 1, "one block starts the hub"
    for kind, code in guide_blocks():
        if kind == "http student":
            for line in code.strip().splitlines():
                assert re.match(r"(GET|POST) /user/<student>/\S+( \{.*\})?$", line), f"not a request: {line!r}"


# ----------------------------------------------------------------------------- helpers


def solve(nb: nbformat.NotebookNode) -> None:
    """Paste the reference answers into the answer cells of a student's notebook."""
    solved, answers = paste_answers(nb, ROOT / "solutions" / LAB / f"{LAB}.ipynb")
    assert solved == answers, f"{solved} of {answers} answer cells found in the fetched notebook"


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run(code: str, cwd: Path, env: dict[str, str], what: str) -> str:
    proc = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + code], cwd=cwd, env=env, capture_output=True, text=True, timeout=1800
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{what} failed (exit {proc.returncode}):\n{code}\n--- output ---\n{out[-4000:]}"
    return out


def processes_under(folder: Path) -> list[int]:
    """Processes whose working directory is inside ``folder`` (the hub, its proxy, the users' servers)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                cwd = Path(os.readlink(proc / "cwd"))
            except OSError:  # gone, or not ours to look at
                continue
            if cwd == folder or folder in cwd.parents:
                found.append(int(proc.name))
    return found


class Hub:
    """The running hub: its process, its log, one HTTP session per logged-in user."""

    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.sessions: dict[str, requests.Session] = {}

    def log_tail(self, chars: int = 6000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else "(no log)"
        return f"\n--- hub, proxy and users' servers log (last {chars} characters of {self.log}) ---\n{text[-chars:]}"

    def api(self, method: str, path: str, user: str | None = None, **kwargs) -> requests.Response:
        session = self.sessions[user] if user else requests
        return session.request(method, f"{self.url}/hub/api{path}", timeout=30, **kwargs)

    def user_request(self, user: str, method: str, path: str, body: dict | None = None) -> requests.Response:
        """A request to ``user``'s own server, through the hub's proxy, with the user's token."""
        return self.sessions[user].request(method, f"{self.url}{path}", json=body, timeout=REQUEST_TIMEOUT)

    def wait_until_up(self) -> None:
        deadline = time.monotonic() + HUB_START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, f"the hub exited ({self.proc.returncode})"
            try:
                if requests.get(f"{self.url}/hub/api/", timeout=5).status_code == 200:
                    return
            except requests.ConnectionError:
                pass  # the proxy is not listening yet
            time.sleep(0.5)
        raise AssertionError(f"the hub's API did not answer within {HUB_START_TIMEOUT} s")

    def log_in(self, user: str, password: str) -> None:
        """A token for ``user`` from their password: the hub's authenticator checks it, as at the login form."""
        r = self.api("POST", f"/users/{user}/tokens", json={"auth": {"username": user, "password": password},
                                                            "note": "tests/test_jupyterhub_class.py"})
        assert r.status_code in (200, 201), f"{user} could not log in: {r.status_code} {r.text}"
        session = requests.Session()
        session.headers["Authorization"] = f"token {r.json()['token']}"
        self.sessions[user] = session

    def start_servers(self, users: list[str]) -> None:
        for user in users:  # ask for all, then wait: they start side by side
            r = self.api("POST", f"/users/{user}/server", user=user)
            assert r.status_code in (201, 202), f"{user}'s server did not start: {r.status_code} {r.text}"
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        waiting = set(users)
        while waiting and time.monotonic() < deadline:
            for user in sorted(waiting):
                server = self.api("GET", f"/users/{user}", user=user).json()["servers"].get("", {})
                if server.get("ready"):
                    waiting.discard(user)
            time.sleep(1)
        assert not waiting, f"servers not ready within {SERVER_START_TIMEOUT} s: {sorted(waiting)}"

    def stop(self) -> None:
        """Stop the hub (SIGTERM: it stops the users' servers, the grading service and its proxy itself)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # bash and jupyterhub: the hub cleans up its servers
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)


@contextmanager
def phase(name: str, durations: dict[str, float], detail: str = "") -> Iterator[None]:
    """Adds the time spent to ``durations[name]``; prints it with ``detail`` (e.g. the block's first line)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds = time.perf_counter() - start
        durations[name] = durations.get(name, 0.0) + seconds
        print(f"  {seconds:6.1f} s  {name}{': ' + detail if detail else ''}", flush=True)


def send_http_block(hub: Hub, code: str, student: str) -> list[dict]:
    """Send a guide's ``http student`` block for ``student``; each answer's JSON (nbgrader's ``success`` checked)."""
    answers = []
    for line in code.strip().splitlines():
        method, path, *body = line.split(" ", 2)
        path = path.replace("<student>", student)
        r = hub.user_request(student, method, path, json.loads(body[0]) if body else None)
        assert r.status_code == 200, f"{student}: {line} -> {r.status_code} {r.text[:2000]}"
        answer = r.json()
        assert answer.get("success"), f"{student}: {line} -> {json.dumps(answer)[:4000]}"
        answers.append(answer)
    return answers


def lab_entries(answer: dict, status: str) -> list[dict]:
    return [a for a in answer["value"] if a["assignment_id"] == LAB and a["status"] == status]


# ----------------------------------------------------------------------------- the class


def test_a_class_on_jupyterhub(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert os.access(PROXY, os.X_OK), (
        f"JupyterHub's proxy is missing ({PROXY}): `./course.sh test` installs configurable-http-proxy from npm")
    durations: dict[str, float] = {}
    course = tmp_path / "course"
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
    for folder in ("course", "labs", "solutions", "grader"):
        shutil.copytree(ROOT / folder, course / folder, ignore=ignore)
    shutil.copy(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    (course / ".venv").symlink_to(Path(sys.prefix))  # the guide activates .venv; the proxy is in .venv/node
    etc_jupyter = tmp_path / "etc-jupyter"  # stands in for /etc/jupyter
    etc_jupyter.mkdir()
    homes = tmp_path / "home"
    port, hub_port, proxy_api_port, grader_port = free_ports(4)
    passwords = {"AISEC_HUB_PASSWORD": secrets.token_urlsafe(12), "AISEC_HUB_ADMIN_PASSWORD": secrets.token_urlsafe(32)}
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "AISEC_COURSE_ROOT": str(course),
        "AISEC_WORKSPACE": str(course / ".workspace"),
        "AISEC_EXCHANGE": str(tmp_path / "exchange"),
        "JUPYTER_CONFIG_PATH": str(etc_jupyter),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
        "MPLBACKEND": "Agg",
    }
    for variable in ("AISEC_GRADEBOOK_URL", "AISEC_STUDENT_ID", "JUPYTERHUB_API_TOKEN", "AISEC_GRADING_SERVICE_URL"):
        env.pop(variable, None)
    hub_env = {
        **env, **passwords,
        "AISEC_HUB_INSTRUCTORS": INSTRUCTOR, "AISEC_HUB_STUDENTS": ",".join(STUDENTS),
        "AISEC_HUB_PORT": str(port), "AISEC_HUB_API_PORT": str(hub_port), "AISEC_PROXY_API_PORT": str(proxy_api_port),
        "AISEC_GRADER_PORT": str(grader_port),
        "AISEC_HUB_STATE": str(tmp_path / "hub"), "AISEC_HUB_HOMES": str(homes),
    }
    hub = Hub(f"http://127.0.0.1:{port}", tmp_path / "hub.log")
    listings: dict[str, dict] = {}
    self_graded: dict = {}  # alice's result from the grading service
    autograded: dict[str, float] = {}  # each student's score after aisec-grade class, before hand grading
    blocks = guide_blocks()
    assert {kind for kind, _ in blocks} <= KINDS

    try:
        for i, (kind, code) in enumerate(blocks):
            if kind == "python":
                (etc_jupyter / "nbgrader_config.py").write_text(code)
            elif kind == "bash hub":
                with phase("hub set-up", durations):
                    run(code, course, hub_env, f"hub block {i}")
            elif kind == "bash hub-start":
                with phase("hub start, log-in, servers", durations):
                    start_the_class(hub, code, course, hub_env, passwords)
                with phase("modes", durations):
                    check_modes(hub)
            elif kind == "http student":
                with phase("students (REST API)", durations, code.strip().splitlines()[-1][:70]):
                    for student in STUDENTS:
                        listings[student] = send_http_block(hub, code, student)[-1]
                if "/assignments/fetch " in code:
                    for student in STUDENTS:
                        assert lab_entries(listings[student], "fetched"), f"{student} did not get the lab"
                    with phase("alice works, grades herself (grading service)", durations):
                        work_as_alice(hub)  # bob hands in the untouched notebook
                        self_graded = self_grade_on_alices_server(hub)
                if "/assignments/submit" in code:
                    for student in STUDENTS:
                        mine = lab_entries(listings[student], "submitted")
                        assert mine and {s["student_id"] for s in mine[0]["submissions"]} == {student}, (
                            f"{student}'s submissions: {json.dumps(listings[student])[:2000]}")
                if "fetch_feedback" in code:
                    check_feedback(hub, listings)
            else:
                name = "grading (aisec-grade class)" if "aisec-grade class" in code else "instructor commands"
                with phase(name, durations, code.strip().splitlines()[0][:70]):
                    run(code, course, env, f"instructor block {i}")
                if "aisec-grade class" in code:
                    with phase("instructor's Formgrader", durations):
                        autograded = check_instructor_formgrader(hub)
        assert listings, "the guide sent no student request"
        assert all("feedback" in json.dumps(listing) for listing in listings.values())
    except (AssertionError, requests.RequestException, subprocess.SubprocessError, OSError) as exc:
        raise AssertionError(f"{exc}{hub.log_tail()}") from exc
    finally:
        with phase("hub stop", durations):
            hub.stop()
            leftovers = processes_under(tmp_path)
            for pid in leftovers:
                os.kill(pid, signal.SIGKILL)
        with capsys.disabled():  # the phases' durations in every run's output, not only a failing one's
            print("\nJupyterHub class, phases:", ", ".join(f"{name} {secs:.1f} s" for name, secs in durations.items()))
    assert not leftovers, f"processes outlived the hub (killed): {leftovers}{hub.log_tail()}"

    # Grades: alice's answers and hand grade count, bob's untouched notebook scores zero.
    lms = (course / "grades_lms.csv").read_text().splitlines()
    assert lms[0].split(",")[:4] == ["student_id", "last_name", "first_name", "email"] and LAB in lms[0]
    rows = {line.split(",")[0]: float(line.split(",")[-1]) for line in lms[1:]}
    assert set(rows) == set(STUDENTS), f"students in the LMS CSV: {sorted(rows)}"
    assert rows["bob"] == 0.0
    assert rows["alice"] > 3.0  # the autograded points plus the 3 hand-graded points of r1_reflection
    # The grading service scored alice's work as the class grading did, before the hand-graded points.
    assert self_graded["score"] == pytest.approx(autograded["alice"]), (self_graded, autograded)
    # Submissions came in under each student's hub name, not the one OS user that ran every server.
    submitted = course / ".workspace" / "submitted"
    assert sorted(p.name for p in submitted.iterdir()) == sorted(STUDENTS)


def start_the_class(hub: Hub, code: str, course: Path, hub_env: dict[str, str], passwords: dict[str, str]) -> None:
    """The guide's hub-start block in the background; then everyone logs in and their server starts."""
    with hub.log.open("wb") as log:
        hub.proc = subprocess.Popen(["bash", "-c", "set -euo pipefail\n" + code], cwd=course, env=hub_env,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    hub.wait_until_up()
    for user in (INSTRUCTOR, *STUDENTS):
        key = "AISEC_HUB_ADMIN_PASSWORD" if user == INSTRUCTOR else "AISEC_HUB_PASSWORD"
        hub.log_in(user, passwords[key])
    # The students' password does not open the instructor's account.
    r = hub.api("POST", f"/users/{INSTRUCTOR}/tokens",
                json={"auth": {"username": INSTRUCTOR, "password": passwords["AISEC_HUB_PASSWORD"]}})
    assert r.status_code == 403, f"the students' password logged the instructor in: {r.status_code}"
    hub.start_servers([INSTRUCTOR, *STUDENTS])


def check_modes(hub: Hub) -> None:
    """Student mode on the students' servers, every tool on the instructor's (server and JupyterLab)."""
    for user in (INSTRUCTOR, *STUDENTS):
        formgrader = hub.user_request(user, "GET", f"/user/{user}/formgrader")
        lab = hub.user_request(user, "GET", f"/user/{user}/lab")
        assert lab.status_code == 200, f"{user}'s JupyterLab: {lab.status_code}"
        config = json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                                      lab.text, re.S).group(1))
        disabled = config.get("disabledExtensions", [])
        if user == INSTRUCTOR:
            assert formgrader.status_code == 200, f"the instructor's Formgrader: {formgrader.status_code}"
            assert not [name for name in disabled if "nbgrader" in name], f"instructor: {disabled}"
        else:
            assert formgrader.status_code == 404, f"{user}'s server has a Formgrader: {formgrader.status_code}"
            for name in ("formgrader", "create-assignment", "course-list"):
                assert f"@jupyter/nbgrader:{name}" in disabled, f"{user}'s JupyterLab has {name}: {disabled}"
            assert not [n for n in disabled if n.endswith(("assignment-list", "validate-assignment"))], disabled


def work_as_alice(hub: Hub) -> None:
    """Alice opens the fetched notebook, answers every question and saves, through her server's contents API."""
    url = f"/user/alice/api/contents/{LAB}/{LAB}.ipynb"
    r = hub.user_request("alice", "GET", url)
    assert r.status_code == 200, f"alice's notebook: {r.status_code} {r.text[:500]}"
    nb = nbformat.from_dict(r.json()["content"])
    solve(nb)
    r = hub.user_request("alice", "PUT", url, {"type": "notebook", "format": "json", "content": nb})
    assert r.status_code in (200, 201), f"saving alice's notebook: {r.status_code} {r.text[:500]}"


def check_instructor_formgrader(hub: Hub) -> dict[str, float]:
    """The instructor's live Formgrader (where section 5 grades by hand) sees both autograded submissions."""
    r = hub.user_request(INSTRUCTOR, "GET", f"/user/{INSTRUCTOR}/formgrader/api/submissions/{LAB}")
    assert r.status_code == 200, f"the instructor's Formgrader API: {r.status_code} {r.text[:500]}"
    seen = {s["student"]: s for s in r.json()}
    assert set(seen) == set(STUDENTS), f"Formgrader's submissions: {sorted(seen)}"
    assert all(s["autograded"] for s in seen.values()), seen
    return {student: s["score"] for student, s in seen.items()}


def check_feedback(hub: Hub, listings: dict[str, dict]) -> None:
    """Each student fetched their own feedback only: alice's carries her hand-graded comment, bob's not."""
    for student in STUDENTS:
        mine = lab_entries(listings[student], "submitted")
        assert len(mine) == 1, f"{student}: {json.dumps(listings[student])[:2000]}"
        submissions = mine[0]["submissions"]
        assert {s["student_id"] for s in submissions} == {student}
        timestamps = {s["timestamp"] for s in submissions}
        # Every feedback folder in the student's home belongs to one of their own submissions.
        r = hub.user_request(student, "GET", f"/user/{student}/api/contents/{LAB}/feedback")
        assert r.status_code == 200, f"{student} has no feedback folder: {r.status_code}"
        folders = {item["name"] for item in r.json()["content"]}
        assert folders and folders <= timestamps, f"{student}'s feedback {folders}, submissions {timestamps}"
        pages = [f"{s['local_feedback_path']}/{nb['notebook_id']}.html"
                 for s in submissions if s.get("local_feedback_path") for nb in s["notebooks"]]
        assert pages, f"{student}'s list shows no fetched feedback: {submissions}"
        for page in pages:
            r = hub.user_request(student, "GET", f"/user/{student}/files/{page}")
            assert r.status_code == 200, f"{student}'s feedback page {page}: {r.status_code}"
            text = r.text
            assert "BEGIN HIDDEN TESTS" not in text and "record(" not in text, f"hidden tests in {student}'s {page}"
            comment = "Two risks and a control" in text
            assert comment == (student == "alice"), f"{student}'s feedback: hand-graded comment present: {comment}"


def run_on_server(hub: Hub, user: str, code: str, timeout: float = 900) -> str:
    """Run ``code`` in a new Python kernel on ``user``'s server (as a notebook would); what it printed."""
    r = hub.user_request(user, "POST", f"/user/{user}/api/kernels", {"name": "python3"})
    assert r.status_code == 201, f"{user}'s kernel: {r.status_code} {r.text[:500]}"
    kernel = r.json()["id"]
    ws = websocket.create_connection(
        f"{hub.url.replace('http', 'ws', 1)}/user/{user}/api/kernels/{kernel}/channels",
        header=[f"Authorization: {hub.sessions[user].headers['Authorization']}"], timeout=timeout)
    try:
        msg_id = secrets.token_hex(8)
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "session": secrets.token_hex(8),
                       "username": user, "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))
        printed, errors = [], []
        while True:
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                printed.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                errors.append("\n".join(msg["content"]["traceback"]))
            elif msg["msg_type"] == "execute_reply":
                break
    finally:
        ws.close()
        hub.user_request(user, "DELETE", f"/user/{user}/api/kernels/{kernel}")
    assert not errors, f"on {user}'s server:\n{code}\n" + "\n".join(errors)[-4000:]
    return "".join(printed)


def self_grade_on_alices_server(hub: Hub) -> dict:
    """Alice runs ``aisec-grade self`` in her server: the hub's grading service grades her notebook."""
    code = (
        "import os, subprocess\n"
        f"proc = subprocess.run(['aisec-grade', 'self', {LAB!r}, '--notebook', {f'{LAB}/{LAB}.ipynb'!r}, '--json'],\n"
        "                      cwd=os.environ['HOME'], capture_output=True, text=True)\n"
        "print(proc.stdout if proc.returncode == 0 else f'exit {proc.returncode}\\n{proc.stdout}{proc.stderr}')\n"
    )
    printed = run_on_server(hub, "alice", code)
    try:
        result = json.loads(printed)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"aisec-grade self on alice's server printed:\n{printed[-4000:]}") from exc
    assert result["mode"] == "service" and result["user"] == "alice", {k: result.get(k) for k in ("mode", "user")}
    assert result["score"] > 0 and result["max_score"] >= result["score"], result
    printed_text = json.dumps(result)
    assert "BEGIN HIDDEN TESTS" not in printed_text and "record(" not in printed_text
    return result
