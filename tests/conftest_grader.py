"""Fixtures of the grading pipeline's tests: sandbox and PostgreSQL requirements, a real PostgreSQL.

A test that needs bubblewrap or PostgreSQL FAILS when they are missing on CI (``CI=true``) and
is skipped, with the reason, on a developer's machine.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aisec.grading.sandbox import sandbox_status

ON_CI = os.environ.get("CI") == "true"


def _missing(what: str) -> None:
    if ON_CI:
        pytest.fail(f"{what} (CI must provide it: see .ci/run)")
    pytest.skip(what)


def require_sandbox() -> None:
    usable, why = sandbox_status()
    if not usable:
        _missing(f"the bubblewrap sandbox cannot run here: {why}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin() -> Path | None:
    """Debian's server binaries (initdb, pg_ctl and psql side by side), else whatever PATH has."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if candidates:
        return candidates[-1].parent
    found = shutil.which("initdb")
    return Path(found).parent if found and (Path(found).parent / "psql").exists() else None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throw-away PostgreSQL server on localhost (Debian's ``postgresql`` binaries), its URL."""
    bindir = _pg_bin()
    if bindir is None:
        _missing("PostgreSQL is not installed (apt-get install postgresql)")
    assert bindir is not None
    tmp = Path(tempfile.mkdtemp(prefix="aisec-pg-"))
    data, sock = tmp / "data", tmp / "sock"
    sock.mkdir()
    port = free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root: the server runs as the `postgres` system user.
        shutil.chown(tmp, "postgres")
        shutil.chown(sock, "postgres")
        as_user = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
    subprocess.run(as_user + [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    subprocess.run(as_user + [str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l", str(tmp / "log"), "-o",
                              f"-p {port} -k {sock} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            ok = subprocess.run([str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-c",
                                 "create database aisec_grading"], capture_output=True, text=True)
            if ok.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(ok.stderr)
            time.sleep(0.5)
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/aisec_grading"
    finally:
        subprocess.run(as_user + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
