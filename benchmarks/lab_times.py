"""Per lab: the import time of its setup cell's imports, and the wall and CPU time of running its solution.

    .venv/bin/python benchmarks/lab_times.py imports                 # setup-cell imports, every lab
    .venv/bin/python benchmarks/lab_times.py warm lab01              # run twice, report the second run
    .venv/bin/python benchmarks/lab_times.py cold lab01              # an empty model cache (AISEC_CACHE)
    .venv/bin/python benchmarks/lab_times.py warm lab01 --cells 8    # and the 8 slowest cells

``imports`` runs ``python -X importtime -c "<the setup cell's import statements>"`` in a fresh process
and lists the modules with the largest cumulative import time, each with the first ``aisec`` module (or
the setup cell's own statement) that pulled it in. ``warm`` / ``cold`` time a notebook as
benchmarks/run_notebooks.py does (kernel start to the last reply), and add the kernel's CPU time:
on a shared machine the wall time includes waiting for a core, the CPU time mostly does not.
A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def notebook_path(lab: str, root: Path = ROOT) -> Path:
    (path,) = sorted((root / "solutions").glob(f"{lab}*/*.ipynb"))
    return path


def setup_imports(path: Path) -> str:
    """The import statements of the notebook's first code cell (its setup cell), one per line."""
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    tree = ast.parse(first.source)
    return "\n".join(ast.unparse(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)))


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}


def import_time(code: str, top: int = 10) -> dict:
    """Wall and CPU seconds of a fresh interpreter running ``code`` (best of three), and its slowest packages.

    A package's cost is the cumulative time of its imports that came from outside the package;
    ``via`` names the nearest ``aisec`` module above it, or the setup cell when nothing of aisec is.
    """
    walls, cpus = [], []
    for _ in range(3):
        before = os.times()
        start = time.perf_counter()
        subprocess.run([PYTHON, "-c", code], check=True, env=env())
        walls.append(time.perf_counter() - start)
        after = os.times()
        cpus.append((after.children_user - before.children_user) + (after.children_system - before.children_system))
    proc = subprocess.run([PYTHON, "-X", "importtime", "-c", code], capture_output=True, text=True, env=env(), check=True)
    # Lines are "import time: self | cumulative | <indent>name"; a module's children are printed
    # before it, indented deeper, so a module's importer is the next line with a smaller indent.
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self_us, cum_us, name = line.split("|", 2)
        name = name[1:]  # one space after the bar, then two per level of nesting
        depth = (len(name) - len(name.lstrip())) // 2
        rows.append((name.strip(), depth, int(cum_us)))
    cost: dict[str, float] = {}
    via: dict[str, str] = {}
    for i, (name, depth, cum) in enumerate(rows):
        package = name.split(".")[0]
        ancestors, d = [], depth
        for parent, pdepth, _ in rows[i + 1:]:
            if pdepth < d:
                ancestors.append(parent)
                d = pdepth
                if d == 0:
                    break
        if ancestors and ancestors[0].split(".")[0] == package:
            continue  # counted in the package's own entry point
        cost[package] = cost.get(package, 0.0) + cum / 1e6
        importer = next((a for a in ancestors if a.startswith("aisec")), None)
        if package != "aisec" and package not in via:
            first = ancestors[0].split(".")[0] if ancestors else ""
            via[package] = importer or ("setup cell" + (f" via {first}" if first and not first.startswith("aisec") else ""))
    ranked = sorted(cost.items(), key=lambda kv: -kv[1])
    loaded = {n.split(".")[0] for n, _, _ in rows}
    return {"wall_s": round(min(walls), 2), "cpu_s": round(min(cpus), 2),
            "top": [{"package": p, "cumulative_s": round(c, 2), "via": via.get(p, "")} for p, c in ranked[:top]],
            "heavy_loaded": sorted(loaded & {"torch", "transformers", "opacus", "sklearn", "matplotlib", "pandas", "scipy"})}


def tree_cpu(pid: int) -> float:
    from run_notebooks import tree_total  # benchmarks/ is on sys.path when this script runs

    return tree_total(pid, lambda p: sum(p.cpu_times()[:2]))  # user + system


def run_notebook(path: Path, timeout: int = 1800) -> dict:
    """Execute a copy of the notebook: wall seconds from kernel start, kernel CPU seconds, per-cell seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / path.parent.name
        shutil.copytree(path.parent, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        nb = nbformat.read(work / path.name, as_version=4)
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", shutdown_kernel="immediate",
                                record_timing=True, resources={"metadata": {"path": str(work)}})
        cpu = 0.0

        def on_cell_executed(**_: object) -> None:
            nonlocal cpu
            pid = getattr(getattr(client.km, "provisioner", None), "pid", None)
            if pid:
                cpu = max(cpu, tree_cpu(pid))

        client.on_cell_executed = on_cell_executed
        start = time.perf_counter()
        client.execute()
        wall = time.perf_counter() - start
    cells = []
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        t = cell.metadata.get("execution", {})
        if "iopub.execute_input" in t and "shell.execute_reply" in t:
            a = datetime.fromisoformat(t["iopub.execute_input"].replace("Z", "+00:00"))
            b = datetime.fromisoformat(t["shell.execute_reply"].replace("Z", "+00:00"))
            name = cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {i}"
            cells.append((name, round((b - a).total_seconds(), 2)))
    return {"wall_s": round(wall, 1), "kernel_cpu_s": round(cpu, 1), "cells": cells}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["imports", "warm", "cold"])
    parser.add_argument("labs", nargs="*", help="lab prefixes such as lab01 (default: every lab)")
    parser.add_argument("--cells", type=int, default=0, help="also list this many slowest cells")
    parser.add_argument("--tree", type=Path, default=None,
                        help="measure another checkout (e.g. `git archive` of an older commit): its solutions, "
                             "and its aisec first on PYTHONPATH; the model cache stays this course's")
    args = parser.parse_args()
    root = ROOT
    if args.tree:
        root = args.tree.resolve()
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
        os.environ.setdefault("AISEC_CACHE", str(ROOT / ".cache" / "aisec"))
    labs = args.labs or sorted(p.parent.name[:5] for p in (ROOT / "solutions").glob("lab*/*.ipynb"))
    load = os.getloadavg()[0]
    for lab in labs:
        path = notebook_path(lab, root)
        if args.mode == "imports":
            result = {"lab": lab, **import_time(setup_imports(path))}
        else:
            cold_dir = None
            if args.mode == "cold":
                cold_dir = tempfile.mkdtemp(prefix="aisec-cold-cache-")
                os.environ["AISEC_CACHE"] = cold_dir
            try:
                if args.mode == "warm":
                    run_notebook(path)  # fill the caches (model cache, page cache, .pyc)
                result = {"lab": lab, **run_notebook(path)}
            finally:
                if cold_dir:
                    os.environ.pop("AISEC_CACHE")
                    if args.tree:
                        os.environ["AISEC_CACHE"] = str(ROOT / ".cache" / "aisec")
                    shutil.rmtree(cold_dir, ignore_errors=True)
            cells = sorted(result.pop("cells"), key=lambda c: -c[1])
            if args.cells:
                result["slowest_cells"] = cells[: args.cells]
        result["load_avg_1min_at_start"] = round(load, 2)
        print(json.dumps(result), flush=True)
        load = os.getloadavg()[0]


if __name__ == "__main__":
    main()
