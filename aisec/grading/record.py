"""Record: grade with nbgrader into the gradebook, written by the driver process only.

nbgrader's ``autograde`` runs with ``SandboxExecute`` loading the checkpointed run, then the
judge, the grader-authored feedback and ``SaveAutoGrades``. The outcome of a submission (its score
and each question's verdict, read back as data) is what the driver reports and checkpoints.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traitlets.config import Config

from aisec.grading.verdicts import CellVerdict


@dataclass
class Outcome:
    """How one submission ended: graded (with a score) or failed (with the reason)."""

    student: str
    status: str  # graded | failed | skipped (already graded, unchanged)
    score: float = 0.0
    max_score: float = 0.0
    notes: list[str] = field(default_factory=list)
    questions: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    digest: str = ""


@dataclass
class Summary:
    lab: str
    outcomes: list[Outcome]
    seconds: float

    @property
    def graded(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status in ("graded", "skipped")]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def render(self) -> str:
        lines = [f"{self.lab}: {len(self.graded)} graded, {len(self.failed)} failed, in {self.seconds:.1f} s"]
        for o in sorted(self.outcomes, key=lambda o: o.student):
            tag = "FAILED" if o.status == "failed" else f"{o.score:g}/{o.max_score:g}"
            note = f"  ({'; '.join(o.notes)})" if o.notes else ""
            lines.append(f"  {o.student:<24} {tag}{' (unchanged, not regraded)' if o.status == 'skipped' else ''}{note}")
        return "\n".join(lines)


def autograde(api: Any, lab: str, student: str) -> str | None:
    """Run nbgrader's autograde of one staged submission; None on success, else the last error line."""
    with warnings.catch_warnings():
        # nbgrader 0.9 triggers SQLAlchemy autoflush warnings on every autograde: noise.
        warnings.filterwarnings("ignore", module="nbgrader")
        warnings.filterwarnings("ignore", message=".*not in session.*")
        result = api.autograde(lab, student, force=True, create=True)
    if result.get("success"):
        return None
    err = (result.get("error") or result.get("log") or "unknown error").strip().splitlines()
    return err[-1] if err else "unknown error"


def read_grades(cfg: Config, lab: str, student: str, verdicts_dir: Path) -> Outcome:
    """Score and per-question verdicts of a graded submission (gradebook + the judge's verdict files)."""
    from nbgrader.api import Gradebook

    questions: list[dict[str, Any]] = []
    auto_max = auto_score = 0.0
    with Gradebook(cfg.CourseDirectory.db_url, cfg.CourseDirectory.course_id) as gb:
        sub = gb.find_submission(lab, student)
        for nb_sub in sub.notebooks:
            path = verdicts_dir / student / lab / f"{nb_sub.name}.json"
            verdicts = json.loads(path.read_text()) if path.is_file() else {}
            for grade in nb_sub.grades:
                if grade.cell_type != "code":
                    continue  # written answers: graded by hand in formgrader
                score = float(grade.score or 0.0)
                auto_max += grade.max_score
                auto_score += score
                saved = verdicts.get(grade.name)
                verdict = CellVerdict.from_json(saved) if saved else CellVerdict(grade.name)
                questions.append({
                    "grade_id": grade.name, "points": score, "max_points": float(grade.max_score),
                    "passed": score >= grade.max_score, "checks": verdict.to_json()["checks"],
                    "feedback": verdict.lines(),
                })
    return Outcome(student, "graded", score=auto_score, max_score=auto_max, questions=questions)
