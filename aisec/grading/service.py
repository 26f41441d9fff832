"""The course's grading service on JupyterHub: students grade their work without holding the hidden tests.

A JupyterHub-managed service named ``aisec-grader`` (``python -m aisec.grading.service``), a small
tornado app with one endpoint::

    POST <JUPYTERHUB_SERVICE_PREFIX>api/grade          (e.g. /services/aisec-grader/api/grade)
    Authorization: token <the student's hub API token>
    {"lab": "lab00_minimisation", "notebook": <the notebook, nbformat JSON>}

It grades that notebook for the token's owner with the hidden tests, in the sandbox, through the
class pipeline (:func:`aisec.grading.selfgrade.grade_files`: staging, sandboxed execution, the judge,
grader-written feedback) in a private temporary workspace per request, and answers what
``self_grade`` returns: ``{"lab", "mode": "service", "user", "score", "max_score", "graded_at",
"questions": [{"grade_id", "points", "max_points", "passed", "checks", "feedback"}], "notes"?,
"error"?}``. Hidden test code and reference values never leave the service. Nothing is written to
the course's gradebook: grades of record come only from the instructor's ``nbgrader collect`` and
``aisec-grade class``.

=========================  ===============================================================
answer                     when
=========================  ===============================================================
200 + the result           graded (a notebook that cannot run still gets its zeros and notes)
400 ``{"reason"}``         unknown lab, malformed JSON or notebook
403                        no token, an unknown token, a token without
                           ``access:services!service=aisec-grader``, or a service's token
413                        notebook larger than ``AISEC_SERVICE_MAX_MB``
429 + ``Retry-After``      a grading of this user is still running, or the user's hourly
                           quota is used up
500 ``{"reason"}``         the grader failed (details in the service's log, never in the answer)
=========================  ===============================================================

Gradings run in a pool of worker processes (``AISEC_SERVICE_WORKERS``), off the event loop: the
service keeps answering (and refusing) while notebooks run. Every request is one JSON line of
``<service workspace>/requests.log``: ``time, user, lab, status, score, max_score, seconds``.

Registering it, in ``jupyterhub_config.py``::

    from aisec.grading.service import hub_service

    grader = hub_service(port=10101, course_root="/srv/aisec", per_hour=10)
    c.JupyterHub.services.append(grader.service)            # the managed service, started by the hub
    c.JupyterHub.load_roles.extend(grader.roles)            # users may call it ("user" role: self + access)
    c.Spawner.server_token_scopes = grader.server_token_scopes   # their servers' tokens may too
    c.Spawner.environment.update(grader.spawner_environment)     # AISEC_GRADING_SERVICE_URL for self_grade

``grader.roles`` overrides JupyterHub's default ``user`` role with its default scope (``self``)
plus ``access:services!service=aisec-grader``; a config that defines the ``user`` role itself adds
that scope there instead (or sets ``c.JupyterHub.extra_user_scopes = grader.extra_user_scopes``).
A token's scopes are at most its owner's, so both steps are needed: the role lets users hold the
scope, ``server_token_scopes`` puts it in each server's ``$JUPYTERHUB_API_TOKEN`` (next to the
default ``server`` role's scopes). The service itself needs no role: JupyterHub identifies any token
to its owner (``GET /hub/api/user``), which is how ``HubAuth`` resolves the student's token.
Started by the hub, the service gets ``JUPYTERHUB_API_TOKEN``, ``JUPYTERHUB_API_URL``,
``JUPYTERHUB_SERVICE_URL`` and ``JUPYTERHUB_SERVICE_PREFIX`` from it, and from ``hub_service`` its
settings (all optional):

``AISEC_COURSE_ROOT``              the course with ``solutions/`` (the hidden tests)
``AISEC_SERVICE_WORKSPACE``        references cache, request log, temporary workspaces
                                   (default ``<workspace>/grading-service``)
``AISEC_SERVICE_WORKERS``          gradings at once, all users together (default 2)
``AISEC_SERVICE_PER_USER``         gradings at once per user (default 1)
``AISEC_SERVICE_PER_HOUR``         gradings per user in any hour (default 10)
``AISEC_SERVICE_MAX_MB``           largest notebook accepted (default 32)

Students' servers get ``AISEC_GRADING_SERVICE_URL`` (``grader.spawner_environment``), so
``aisec-grade self LAB`` and the progress notebook grade through the service. Limits: the service
grades whatever notebook its caller sends (a student can only grade as themselves, and only their
own token's owner is logged); it keeps no grades, so a result is advice, not a grade of record; the
rate limits live in memory and restart with the service; it shares the host's CPU with the hub.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import json
import logging
import math
import multiprocessing
import os
import re
import signal
import sys
import tempfile
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

SERVICE_NAME = "aisec-grader"
DEFAULT_PORT = 10101
LAB_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
HOUR = 3600.0

log = logging.getLogger("aisec.grading.service")


# ----------------------------------------------------------------------------- registration


@dataclass(frozen=True)
class HubRegistration:
    """What a ``jupyterhub_config.py`` needs to run the service (see the module docstring)."""

    service: dict[str, Any]
    roles: list[dict[str, Any]]
    extra_user_scopes: list[str]
    server_token_scopes: list[str]
    spawner_environment: dict[str, str]


def access_scope(name: str = SERVICE_NAME) -> str:
    """The scope a token needs to call the service."""
    return f"access:services!service={name}"


def _default_role_scopes(role: str) -> list[str]:
    """The scopes of one of JupyterHub's default roles (``user``, ``server``), as this version defines them."""
    from jupyterhub.roles import get_default_roles

    return list(next(r for r in get_default_roles() if r["name"] == role)["scopes"])


def hub_service(
    port: int = DEFAULT_PORT,
    course_root: str | Path | None = None,
    workspace: str | Path | None = None,
    per_hour: int = 10,
    per_user: int = 1,
    workers: int = 2,
    max_mb: int = 32,
    name: str = SERVICE_NAME,
    url_for_servers: str | None = None,
    environment: dict[str, str] | None = None,
) -> HubRegistration:
    """The service entry, roles, server token scopes and server environment for JupyterHub.

    ``port``: where the service listens (127.0.0.1; the hub's proxy routes ``/services/<name>/``
    to it). ``url_for_servers``: how students' servers reach the service, by default directly
    (servers on the hub's host); give the hub's public URL + ``services/<name>/`` otherwise.
    ``environment``: more variables for the service (e.g. ``AISEC_CACHE``, ``AISEC_WORKSPACE``)."""
    prefix = f"/services/{name}/"
    env = {
        "AISEC_SERVICE_PER_HOUR": str(per_hour),
        "AISEC_SERVICE_PER_USER": str(per_user),
        "AISEC_SERVICE_WORKERS": str(workers),
        "AISEC_SERVICE_MAX_MB": str(max_mb),
    }
    if course_root is not None:
        env["AISEC_COURSE_ROOT"] = str(Path(course_root).resolve())
    if workspace is not None:
        env["AISEC_SERVICE_WORKSPACE"] = str(Path(workspace).resolve())
    if os.environ.get("HOME"):
        env["HOME"] = os.environ["HOME"]  # the hub passes few variables on; Jupyter's kernels want a home
    env.update(environment or {})
    scope = access_scope(name)
    return HubRegistration(
        service={
            "name": name,
            "url": f"http://127.0.0.1:{port}",
            "command": [sys.executable, "-m", "aisec.grading.service"],
            "environment": env,
            "display": False,
        },
        roles=[{"name": "user", "description": "Standard user privileges, and the course's grading service",
                "scopes": _default_role_scopes("user") + [scope]}],
        extra_user_scopes=[scope],
        # What a server's token has by default (the `server` role), plus the service.
        server_token_scopes=_default_role_scopes("server") + [scope],
        spawner_environment={"AISEC_GRADING_SERVICE_URL": url_for_servers or f"http://127.0.0.1:{port}{prefix}"},
    )


# ----------------------------------------------------------------------------- settings and limits


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


@dataclass(frozen=True)
class Settings:
    """The service's settings (from its environment, see the module docstring)."""

    name: str
    workspace: Path
    workers: int = 2
    per_user: int = 1
    per_hour: int = 10
    max_bytes: int = 32 * 1024 * 1024

    @classmethod
    def from_env(cls) -> Settings:
        from aisec.grading.common import workspace

        override = os.environ.get("AISEC_SERVICE_WORKSPACE")
        return cls(
            name=os.environ.get("JUPYTERHUB_SERVICE_NAME") or SERVICE_NAME,
            workspace=Path(override).resolve() if override else workspace() / "grading-service",
            workers=_int_env("AISEC_SERVICE_WORKERS", 2),
            per_user=_int_env("AISEC_SERVICE_PER_USER", 1),
            per_hour=_int_env("AISEC_SERVICE_PER_HOUR", 10),
            max_bytes=_int_env("AISEC_SERVICE_MAX_MB", 32) * 1024 * 1024,
        )


@dataclass
class RateLimiter:
    """Per user: at most ``per_user`` gradings at once and ``per_hour`` started in any hour."""

    per_user: int
    per_hour: int
    clock: Callable[[], float] = time.monotonic
    running: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    started: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    typical_seconds: float = 60.0  # how long a grading takes, for Retry-After while one runs

    def acquire(self, user: str) -> tuple[float, str] | None:
        """None when ``user`` may start a grading (now counted), else ``(retry after, why)``."""
        now = self.clock()
        window = self.started[user]
        while window and window[0] <= now - HOUR:
            window.popleft()
        if self.running[user] >= self.per_user:
            return max(5.0, self.typical_seconds), (
                f"a grading of yours is still running (at most {self.per_user} at a time): wait for its result")
        if len(window) >= self.per_hour:
            return window[0] + HOUR - now, f"you have used your {self.per_hour} gradings of the past hour"
        self.running[user] += 1
        window.append(now)
        return None

    def release(self, user: str, seconds: float) -> None:
        self.running[user] -= 1
        # A running mean, for the Retry-After of the next busy refusal.
        self.typical_seconds = 0.8 * self.typical_seconds + 0.2 * seconds


# ----------------------------------------------------------------------------- the grading (a worker process)


def grade_request(lab: str, notebook: str, service_workspace: str) -> dict[str, Any]:
    """Grade one notebook (nbformat JSON text) of ``lab``: runs in a worker process of the pool.

    A private temporary workspace per request (deleted afterwards); the reference records are
    cached in the service's workspace, shared by every request."""
    from aisec.grading.selfgrade import grade_files

    root = Path(service_workspace)
    (root / "requests").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{lab}-", dir=root / "requests") as tmp:
        path = Path(tmp) / "submission.ipynb"
        path.write_text(notebook, encoding="utf-8")
        return grade_files(lab, [path], Path(tmp) / "nbgrader", root / "references", renamed=True)


def known_labs() -> set[str]:
    """Labs the service can grade: those with their hidden tests in ``solutions/``."""
    from aisec.grading.common import lab_ids

    return set(lab_ids())


class BadRequest(ValueError):
    """A request the service cannot grade, with the reason for the caller."""


def parse_request(body: bytes, labs: set[str]) -> tuple[str, str]:
    """``(lab, notebook JSON text)`` of a request body, or :class:`BadRequest` saying why not."""
    import nbformat

    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("the body is not JSON: send {\"lab\": ..., \"notebook\": ...}") from exc
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object {\"lab\": ..., \"notebook\": ...}")
    lab = data.get("lab")
    if not isinstance(lab, str) or not LAB_ID.match(lab) or lab not in labs:
        raise BadRequest(f"unknown lab {lab!r}; the labs are: {', '.join(sorted(labs))}")
    if not isinstance(data.get("notebook"), dict):
        raise BadRequest("\"notebook\" must be a notebook (nbformat JSON object)")
    try:
        nb = nbformat.reads(json.dumps(data["notebook"]), as_version=4)
        nbformat.validate(nb)
    except (nbformat.ValidationError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise BadRequest(f"the notebook is not a valid Jupyter notebook ({type(exc).__name__}): save it from "
                         "Jupyter and send it again") from exc
    return lab, nbformat.writes(nb)


# ----------------------------------------------------------------------------- the web app


@dataclass
class ServiceState:
    """What every request shares: settings, limits, the worker pool, the request log."""

    settings: Settings
    limiter: RateLimiter
    pool: concurrent.futures.Executor
    labs: set[str]

    @property
    def log_path(self) -> Path:
        return self.settings.workspace / "requests.log"

    def log_request(self, entry: dict[str, Any]) -> None:
        """One JSON line per request (appended: the event loop is the only writer)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")


def make_app(state: ServiceState, prefix: str) -> Any:
    """The tornado application: ``POST <prefix>api/grade``."""
    from jupyterhub.services.auth import HubAuth, HubAuthenticated
    from tornado import web

    hub_auth = HubAuth(api_token=os.environ.get("JUPYTERHUB_API_TOKEN", ""), cache_max_age=60)

    class GradeHandler(HubAuthenticated, web.RequestHandler):  # type: ignore[misc]
        """Grades the caller's notebook as the caller (the owner of the request's token)."""

        def initialize(self) -> None:
            self.hub_auth = hub_auth
            self.started = time.monotonic()
            self.entry: dict[str, Any] = {"user": None, "lab": None, "score": None, "max_score": None}
            self.retry_after: int | None = None

        @property
        def hub_scopes(self) -> set[str]:
            return {access_scope(state.settings.name)}

        async def prepare(self) -> None:
            # Ask the hub about the token without blocking the loop; get_current_user reads this cache.
            await self.hub_auth.get_user(self, sync=False)

        def write_error(self, status_code: int, **kwargs: Any) -> None:
            reason = self._reason
            exc = kwargs.get("exc_info", (None, None, None))[1]
            if isinstance(exc, web.HTTPError) and exc.log_message:
                reason = exc.log_message  # the service's own words (a 500 from elsewhere stays bare)
            elif status_code == 403:
                reason = (f"a JupyterHub token of yours with {access_scope(state.settings.name)} is needed "
                          "(Authorization: token ...)")
            if status_code == 429 and self.retry_after is not None:
                # Set here: tornado clears the headers before it writes an error.
                self.set_header("Retry-After", str(self.retry_after))
            self.finish({"status": status_code, "reason": reason})

        @web.authenticated
        async def post(self) -> None:
            model = self.current_user
            if model.get("kind", "user") != "user":
                raise web.HTTPError(403, "only users grade their own work")
            user = model["name"]
            self.entry["user"] = user
            if len(self.request.body) > state.settings.max_bytes:
                raise web.HTTPError(413, f"the notebook is larger than {state.settings.max_bytes // 2**20} MB")
            try:
                # Validating a large notebook takes a while: off the loop, like the grading.
                lab, notebook = await asyncio.to_thread(parse_request, self.request.body, state.labs)
            except BadRequest as exc:
                raise web.HTTPError(400, str(exc)) from exc
            self.entry["lab"] = lab
            refused = state.limiter.acquire(user)
            if refused is not None:
                retry, why = refused
                self.retry_after = max(1, math.ceil(retry))
                raise web.HTTPError(429, why)
            began = time.monotonic()
            try:
                future = state.pool.submit(grade_request, lab, notebook, str(state.settings.workspace))
                result = await asyncio.wrap_future(future)
            except Exception as exc:  # noqa: BLE001 - any grader failure is the service's, reported without detail
                log.exception("grading %s for %s failed", lab, user)
                raise web.HTTPError(500, "the grader failed; your instructor has the details in the service's log") \
                    from exc
            finally:
                state.limiter.release(user, time.monotonic() - began)
            result = {"lab": lab, "mode": "service", "user": user, **result}
            self.entry.update(score=result["score"], max_score=result["max_score"])
            self.finish(result)

        def on_finish(self) -> None:
            state.log_request({
                "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "status": self.get_status(),
                "seconds": round(time.monotonic() - self.started, 3),
                **self.entry,
            })

    return web.Application([(prefix.rstrip("/") + "/api/grade", GradeHandler)])


# ----------------------------------------------------------------------------- main


def _die_with_service() -> None:
    """In a worker: be killed when the service dies, even by SIGKILL (Linux), so no grading outlives it."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def make_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """Worker processes for gradings (spawned: a clean interpreter, no copy of the loop's state)."""
    return concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                                  initializer=_die_with_service)


async def serve(settings: Settings, url: str, prefix: str) -> None:
    """Run the service until SIGTERM or SIGINT (how the hub stops it)."""
    import nbformat

    where = urlparse(url)
    settings.workspace.mkdir(parents=True, exist_ok=True)
    # Load nbformat's schema validator now, not during the first request (seconds on a busy host).
    nbformat.validate(nbformat.v4.new_notebook())
    pool = make_pool(settings.workers)
    state = ServiceState(settings, RateLimiter(settings.per_user, settings.per_hour), pool, known_labs())
    app = make_app(state, prefix)
    server = app.listen(where.port or DEFAULT_PORT, address=where.hostname or "127.0.0.1",
                        max_body_size=settings.max_bytes + 1024 * 1024)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("%s: grading %s at %s%sapi/grade (workspace %s)", settings.name, ", ".join(sorted(state.labs)), url,
             prefix, settings.workspace)
    try:
        await stop.wait()
    finally:
        server.stop()
        # Running gradings are abandoned: their workers go now (each sandbox dies with its worker),
        # so that the hub's stop is prompt and leaves no process behind.
        for child in multiprocessing.active_children():
            child.terminate()
        pool.shutdown(wait=True, cancel_futures=True)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s %(asctime)s %(name)s] %(message)s")
    settings = Settings.from_env()
    url = os.environ.get("JUPYTERHUB_SERVICE_URL") or f"http://127.0.0.1:{DEFAULT_PORT}"
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or f"/services/{settings.name}/"
    asyncio.run(serve(settings, url, prefix))


if __name__ == "__main__":
    main()
