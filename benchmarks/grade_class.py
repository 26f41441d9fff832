"""Benchmark: stock sequential ``nbgrader autograde`` against the sandboxed Dask pipeline.

    .venv/bin/python benchmarks/grade_class.py [--lab lab00_minimisation] [--n 40] [--workers 2] [--hang 5]

On the same generated class (honest, partial, broken and hostile submissions mixed) it times:

1. **stock**: ``nbgrader autograde LAB`` run once for the class, sequential, nbgrader's own
   ``Execute`` (no sandbox), with the course's record judge so that scores are comparable;
2. **bare**: the notebooks the graders execute (each submission as nbgrader sanitises it, hidden
   tests restored) run with nbclient and nothing else, with the sandbox's thread settings (one
   core per kernel): once one after the other, once ``--workers`` at a time in a process pool
   (the floor: what executing them costs on these cores);
3. **pipeline**: ``aisec-grade class`` (sanitise, sandboxed execution on ``--workers`` Dask
   workers, nbgrader grading into the gradebook).

It reports the wall times, the speed-up over stock (goal ≥ 1.8× with 2 workers), the grader's
overhead over bare execution on the same workers, ``pipeline / bare_parallel`` (goal ≤ 1.25×),
the same against perfect scaling of the sequential bare run, ``pipeline / (bare_sequential /
workers)`` (a bound no executor reaches: two kernels on two cores slow each other down; the
bare runs' own scaling is reported too), and checks that the honest submissions' scores are
identical. With ``--hang K`` it grades the class again with K honest submissions hanging and
reports the slowdown (goal ≤ 1.3×: each cell's limit derives from the reference run). Reference runs are
computed before timing (both graders cache them). Results go to ``artifacts/benchmark.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.redteam.builders import insert_after, solved, stub, submit, with_answer  # noqa: E402

STOCK_PREPROCESSORS = [
    "nbgrader.preprocessors.Execute",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "aisec.grading.judge.JudgeRecords",
    "aisec.grading.feedback.AuthorFeedback",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]


def solution_ids(lab: str) -> list[str]:
    nb = nbformat.read(ROOT / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    return [c.metadata["nbgrader"]["grade_id"] for c in nb.cells
            if c.cell_type == "code" and c.get("metadata", {}).get("nbgrader", {}).get("solution")]


def make_class(lab: str, n: int, submitted: Path, hang: int = 0) -> dict[str, str]:
    """``n`` submissions, kinds mixed in a fixed pattern; returns {student: kind}. With ``hang``,
    that many honest submissions (spread over the class) hang in their middle answer instead."""
    ids = solution_ids(lab)
    honest = solved(ROOT, lab)
    kinds: dict[str, str] = {}
    pattern = ["honest", "honest_warnings", "partial", "honest", "hostile_fake_int", "partial", "honest",
               "broken_stub", "hostile_read_files", "honest_warnings", "partial", "hostile_eq",
               "broken_kernel", "honest", "hostile_strip_asserts", "broken_json", "honest", "hostile_huge_print",
               "partial", "honest_warnings"]
    honest_slots = [i for i in range(n) if pattern[i % len(pattern)] == "honest"]
    hanging = set(honest_slots[:: max(1, len(honest_slots) // max(hang, 1))][:hang]) if hang else set()
    for i in range(n):
        kind = "hang" if i in hanging else pattern[i % len(pattern)]
        target = ids[i % len(ids)]
        if kind == "hang":
            # A busy loop in the middle answer: the cell never ends on its own.
            middle = ids[len(ids) // 2]
            nb = with_answer(honest, middle, honest_cell(honest, middle) + "\nwhile True:\n    pass\n")
        elif kind == "honest":
            nb = honest
        elif kind == "honest_warnings":
            # The answer warns each time it is called, inside the test cells too.
            nb = with_answer(honest, ids[0], honest_cell(honest, ids[0]) +
                             "\nimport warnings as _w\n_real_luhn = luhn_valid\n\n\ndef luhn_valid(number):\n"
                             "    _w.warn('a harmless library warning')\n    return _real_luhn(number)\n")
        elif kind == "partial":
            nb = with_answer(honest, target, "raise NotImplementedError()\n")
        elif kind == "broken_stub":
            nb = stub(ROOT, lab)
        elif kind == "broken_kernel":
            nb = solved(ROOT, lab)
            nb.metadata["kernelspec"] = {"name": "ir", "display_name": "R", "language": "R"}
        elif kind == "broken_json":
            submit(submitted, f"s{i:02d}", lab, {f"{lab}.ipynb": b"{ not a notebook"})
            kinds[f"s{i:02d}"] = kind
            continue
        elif kind == "hostile_fake_int":
            # Right after the k-anonymity answer, so its test cell sees the fake (lab 0).
            where = next((g for g in ids if "k_anonymity" in g), ids[-1])
            nb = insert_after(honest, where, "class FakeInt(int):\n    def __eq__(self, o):\n        return True\n"
                              "_real_k = k_anonymity\n"
                              "def k_anonymity(df, q):\n    return FakeInt(_real_k(df, q) + 1)\n")
        elif kind == "hostile_eq":
            nb = with_answer(honest, ids[0], "class Yes:\n    def __eq__(self, o):\n        return True\n"
                             "def luhn_valid(number):\n    return Yes()\n")
        elif kind == "hostile_strip_asserts":
            nb = insert_after(with_answer(honest, ids[0], "def luhn_valid(number):\n    return True\n"), ids[0],
                              "import ast\nclass _NoAssert(ast.NodeTransformer):\n"
                              "    def visit_Assert(self, node):\n        return ast.Pass()\n"
                              "get_ipython().ast_transformers.append(_NoAssert())\n")
        elif kind == "hostile_read_files":
            # The course's own path (leaked, say, by a traceback) and a shallow search: quick outside
            # the sandbox too, so the unsandboxed runs are not timed walking the whole file system.
            nb = insert_after(honest, ids[0], "import glob\n"
                              f"print(glob.glob({str(ROOT / 'solutions' / '*' / '*.ipynb')!r}) + "
                              "glob.glob('/*/*/solutions/*/*.ipynb'))\n")
        elif kind == "hostile_huge_print":
            nb = insert_after(honest, ids[0], "print('x' * (30 * 1024 * 1024))\n")
        else:
            raise ValueError(kind)
        submit(submitted, f"s{i:02d}", lab, {f"{lab}.ipynb": nb})
        kinds[f"s{i:02d}"] = kind
    return kinds


def honest_cell(nb: nbformat.NotebookNode, grade_id: str) -> str:
    return next(c.source for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id)


def scores(db_url: str, lab: str) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gb:
        return {s.student.id: float(s.score) for s in gb.assignment_submissions(lab)}


def run_stock(lab: str, ws: Path, env: dict[str, str]) -> float:
    """Stock nbgrader: one sequential ``nbgrader autograde`` for the class (timed)."""
    cfgdir = ws / "stock-config"
    cfgdir.mkdir(parents=True, exist_ok=True)
    (cfgdir / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"load_subconfig({str(ROOT / 'grader' / 'nbgrader_config.py')!r})\n"
        f"c.Autograde.autograde_preprocessors = {STOCK_PREPROCESSORS!r}\n")
    nbg = [sys.executable, "-m", "nbgrader"]
    subprocess.run(nbg + ["generate_assignment", lab, "--force", f"--CourseDirectory.release_directory={ws / 'release'}"],
                   cwd=cfgdir, env=env, check=True, capture_output=True)
    from aisec.grading.reference import reference_records

    reference_records(ROOT / "solutions", ws / "references", lab, lab)  # not timed, as for the pipeline
    start = time.monotonic()
    # On the command line: nbgrader also reads the course root's configuration, which would
    # otherwise put the sandboxed Execute back.
    override = "--Autograde.autograde_preprocessors=" + json.dumps(STOCK_PREPROCESSORS)
    subprocess.run(nbg + ["autograde", lab, "--force", override], cwd=cfgdir, env=env, capture_output=True)
    return time.monotonic() - start


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine so far (Linux ``/proc/stat``)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def utilisation(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Share of all cores' time that was busy between two :func:`cpu_ticks` readings."""
    return round((after[0] - before[0]) / max(1, after[1] - before[1]), 3)


def _bare_env() -> None:
    """Run the kernels with the sandbox's thread settings (one core per notebook), so the floor
    executes exactly what the pipeline's kernels execute; only the sandbox and grading differ."""
    from aisec.grading.sandbox import sandbox_env

    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TOKENIZERS_PARALLELISM", "PYTHONHASHSEED"):
        os.environ[key] = sandbox_env()[key]


def _bare_one(args: tuple[str, list[str]]) -> float:
    """Execute one notebook with nbclient next to the lab's data files; seconds taken."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    from aisec.grading.sandbox import Limits

    text, data = args
    nb = nbformat.reads(text, as_version=4)
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for f in data:
            shutil.copy2(f, tmp)
        # The pipeline's per-cell time limit and kernel teardown (an immediate kill), so the
        # ratio measures the sandbox and the grading, not a shutdown policy.
        client = NotebookClient(nb, timeout=Limits().cell_timeout, kernel_name="python3", allow_errors=True,
                                shutdown_kernel="immediate", resources={"metadata": {"path": tmp}})
        try:
            client.execute()
        except (CellTimeoutError, DeadKernelError) as exc:
            print(f"bare run: {type(exc).__name__}", flush=True)
    return time.monotonic() - start


UTILISATION: dict[str, float] = {}


def run_bare(lab: str, submitted: Path, ws: Path, workers: int) -> float:
    """Execute, with nbclient and nothing else, the notebooks the graders execute: each
    submission as nbgrader sanitises it (test cells, hidden tests included, restored from the
    source), ``workers`` at a time (1: one after the other). Only the execution is timed."""
    from concurrent.futures import ProcessPoolExecutor

    from aisec.grading.pipeline import Grader

    if not (ws / "submitted").exists():
        shutil.copytree(submitted, ws / "submitted")
    grader = Grader(lab, ws=ws, log=lambda _msg: None)
    grader.prepare()
    notebooks = []
    for student in grader.students():
        staged, _notes = grader.stage(student)
        notebooks += list(staged.values())
    data = [str(f) for f in grader.release_dir.iterdir() if f.is_file() and f.suffix != ".ipynb"]
    _bare_env()
    if workers == 1:
        start = time.monotonic()
        for text in notebooks:
            _bare_one((text, data))
        return time.monotonic() - start
    with ProcessPoolExecutor(workers, initializer=_bare_env) as pool:
        list(pool.map(time.sleep, [0.5] * workers))  # the pool's processes are up before the clock starts
        start, ticks = time.monotonic(), cpu_ticks()
        list(pool.map(_bare_one, [(text, data) for text in notebooks]))
        UTILISATION["bare_parallel"] = utilisation(ticks, cpu_ticks())
        return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lab", default="lab00_minimisation")
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-bare", action="store_true")
    parser.add_argument("--hang", type=int, default=0,
                        help="also grade the class with this many honest submissions hanging (goal: <= 1.3x the time)")
    parser.add_argument("--quick", action="store_true",
                        help="while tuning: no stock run, no sequential bare run (no speed-up figure)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="aisec-bench-"))
    submitted = base / "submitted"
    kinds = make_class(args.lab, args.n, submitted)
    env = dict(os.environ, AISEC_COURSE_ROOT=str(ROOT))
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    os.environ["PATH"] = env["PATH"]

    stock_ws = base / "stock"
    shutil.copytree(submitted, stock_ws / "submitted")
    os.environ["AISEC_WORKSPACE"] = str(stock_ws)
    stock = None if args.quick else run_stock(args.lab, stock_ws, dict(env, AISEC_WORKSPACE=str(stock_ws)))
    if stock is not None:
        print(f"stock sequential nbgrader autograde: {stock:.1f} s", flush=True)

    bare_ws = base / "bare"
    os.environ["AISEC_WORKSPACE"] = str(bare_ws)
    saved_env = dict(os.environ)
    bare_seq = None if args.skip_bare or args.quick else run_bare(args.lab, submitted, bare_ws, 1)
    bare_par = None if args.skip_bare else run_bare(args.lab, submitted, bare_ws, args.workers)
    os.environ.clear()
    os.environ.update(saved_env)
    if bare_seq is not None:
        print(f"bare execution, sequential:         {bare_seq:.1f} s", flush=True)
    if bare_par is not None:
        print(f"bare execution, {args.workers} at a time:       {bare_par:.1f} s", flush=True)

    pipe_ws = base / "pipeline"
    shutil.copytree(submitted, pipe_ws / "submitted")
    os.environ["AISEC_WORKSPACE"] = str(pipe_ws)
    from aisec.grading.pipeline import Grader

    grader = Grader(args.lab, ws=pipe_ws)
    grader.prepare()  # registration and reference run, not timed (as for stock)
    start, ticks = time.monotonic(), cpu_ticks()
    summary = grader.grade_class(workers=args.workers, progress=True)
    pipeline = time.monotonic() - start
    UTILISATION["pipeline"] = utilisation(ticks, cpu_ticks())
    print(summary.render())
    print(f"pipeline ({args.workers} workers):             {pipeline:.1f} s", flush=True)

    hang_seconds = None
    if args.hang:
        hang_ws = base / "pipeline-hang"
        hang_kinds = make_class(args.lab, args.n, hang_ws / "submitted", hang=args.hang)
        os.environ["AISEC_WORKSPACE"] = str(hang_ws)
        hang_grader = Grader(args.lab, ws=hang_ws)
        hang_grader.prepare()
        start = time.monotonic()
        hang_summary = hang_grader.grade_class(workers=args.workers, progress=True)
        hang_seconds = time.monotonic() - start
        print(f"pipeline, {args.hang} hanging of {args.n}:      {hang_seconds:.1f} s "
              f"({hang_seconds / pipeline:.2f}x the class without them)", flush=True)
        for o in hang_summary.outcomes:
            if hang_kinds[o.student] == "hang":
                print(f"  {o.student}: {o.score:g}/{o.max_score:g} {'; '.join(o.notes)}", flush=True)

    stock_scores = scores("sqlite:///" + str(stock_ws / "gradebook.db"), args.lab) if stock is not None else {}
    pipe_scores = scores("sqlite:///" + str(pipe_ws / "gradebook.db"), args.lab)
    honest = [s for s, k in kinds.items() if k.startswith("honest")]
    same = all(stock_scores.get(s) == pipe_scores.get(s) for s in honest)
    result = {
        "lab": args.lab, "submissions": args.n, "workers": args.workers, "cores": os.cpu_count(),
        "stock_seconds": None if stock is None else round(stock, 1), "pipeline_seconds": round(pipeline, 1),
        "bare_sequential_seconds": None if bare_seq is None else round(bare_seq, 1),
        "bare_parallel_seconds": None if bare_par is None else round(bare_par, 1),
        "speedup": None if stock is None else round(stock / pipeline, 2),
        # The grader's overhead: the pipeline against the same notebooks executed bare on the
        # same workers; and against perfect scaling of the sequential bare run (a bound no
        # executor reaches on this machine: two kernels on two cores slow each other down).
        "overhead_vs_parallel_bare": None if bare_par is None else round(pipeline / bare_par, 2),
        "overhead_vs_perfectly_scaled_bare": None if bare_seq is None else round(pipeline / (bare_seq / args.workers), 2),
        "bare_parallel_scaling": None if bare_seq is None else round(bare_seq / bare_par, 2),
        "honest_scores_identical": same if stock is not None else None,
        "hanging": args.hang, "pipeline_with_hanging_seconds": None if hang_seconds is None else round(hang_seconds, 1),
        "hanging_slowdown": None if hang_seconds is None else round(hang_seconds / pipeline, 2),
        "cpu_utilisation": UTILISATION,
        "kinds": kinds, "stock_scores": stock_scores, "pipeline_scores": pipe_scores,
        "load_average_at_end": os.getloadavg(),
    }
    out = ROOT / "artifacts" / ("benchmark-quick.json" if args.quick else "benchmark.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k not in ("kinds", "stock_scores", "pipeline_scores")}, indent=1))
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
