"""Self-grading for a learner: the same pipeline, on one's own notebook, with hints.

    from aisec.grading.selfgrade import self_grade
    result = self_grade("lab00_minimisation")            # grades labs/lab00_minimisation/
    result = self_grade("lab00_minimisation", "my.ipynb")

The learner's notebook is sanitised (test cells restored), executed in the sandbox when the host
allows it (otherwise unsandboxed with a printed notice: it is the learner's own code) and judged
against the hidden tests' reference records. Only scores and the grader's verdict on each check (one line each)
come back: never hidden test code or reference values. Everything lives in a private workspace,
``<workspace>/self/<lab>/`` (its own SQLite gradebook), and the result is written to
``<workspace>/self/<lab>/result.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

from aisec.grading.common import course_root, workspace
from aisec.grading.sandbox import sandbox_status

STUDENT = "self"


def self_grade(lab: str, notebook: str | None = None, quiet: bool = True) -> dict[str, Any]:
    """Grade the learner's copy of ``lab`` (or ``notebook``); return and save the result dict."""
    from aisec.grading.pipeline import Grader

    root = course_root()
    base = workspace() / "self" / lab
    private = base / "nbgrader"
    if private.exists():
        shutil.rmtree(private)  # a fresh private gradebook: self-grading keeps no history
    usable, why = sandbox_status()
    if not usable:
        print(f"Notice: the grading sandbox cannot run on this machine ({why}). Your notebook runs without it: "
              "fine for your own code, but class grading refuses to do this.")
    grader = Grader(lab, ws=private, db_url="sqlite:///" + str(private / "gradebook.db"), allow_unsandboxed=True,
                    log=(lambda _m: None) if quiet else print)
    source = Path(notebook) if notebook else root / "labs" / lab / f"{grader.notebooks[0]}.ipynb"
    if not source.is_file():
        raise FileNotFoundError(f"no notebook at {source}")
    dest = grader.submitted / STUDENT / lab
    dest.mkdir(parents=True, exist_ok=True)
    name = f"{grader.notebooks[0]}.ipynb" if notebook or len(grader.notebooks) == 1 else None
    if name:
        shutil.copy2(source, dest / name)
    else:
        for nb in grader.notebooks:
            if (root / "labs" / lab / f"{nb}.ipynb").is_file():
                shutil.copy2(root / "labs" / lab / f"{nb}.ipynb", dest / f"{nb}.ipynb")
    # The reference records are shared with class grading (same cache, same sources).
    grader.reference_dir = workspace() / "references"
    grader.cfg.JudgeRecords.reference_dir = str(grader.reference_dir)
    summary = grader.grade_class(workers=1, progress=not quiet, local=True)
    outcome = summary.outcomes[0]
    result = {
        "lab": lab,
        "score": float(outcome.score),
        "max_score": float(outcome.max_score),
        "graded_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "questions": [
            {k: q[k] for k in ("grade_id", "points", "max_points", "passed", "checks", "feedback")}
            for q in outcome.questions
        ],
    }
    if outcome.status == "failed":
        result["error"] = "; ".join(outcome.notes)
    elif outcome.notes:
        result["notes"] = outcome.notes
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / "result.json.tmp"
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(base / "result.json")
    return result


def render(result: dict[str, Any]) -> str:
    """The result as text for a terminal or a notebook cell."""
    lines = [f"{result['lab']}: {result['score']:g} / {result['max_score']:g} automatic points"]
    for q in result["questions"]:
        mark = "✔" if q["passed"] else "✘"
        lines.append(f"  {mark} {q['grade_id']}: {q['points']:g}/{q['max_points']:g}")
        if not q["passed"]:
            lines += [f"      {line}" for line in q["feedback"]]
    if result.get("error"):
        lines.append(f"  could not grade: {result['error']}")
    for note in result.get("notes", []):
        lines.append(f"  note: {note}")
    lines.append("Written answers are graded by your instructor.")
    return "\n".join(lines)
