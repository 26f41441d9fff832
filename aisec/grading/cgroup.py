"""Memory for a whole sandbox, not per process: a memory cgroup where the host lets the grader make one.

An rlimit caps each process's address space, so 20 small processes can still add up to 20 times the
limit. A cgroup caps the resident memory of everything in the sandbox together. The grader makes one
cgroup per run, as a child of its own (so the host's limits on the grader still apply), with the
cgroup v2 ``memory.max`` or the v1 memory controller's ``memory.limit_in_bytes``. Where neither can
be written (not root, no delegation), :func:`memory_group_status` says so and the per-process
rlimit is the stated fallback.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

V1_ROOT = Path("/sys/fs/cgroup/memory")
V2_ROOT = Path("/sys/fs/cgroup")


def _own_group(controller: str) -> str | None:
    """This process's cgroup path in a hierarchy (``""`` for v2's unified one), from /proc."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(",") or (controller == "" and controllers == ""):
            return path
    return None


@lru_cache(maxsize=1)
def _parent() -> tuple[Path, int] | None:
    """(the folder under which sandbox cgroups are made, cgroup version), or None."""
    own = _own_group("memory")
    if own is not None and V1_ROOT.is_dir():
        base = V1_ROOT / own.lstrip("/")
        if not base.is_dir():
            base = V1_ROOT  # a container that sees only its own part of the hierarchy
        if os.access(base, os.W_OK) and (base / "memory.limit_in_bytes").exists():
            return base, 1
    own = _own_group("")
    if own is not None and (V2_ROOT / "cgroup.controllers").is_file():
        base = V2_ROOT / own.lstrip("/")
        subtree = base / "cgroup.subtree_control"
        if os.access(base, os.W_OK) and subtree.is_file() and "memory" in subtree.read_text().split():
            return base, 2
    return None


def memory_group_status() -> tuple[bool, str]:
    """(available, explanation) of whole-sandbox memory limits on this host."""
    parent = _parent()
    if parent is None:
        return False, "no writable memory cgroup: each process is limited by its address space (rlimit) instead"
    return True, f"memory cgroup v{parent[1]} under {parent[0]}"


@dataclass
class MemoryGroup:
    """One sandbox's memory cgroup."""

    path: Path
    version: int
    limit_bytes: int

    @classmethod
    def create(cls, limit_mb: int) -> MemoryGroup | None:
        """A fresh cgroup limited to ``limit_mb`` MiB, or None where the host allows none."""
        parent = _parent()
        if parent is None:
            return None
        base, version = parent
        path = base / f"aisec-sandbox-{uuid.uuid4().hex[:12]}"
        limit = limit_mb * 1024 * 1024
        try:
            path.mkdir()
            if version == 1:
                (path / "memory.limit_in_bytes").write_text(str(limit))
                swap = path / "memory.memsw.limit_in_bytes"
                if swap.exists():
                    swap.write_text(str(limit))  # no swapping past the limit either
            else:
                (path / "memory.max").write_text(str(limit))
                if (path / "memory.swap.max").exists():
                    (path / "memory.swap.max").write_text("0")
        except OSError:
            cls._rmdir(path)
            return None
        return cls(path, version, limit)

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` started inside the cgroup: a shell joins it, then execs ``argv``, so every
        process of the sandbox is born inside it."""
        return ["/bin/sh", "-c", f'echo $$ > {self.path / "cgroup.procs"} && exec "$@"', "sh", *argv]

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of this cgroup for memory."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        try:
            for line in (self.path / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and value.strip().isdigit():
                    return int(value) > 0
        except OSError:
            return False
        return False

    def remove(self) -> None:
        """Remove the cgroup once its processes are gone (the sandbox's PID namespace kills them)."""
        self._rmdir(self.path)

    @staticmethod
    def _rmdir(path: Path) -> None:
        for _ in range(50):
            try:
                path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.05)  # the last processes are still exiting
