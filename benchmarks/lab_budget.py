"""A lab's budget: its solution notebook cold (empty model cache) and warm, with its peak memory.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lab_budget.py lab07_supply_chain          # cold, then warm twice
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lab_budget.py lab06_federated --json      # one JSON object

Budgets: at most 60 s cold, 20 s warm and 1.5 GB peak RSS on the course's 2-core machine. The cold run
starts from an empty ``$AISEC_CACHE`` (datasets and trained models are rebuilt); the warm runs reuse that cache. Wall time and peak RSS are measured as in
``benchmarks/run_notebooks.py`` (kernel start to the last cell's reply; RSS of the kernel's process tree).
The machine's 1-minute load average is printed with each run, since other jobs share the 2 cores.
A benchmark, not a test: it reports and exits 1 when a budget is exceeded.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET = {"cold_seconds": 60.0, "warm_seconds": 20.0, "peak_rss_mb": 1536}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lab", help="a folder of solutions/, e.g. lab07_supply_chain")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--warm-runs", type=int, default=2)
    args = parser.parse_args()
    notebook = ROOT / "solutions" / args.lab / f"{args.lab}.ipynb"
    if not notebook.is_file():
        parser.error(f"no solution notebook {notebook.relative_to(ROOT)}")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from run_notebooks import run  # the course's notebook runner: wall time and peak RSS

    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cache = tempfile.mkdtemp(prefix=f"aisec-{args.lab}-cache-")
    os.environ["AISEC_CACHE"] = cache
    runs = []
    try:
        for kind in ["cold"] + ["warm"] * args.warm_runs:
            result = run(notebook)
            result.update(kind=kind, load_1min=round(os.getloadavg()[0], 2))
            runs.append(result)
            if not args.json:
                print(f"{kind:5s} {result['seconds']:6.1f} s  peak RSS {result['peak_rss_mb']:5d} MB  (load {result['load_1min']})")
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    cold = runs[0]["seconds"]
    warm = min(r["seconds"] for r in runs[1:]) if runs[1:] else None
    peak = max(r["peak_rss_mb"] for r in runs)
    verdict = {"cold_seconds": cold, "warm_seconds": warm, "peak_rss_mb": peak, "budget": BUDGET,
               "within_budget": cold <= BUDGET["cold_seconds"] and (warm is None or warm <= BUDGET["warm_seconds"])
               and peak <= BUDGET["peak_rss_mb"], "runs": runs}
    if args.json:
        print(json.dumps(verdict))
    else:
        print(f"cold {cold} s (budget {BUDGET['cold_seconds']}), best warm {warm} s (budget {BUDGET['warm_seconds']}), "
              f"peak RSS {peak} MB (budget {BUDGET['peak_rss_mb']}): {'within' if verdict['within_budget'] else 'OVER'} budget")
    return 0 if verdict["within_budget"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
