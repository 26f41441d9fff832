"""Run one untrusted notebook inside a bubblewrap sandbox, with limits.

What the student's code sees (Linux, ``bwrap``):

* a read-only system (``/usr`` and the interpreter), the course's virtualenv and the ``aisec``
  package, all read-only; the model cache (``AISEC_CACHE``) read-only, so no model is retrained;
* a private tmpfs scratch (``/scratch``, size-capped) holding only a copy of this submission
  and the lab's data files, and a private ``/tmp``;
* its own network namespace (loopback only: no network), PID namespace (every process, including
  background ones, dies with the sandbox), IPC and UTS namespaces (hostname ``sandbox``);
* no course root, no solutions, no gradebook, no exchange, no other student's work: none of them
  is mounted;
* a fixed, minimal environment, the same for the reference run, self-grading and class grading,
  so that code cannot detect the grader by its environment (no ``NBGRADER_EXECUTION``);
* an unprivileged user: when the grader runs as root, the sandbox drops to a throw-away uid with
  ``setpriv`` (no capabilities, ``no_new_privs``) so that the process limit counts this sandbox only.

Limits (per submission, configurable per lab, defaults in :class:`Limits`): address space, CPU
seconds, processes, file size and open files as rlimits (``prlimit``); the resident memory of the
whole sandbox as a memory cgroup where the host allows one (:mod:`aisec.grading.cgroup`); each
cell's time (from the reference run), the wall time, and the size in bytes of the outputs streamed
back, enforced by the grader outside the sandbox.

Where bubblewrap cannot run (no user namespaces: some Binder or container hosts),
:func:`sandbox_status` says why and callers must refuse untrusted work unless told otherwise;
:func:`execute` can then run the same runner unsandboxed (rlimits only) for trusted code.
"""

from __future__ import annotations

import hashlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import aisec

RUNNER = Path(__file__).with_name("runner.py")
AISEC_DIR = Path(aisec.__file__).resolve().parent
SCRATCH = "/scratch"
SANDBOX_CACHE = "/opt/aisec-cache"
SANDBOX_CACHE_SHARED = "/opt/aisec-cache-shared"
MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Resource limits of one submission's run: the one home of their defaults.

    ``grader/nbgrader_config.py`` overrides them for the course (``GradingPipeline.limits``) and per
    lab (``GradingPipeline.lab_limits``); nothing else sets a default.
    """

    memory_mb: int = 6144  # address space per process; torch reserves a lot of virtual memory
    sandbox_memory_mb: int = 4096  # resident memory of the whole sandbox (a cgroup, where the host allows)
    cpu_seconds: int = 1800  # per process
    processes: int = 256  # threads count as processes for the kernel's limit
    wall_seconds: int = 900  # the whole notebook, at most
    cell_timeout: int = 300  # one cell, at most
    time_factor: int = 3  # a cell may take this many times the reference run's time for it ...
    time_slack: int = 10  # ... plus this many seconds (bounded by cell_timeout)
    output_bytes: int = 2 * MiB  # all outputs of the notebook together
    file_mb: int = 256  # largest file a process may write
    scratch_mb: int = 512  # the writable tmpfs
    open_files: int = 1024

    def merged(self, overrides: dict[str, Any] | None) -> Limits:
        """These limits with ``overrides`` (unknown keys are an error, so a typo is not ignored)."""
        if not overrides:
            return self
        unknown = set(overrides) - set(asdict(self))
        if unknown:
            raise ValueError(f"unknown sandbox limit(s): {', '.join(sorted(unknown))}")
        return replace(self, **{k: int(v) for k, v in overrides.items()})

    @classmethod
    def for_reference(cls) -> Limits:
        """The reference run's limits: the instructor's own code, allowed generous time and output."""
        return cls(cell_timeout=1800, wall_seconds=3600, output_bytes=64 * MiB)


@dataclass
class RunResult:
    """What came back from one run: outputs of the code cells that finished, and how it ended."""

    status: str  # ok | timeout | dead_kernel | memory | error | wall_time | output_limit | crashed | no_sandbox
    reason: str
    cells: dict[int, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0
    sandboxed: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason, "cells": {str(k): v for k, v in self.cells.items()},
                "seconds": self.seconds, "sandboxed": self.sandboxed}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunResult:
        return cls(data["status"], data["reason"], {int(k): v for k, v in data["cells"].items()},
                   float(data.get("seconds", 0.0)), bool(data.get("sandboxed", True)))


# ------------------------------------------------------------------ is the sandbox usable?


@lru_cache(maxsize=1)
def sandbox_status() -> tuple[bool, str]:
    """(usable, explanation): can bubblewrap start a sandbox on this host?"""
    if sys.platform != "linux":
        return False, f"the sandbox needs Linux (bubblewrap); this is {sys.platform}"
    bwrap = _bwrap_binary()
    if not bwrap:
        return False, "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    probe = _bwrap_argv(Path("/nonexistent"), None, None, uid=_sandbox_uid()) + ["/bin/true"]
    probe = [a for a in probe if a != "--die-with-parent"]
    try:
        proc = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"bubblewrap could not start: {exc}"
    if proc.returncode != 0:
        return False, ("bubblewrap cannot create its namespaces here (user namespaces disabled?): "
                       + proc.stderr.strip()[:300])
    return True, "bubblewrap sandbox available"


def _bwrap_binary() -> str | None:
    """The bubblewrap binary: ``$AISEC_SANDBOX_BWRAP`` (a path or name) or ``bwrap`` on PATH."""
    return shutil.which(os.environ.get("AISEC_SANDBOX_BWRAP") or "bwrap")


UID_BASE, UID_SLOTS = 200_000, 64
_uid_lock = threading.Lock()
_uid_slots_in_use: set[int] = set()


def _sandbox_uid(slot: int = 0) -> int | None:
    """The uid the sandbox runs as when the grader is root (None: keep the caller's uid).

    One uid per running sandbox (grading process and slot), so that the process limit (counted
    per uid by the kernel) of one submission is not eaten by another one running at the same
    time, in another process or in another thread of this one.
    """
    if os.geteuid() != 0:
        return None
    return UID_BASE + os.getpid() * UID_SLOTS + slot


@contextmanager
def _uid_slot() -> Iterator[int]:
    """A slot no other sandbox of this process is using, for as long as the run lasts."""
    with _uid_lock:
        free = [i for i in range(UID_SLOTS) if i not in _uid_slots_in_use]
        if not free:
            raise RuntimeError(f"more than {UID_SLOTS} sandboxes at once in one grading process")
        _uid_slots_in_use.add(free[0])
    try:
        yield free[0]
    finally:
        with _uid_lock:
            _uid_slots_in_use.discard(free[0])


def _ro_paths() -> list[str]:
    """Read-only binds: the system, the interpreter, the virtualenv, the aisec package."""
    paths = ["/usr", "/etc/alternatives", "/etc/ssl", "/etc/localtime", "/etc/fonts", "/etc/matplotlibrc"]
    for prefix in {sys.base_prefix, sys.prefix, os.path.realpath(sys.base_prefix)}:
        paths.append(prefix)
    paths.append(str(AISEC_DIR))
    # Editable installs point at the checkout through a .pth file: the package folder alone
    # is mounted, never the course root around it.
    return [p for p in dict.fromkeys(paths) if os.path.exists(p)]


def _bwrap_argv(scratch: Path, cache: Path | None, limits: Limits | None, uid: int | None, cache_writable: bool = False) -> list[str]:
    argv = [_bwrap_binary() or "bwrap", "--die-with-parent", "--new-session"]
    if uid is None:
        argv += ["--unshare-all"]  # includes a user namespace: needed to be unprivileged
    else:
        # Root: no user namespace (setpriv drops to a real unprivileged uid inside instead).
        argv += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    argv += ["--hostname", "sandbox", "--proc", "/proc", "--dev", "/dev"]
    for name in ("lib", "lib64", "bin", "sbin"):
        if os.path.islink(f"/{name}"):
            argv += ["--symlink", os.readlink(f"/{name}"), f"/{name}"]
        elif os.path.isdir(f"/{name}"):
            argv += ["--ro-bind", f"/{name}", f"/{name}"]
    # /tmp is a private tmpfs; mount it before the read-only binds, which may live under /tmp
    # (a checkout or virtualenv there would otherwise be hidden by it).
    size = str((limits.scratch_mb if limits else 64) * MiB)
    argv += ["--size", size, "--tmpfs", "/tmp"]
    ancestors: list[str] = []
    for p in _ro_paths():
        parent = Path(p).parent
        while str(parent) not in ("/", "/tmp") and str(parent) not in ancestors:
            ancestors.append(str(parent))
            parent = parent.parent
    # The model cache is mounted under /opt: its parent must be traversable too.
    ancestors += [d for d in (str(Path(SANDBOX_CACHE).parent),) if d not in ancestors]
    # bwrap creates missing mount points 0700 (root-only): the unprivileged uid must traverse them.
    for d in sorted(ancestors, key=len):
        argv += ["--perms", "0755", "--dir", d]
    for p in _ro_paths():
        argv += ["--ro-bind", p, p]
    argv += ["--size", size, "--tmpfs", SCRATCH]
    if scratch.exists():
        # The submission's files are copied onto the tmpfs by the runner's shell: bind the
        # staging folder read-only at /input.
        argv += ["--ro-bind", str(scratch), "/input"]
    if cache is not None and cache.is_dir() and cache_writable:
        argv += ["--bind", str(cache), SANDBOX_CACHE]
    else:
        # The shared cache is read-only; the folder the kernel sees is a private tmpfs of
        # symlinks to it, so loads hit the shared models and a student who trains a model of
        # their own can still save it (into the scratch, gone with the sandbox).
        argv += ["--size", size, "--tmpfs", SANDBOX_CACHE]
        if cache is not None and cache.is_dir():
            argv += ["--ro-bind", str(cache), SANDBOX_CACHE_SHARED]
            for item in sorted(cache.iterdir()):
                argv += ["--symlink", f"{SANDBOX_CACHE_SHARED}/{item.name}", f"{SANDBOX_CACHE}/{item.name}"]
    argv += ["--chdir", SCRATCH, "--clearenv"]
    for key, value in sandbox_env(uid).items():
        argv += ["--setenv", key, value]
    return argv


def sandbox_env(uid: int | None = None) -> dict[str, str]:
    """The whole environment of the student's kernel: identical in every kind of run."""
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": SCRATCH,
        "USER": "student",
        "LANG": "C.UTF-8",
        "TMPDIR": "/tmp",
        "AISEC_CACHE": SANDBOX_CACHE,
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "IPYTHONDIR": "/tmp/ipython",
        "JUPYTER_RUNTIME_DIR": "/tmp/jupyter-runtime",
        "JUPYTER_PLATFORM_DIRS": "1",
        "OMP_NUM_THREADS": "1",  # one core per submission: parallelism comes from submissions
        "MKL_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONHASHSEED": "0",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }


def font_cache(cache: Path) -> Path | None:
    """matplotlib's font list, built once outside the sandbox into the model cache.

    Every sandbox starts with an empty ``MPLCONFIGDIR``: without this, each kernel that imports
    matplotlib would spend ~0.3 s rebuilding the list. Built by the grader's own interpreter
    (trusted) with the sandbox's environment; None (no copy, only slower) if that fails.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        # Keyed by the interpreter too: the list holds the paths of the fonts matplotlib ships.
        prefix = hashlib.sha256(sys.prefix.encode()).hexdigest()[:8]
        target = cache / f"matplotlib-fonts-{version('matplotlib')}-{prefix}"
    except PackageNotFoundError:
        return None
    if any(target.glob("fontlist-*.json")):
        return target
    build = Path(tempfile.mkdtemp(prefix=".matplotlib-fonts-", dir=cache))
    try:
        env = dict(sandbox_env(None), MPLCONFIGDIR=str(build), HOME=str(build))
        subprocess.run([sys.executable, "-I", "-c", "import matplotlib.font_manager"], env=env, cwd=str(build),
                       capture_output=True, timeout=120, check=True)
        for f in build.iterdir():
            os.chmod(f, 0o644)
        os.chmod(build, 0o755)
        os.replace(build, target)
    except (OSError, subprocess.SubprocessError):
        shutil.rmtree(build, ignore_errors=True)  # another process won the race, or no matplotlib
    return target if any(target.glob("fontlist-*.json")) else None


def _prlimit_argv(limits: Limits) -> list[str]:
    return [
        "prlimit",
        f"--as={limits.memory_mb * MiB}",
        f"--cpu={limits.cpu_seconds}",
        f"--nproc={limits.processes}",
        f"--fsize={limits.file_mb * MiB}",
        f"--nofile={limits.open_files}",
        "--core=0",
        "--",
    ]


# ------------------------------------------------------------------------------ running


def execute(
    notebook: dict[str, Any],
    notebook_name: str,
    data_dir: Path | None,
    limits: Limits,
    cache: Path | None = None,
    cache_writable: bool = False,
    sandboxed: bool = True,
    cell_timeouts: dict[int, int] | None = None,
) -> RunResult:
    """Execute ``notebook`` (nbformat JSON) in the sandbox; never raises for the student's faults.

    ``data_dir``: the lab's released folder; its non-notebook files are copied next to the
    notebook. ``sandboxed=False`` runs the same runner without bubblewrap (rlimits only): only
    for trusted code, the caller decides. ``cell_timeouts``: a limit per code cell index (from the
    reference run, :func:`aisec.grading.reference.time_limits`), each at most ``limits.cell_timeout``.
    Where the host allows it, the whole sandbox runs in a memory cgroup of ``limits.sandbox_memory_mb``.
    """
    start = time.monotonic()
    with ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="aisec-run-"))
        staging = Path(tmp) / "input"
        staging.mkdir()
        if data_dir is not None and data_dir.is_dir():
            for item in data_dir.iterdir():
                if item.suffix == ".ipynb" or item.name in (".ipynb_checkpoints", "__pycache__"):
                    continue
                if item.is_dir():
                    shutil.copytree(item, staging / item.name)
                else:
                    shutil.copy2(item, staging / item.name)
        (staging / notebook_name).write_text(json.dumps(notebook))
        os.chmod(tmp, 0o755)
        for p in staging.rglob("*"):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        os.chmod(staging, 0o755)
        inner = _prlimit_argv(limits) + [sys.executable, "-I", str(RUNNER)]
        timeouts = json.dumps({str(k): min(int(v), limits.cell_timeout) for k, v in (cell_timeouts or {}).items()})
        copy = f"mkdir -p /tmp/matplotlib && cp -r /input/. {SCRATCH}/ && cd {SCRATCH} && exec "
        fonts = font_cache(cache) if sandboxed and cache is not None and cache.is_dir() else None
        if fonts is not None:
            copy = f"mkdir -p /tmp/matplotlib; cp {SANDBOX_CACHE}/{fonts.name}/fontlist-*.json /tmp/matplotlib/ 2>/dev/null; " + copy
        if sandboxed:
            uid = _sandbox_uid(stack.enter_context(_uid_slot()))
            argv = _bwrap_argv(staging, cache, limits, uid, cache_writable)
            run = inner + [f"{SCRATCH}/{notebook_name}", str(limits.cell_timeout), str(limits.output_bytes), timeouts]
            script = copy + " ".join(_quote(a) for a in run)
            if uid is not None:
                # Drop root for good before anything of the student's runs; the scratch and
                # /tmp (fresh tmpfs owned by root) are handed to the unprivileged uid first.
                drop = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                        "--bounding-set=-all", "--no-new-privs", "--", "/bin/sh", "-c", script]
                root_step = f"chown {uid}:{uid} {SCRATCH} /tmp {SANDBOX_CACHE} && exec " + " ".join(_quote(a) for a in drop)
                argv += ["--", "/bin/sh", "-c", root_step]
            else:
                argv += ["--", "/bin/sh", "-c", script]
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
            cwd = "/"
        else:
            work = Path(tmp) / "work"
            shutil.copytree(staging, work)
            argv = inner + [str(work / notebook_name), str(limits.cell_timeout), str(limits.output_bytes), timeouts]
            env = dict(sandbox_env(None))
            env.update({"HOME": str(work), "TMPDIR": tmp, "MPLCONFIGDIR": f"{tmp}/matplotlib",
                        "IPYTHONDIR": f"{tmp}/ipython", "JUPYTER_RUNTIME_DIR": f"{tmp}/runtime",
                        "AISEC_CACHE": str(cache) if cache else f"{tmp}/cache"})
            cwd = str(work)
        from aisec.grading.cgroup import MemoryGroup

        group = MemoryGroup.create(limits.sandbox_memory_mb) if sandboxed else None
        if group is not None:
            stack.callback(group.remove)
            argv = group.wrap(argv)
        # A process of the sandbox killed for memory stops the whole run, whichever process the
        # kernel chose: the limit is the sandbox's, not one process's.
        result = _stream(argv, env, cwd, limits, over_memory=group.oom_killed if group is not None else None)
        if group is not None and result.status != "ok" and group.oom_killed():
            result.status = "memory"
            result.reason = f"the sandbox used more than its memory limit ({limits.sandbox_memory_mb} MB, all processes together)"
    result.seconds = round(time.monotonic() - start, 3)
    result.sandboxed = sandboxed
    return result


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def _stream(argv: list[str], env: dict[str, str], cwd: str, limits: Limits,
            over_memory: Callable[[], bool] | None = None) -> RunResult:
    """Run ``argv``, read the runner's JSON lines, enforce wall time, output bytes and (checked every
    second with ``over_memory``) the sandbox's memory."""
    cells: dict[int, dict[str, Any]] = {}
    status, reason = "crashed", "the sandboxed run ended without a result"
    deadline = time.monotonic() + limits.wall_seconds
    # Slack over the runner's own cap: JSON framing and the truncation notice.
    byte_cap = limits.output_bytes * 2 + 256 * 1024
    received = 0
    stderr_file = tempfile.TemporaryFile()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr_file,
                            env=env, cwd=cwd, start_new_session=True)
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buffer = b""
    ended = False
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                status, reason = "wall_time", f"the notebook ran longer than the wall-time limit ({limits.wall_seconds} s)"
                break
            if over_memory is not None and over_memory():
                status, reason = "memory", "a process of the sandbox was killed for memory"
                break
            if not sel.select(timeout=min(remaining, 1.0)):
                if proc.poll() is not None and not ended:
                    # Drain what is left, then stop.
                    chunk = proc.stdout.read()
                    if not chunk:
                        break
                else:
                    continue
            else:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
            received += len(chunk)
            if received > byte_cap:
                status, reason = "output_limit", f"the notebook's output exceeded {limits.output_bytes} bytes"
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue  # only the runner writes here; a torn line is dropped
                if msg.get("event") == "cell" and isinstance(msg.get("index"), int):
                    seconds = msg.get("seconds")
                    cells[msg["index"]] = {"outputs": msg.get("outputs", []), "execution_count": msg.get("execution_count"),
                                           "seconds": float(seconds) if type(seconds) in (int, float) else 0.0}
                elif msg.get("event") == "end":
                    status, reason, ended = str(msg.get("status")), str(msg.get("reason", "")), True
    finally:
        _kill(proc)
        sel.close()
        stderr_file.seek(0)
        err = stderr_file.read().decode(errors="replace")[-2000:]
        stderr_file.close()
    if status == "crashed":
        code = proc.returncode
        why = f"killed by signal {-code}" if code and code < 0 else f"exit code {code}"
        if code in (-signal.SIGKILL, -signal.SIGXCPU, 128 + signal.SIGKILL, 128 + signal.SIGXCPU):
            why += " (a resource limit: memory, CPU time or processes)"
        reason = f"the sandboxed run ended without a result ({why})" + (f": {err.strip()[-300:]}" if err.strip() else "")
    return RunResult(status, reason, cells)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill the whole sandbox (its own session); the PID namespace takes every child with it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout:
        proc.stdout.close()


# ------------------------------------------------------------- untrusted outputs → notebook


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "".join(v for v in value if isinstance(v, str))
    return value if isinstance(value, str) else ""


def clean_output(out: Any) -> dict[str, Any] | None:
    """Rebuild one output from untrusted JSON with only well-typed fields (None: dropped)."""
    import nbformat

    if not isinstance(out, dict):
        return None
    kind = out.get("output_type")
    if kind == "stream":
        name = out.get("name") if out.get("name") in ("stdout", "stderr") else "stdout"
        return nbformat.v4.new_output("stream", name=name, text=_text(out.get("text")))
    if kind in ("display_data", "execute_result"):
        data = out.get("data")
        if not isinstance(data, dict):
            return None
        clean = {str(k): v for k, v in data.items() if isinstance(k, str) and isinstance(v, (str, dict, list))}
        meta = out.get("metadata") if isinstance(out.get("metadata"), dict) else {}
        if kind == "execute_result":
            count = out.get("execution_count") if type(out.get("execution_count")) is int else None
            return nbformat.v4.new_output("execute_result", data=clean, metadata=meta, execution_count=count)
        return nbformat.v4.new_output("display_data", data=clean, metadata=meta)
    if kind == "error":
        tb = out.get("traceback")
        return nbformat.v4.new_output(
            "error",
            ename=_text(out.get("ename")) or "Error",
            evalue=_text(out.get("evalue")),
            traceback=[t for t in tb if isinstance(t, str)] if isinstance(tb, list) else [],
        )
    return None


def apply_run(nb: Any, run: RunResult, not_run_note: bool = False) -> None:
    """Copy the outputs of ``run`` into the code cells of ``nb`` (in place).

    Only outputs travel back from the sandbox; the cells' sources stay the grader's. Code cells
    that did not run keep no outputs; with ``not_run_note`` the first of them gets an error
    output saying why the run stopped (an autograded cell without its run is worth zero anyway).
    """
    import nbformat

    noted = False
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        done = run.cells.get(index)
        if done is None:
            cell.outputs = []
            cell.execution_count = None
            if not_run_note and not noted:
                noted = True
                cell.outputs = [nbformat.v4.new_output(
                    "error", ename="NotExecuted", evalue=f"the grader stopped the notebook here: {run.reason}",
                    traceback=[f"NotExecuted: the grader stopped the notebook here: {run.reason}"])]
            continue
        outs = done.get("outputs") if isinstance(done.get("outputs"), list) else []
        cell.outputs = [o for o in (clean_output(x) for x in outs) if o is not None]
        count = done.get("execution_count")
        cell.execution_count = count if type(count) is int else None
        if run.status not in ("ok",) and not_run_note and index == max(run.cells) and not noted:
            noted = True
            cell.outputs.append(nbformat.v4.new_output(
                "error", ename="Stopped", evalue=f"the grader stopped the notebook in this cell: {run.reason}",
                traceback=[f"Stopped: the grader stopped the notebook in this cell: {run.reason}"]))
