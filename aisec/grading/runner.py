"""Execute one notebook and stream its outputs as JSON lines (runs *inside* the sandbox).

    python runner.py NOTEBOOK.ipynb CELL_TIMEOUT OUTPUT_BYTES [CELL_TIMEOUTS_JSON]

``CELL_TIMEOUTS_JSON`` maps a code cell's index to its own limit in seconds (derived by the
grader from the reference run); cells it does not name get ``CELL_TIMEOUT``.

Protocol on the original stdout (one JSON object a line):

* ``{"event": "start"}``
* ``{"event": "cell", "index": i, "execution_count": n, "outputs": [...], "seconds": s}`` after every code cell
* ``{"event": "end", "status": "ok" | "timeout" | "dead_kernel" | "error", "reason": str}``

The grader keeps whatever arrived, so a kill (wall time, memory) still leaves the cells that
finished. The student's kernel never holds the channel: before the kernel starts, the runner
moves its stdout to a private close-on-exec descriptor and points fds 1 and 2 at /dev/null,
and it makes itself non-dumpable so that a process of the same user cannot open
``/proc/<runner>/fd``. Output is capped in bytes here, while it arrives, so a 30 MB print never
reaches the grader (or this process's memory) in full.

Only the standard library, nbformat and nbclient are used: this file is run by path with the
course's interpreter and must not import the rest of the grader.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import time
from typing import Any

# jsonschema (under nbformat) imports every optional string-format checker it finds installed
# (rfc3987_syntax alone compiles a grammar for seconds; isoduration pulls in arrow). The runner
# never checks formats, and every submission pays these imports: mark them as absent.
for _optional in ("rfc3987_syntax", "rfc3987", "rfc3986_validator", "rfc3339_validator", "isoduration", "fqdn",
                  "idna", "webcolors", "jsonpointer", "uri_template"):
    sys.modules.setdefault(_optional, None)  # type: ignore[arg-type]

import nbformat  # noqa: E402 - after the import block above
from nbclient import NotebookClient  # noqa: E402
from nbclient.exceptions import CellTimeoutError, DeadKernelError  # noqa: E402
from nbformat.notebooknode import NotebookNode  # noqa: E402

TRUNCATED = "\n[output truncated by the grader: the notebook's output exceeded {limit} bytes]\n"


def _private_channel() -> Any:
    """A text stream on a copy of fd 1 that no child process inherits; fds 1/2 become /dev/null."""
    channel_fd = os.dup(1)  # os.dup makes a non-inheritable (close-on-exec) descriptor
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    sys.stderr = sys.stdout
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4: /proc/<pid>/fd becomes root-only
    except OSError:
        pass  # not Linux: the sandbox (and this hardening) only exists on Linux
    return os.fdopen(channel_fd, "w", buffering=1)


class CappedClient(NotebookClient):
    """An nbclient that drops outputs once the notebook has produced ``budget`` bytes."""

    def __init__(self, nb: NotebookNode, budget: int, **kw: Any) -> None:
        super().__init__(nb, **kw)
        self.budget = budget
        self.used = 0
        self.truncated = False

    def output(self, outs: list[NotebookNode], msg: dict[str, Any], display_id: str | None, cell_index: int) -> NotebookNode | None:
        size = len(json.dumps(msg.get("content", {}), default=str))
        if self.used + size > self.budget:
            if not self.truncated:
                self.truncated = True
                outs.append(nbformat.v4.new_output("stream", name="stdout", text=TRUNCATED.format(limit=self.budget)))
            return None
        self.used += size
        return super().output(outs, msg, display_id, cell_index)


def main(argv: list[str]) -> int:
    path, cell_timeout, budget = argv[0], int(argv[1]), int(argv[2])
    limits = {int(k): int(v) for k, v in json.loads(argv[3]).items()} if len(argv) > 3 else {}
    channel = _private_channel()

    def send(obj: dict[str, Any]) -> None:
        obj["t"] = round(time.time(), 3)
        channel.write(json.dumps(obj) + "\n")
        channel.flush()

    send({"event": "start"})
    nb = nbformat.read(path, as_version=4)
    current = [0]  # the index of the cell being executed, for timeout_func
    workdir = os.path.dirname(os.path.abspath(path))
    client = CappedClient(
        nb,
        budget,
        timeout=cell_timeout,
        timeout_func=lambda cell: limits.get(current[0], cell_timeout),
        kernel_name="python3",
        allow_errors=True,  # a failing cell is scored by the grader, the next cells still run
        record_timing=False,
        # The outputs are all sent by then: kill the kernel rather than wait 1-3 s for a torch
        # kernel's interpreter teardown (the sandbox ends whatever the kernel leaves behind).
        shutdown_kernel="immediate",
        resources={"metadata": {"path": workdir}},
        extra_arguments=["--HistoryManager.hist_file=:memory:"],
    )
    status, reason = "ok", ""
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            current[0] = index
            started = time.monotonic()
            try:
                client.execute_cell(cell, index)
            except CellTimeoutError:
                status, reason = "timeout", f"cell {index} ran longer than its limit of {limits.get(index, cell_timeout)} s"
            except DeadKernelError:
                status, reason = "dead_kernel", f"the kernel died in cell {index} (memory limit or a crash)"
            except Exception as exc:  # noqa: BLE001 - any nbclient failure ends the run, with its reason
                status, reason = "error", f"cell {index}: {type(exc).__name__}: {exc}"[:500]
            send({"event": "cell", "index": index, "execution_count": cell.get("execution_count"),
                  "outputs": cell.get("outputs", []), "seconds": round(time.monotonic() - started, 3)})
            if status != "ok":
                break
    send({"event": "end", "status": status, "reason": reason})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
