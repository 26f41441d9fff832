"""Execute every solution notebook (or the ones named) and print wall time and peak memory.

    .venv/bin/python benchmarks/run_notebooks.py                    # warm: the model cache as it is
    .venv/bin/python benchmarks/run_notebooks.py --cold             # cold: an empty model cache
    .venv/bin/python benchmarks/run_notebooks.py solutions/lab00_minimisation/lab00_minimisation.ipynb

Wall time runs from the kernel's start to the last cell's reply (what "Restart Kernel and Run All"
costs a student); the kernel is then killed rather than shut down gracefully.
Peak memory is the largest resident set size of the kernel process tree, sampled every 50 ms
(the notebook's own figure; the driver process is reported apart). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def tree_total(pid: int, measure: Callable[[psutil.Process], float]) -> float:
    """``measure`` summed over process ``pid`` and its descendants (processes that exit meanwhile count 0)."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            total += measure(p)
        except psutil.NoSuchProcess:
            continue
    return total


def tree_rss(pid: int) -> int:
    return int(tree_total(pid, lambda p: p.memory_info().rss))


def run(path: Path, timeout: int = 900) -> dict[str, float | str]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / path.parent.name
        shutil.copytree(path.parent, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        nb = nbformat.read(work / path.name, as_version=4)
        # Timed from kernel start to the last cell's reply; the kernel is then killed, since a torch
        # kernel's graceful teardown (1-3 s) happens after the notebook has finished.
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", shutdown_kernel="immediate",
                                resources={"metadata": {"path": str(work)}})
        peak = 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                km = client.km
                pid = getattr(getattr(km, "provisioner", None), "pid", None) if km else None
                if pid:
                    peak = max(peak, tree_rss(pid))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        start = time.perf_counter()
        sampler.start()
        try:
            client.execute()
        finally:
            stop.set()
            sampler.join()
        seconds = time.perf_counter() - start
    return {"notebook": str(path.relative_to(ROOT)), "seconds": round(seconds, 1), "peak_rss_mb": round(peak / 2**20)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--cold", action="store_true", help="start from an empty model cache")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    args = parser.parse_args()
    os.environ.setdefault("MPLBACKEND", "Agg")
    notebooks = [p.resolve() for p in args.notebooks] or sorted((ROOT / "solutions").glob("*/*.ipynb"))
    cold_dir = None
    if args.cold:
        cold_dir = tempfile.mkdtemp(prefix="aisec-cold-cache-")
        os.environ["AISEC_CACHE"] = cold_dir
    try:
        if not args.json:
            print(f"{'notebook':60s} {'seconds':>8s} {'peak RSS (MB)':>14s}")
        for path in notebooks:
            result = run(path)
            if args.json:
                print(json.dumps(result))
            else:
                print(f"{result['notebook']:60s} {result['seconds']:8.1f} {result['peak_rss_mb']:14d}")
    finally:
        if cold_dir:
            shutil.rmtree(cold_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
