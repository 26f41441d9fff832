"""Self-grading and a progress overview for learners (the student side of the grading pipeline).

Two calls, for the two cells of ``course/my_progress.ipynb``:

* ``grade_lab("lab00_minimisation")`` grades the learner's own copy of a lab
  (``aisec.grading.selfgrade.self_grade``) and shows the score and one line of feedback per
  question: through the class's grading service on JupyterHub (``$AISEC_GRADING_SERVICE_URL``),
  with the hidden tests of a full copy of the course, or, in a student's copy without them, the
  visible checks only (no score). The hidden test code and the reference answers stay out of the
  notebook: only the judge's verdicts and hints are shown.
* ``show_progress()`` shows every lab of the course, question by question: passed, not passed, not
  graded yet, or graded by hand. It is an ipywidgets view (a bar and a table per lab), or a plain
  HTML table where widgets are not available.

Self-grading writes ``<workspace>/self/<lab>/result.json`` (workspace: ``$AISEC_WORKSPACE`` or
``.workspace/`` in the course folder); the overview only reads those files and the labs' grade
cells, so it is quick and never runs a notebook. Nothing here runs at import time.
"""

from __future__ import annotations

import html
import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Statuses of a question in the overview.
PASSED = "passed"
FAILED = "not passed"
NOT_GRADED = "not graded yet"
BY_HAND = "graded by hand"
# From a visible-only result (no hidden tests ran): what the visible checks say, not a grade.
VISIBLE_PASSED = "visible checks pass"
VISIBLE_FAILED = "visible checks fail"
VISIBLE_ONLY = "visible-only"

_SYMBOL = {PASSED: "✔", FAILED: "✘", NOT_GRADED: "…", BY_HAND: "✎", VISIBLE_PASSED: "◔", VISIBLE_FAILED: "✘"}
_COLOUR = {PASSED: "#1a7f37", FAILED: "#b35900", NOT_GRADED: "#57606a", BY_HAND: "#0969da",
           VISIBLE_PASSED: "#57606a", VISIBLE_FAILED: "#b35900"}


class ProgressError(RuntimeError):
    """Something the learner can fix; the message says what to do next."""


@dataclass(frozen=True)
class Question:
    """One graded cell of a lab, as the student version declares it."""

    grade_id: str
    max_points: float
    by_hand: bool

    @property
    def label(self) -> str:
        """``q1_luhn_test`` → ``q1_luhn``; reflections keep their id."""
        return self.grade_id[: -len("_test")] if self.grade_id.endswith("_test") else self.grade_id


@dataclass(frozen=True)
class QuestionStatus:
    """One row of the overview."""

    lab: str
    question: str
    status: str
    points: float | None
    max_points: float
    feedback: str = ""


@dataclass
class LabProgress:
    """One lab in the overview: its questions, and the latest self-grading result if any."""

    lab: str
    rows: list[QuestionStatus] = field(default_factory=list)
    score: float | None = None
    max_score: float = 0.0
    graded_at: str | None = None
    mode: str | None = None  # how the latest result was made: service | local | visible-only

    @property
    def visible_only(self) -> bool:
        return self.mode == VISIBLE_ONLY

    @property
    def autograded_max(self) -> float:
        return sum(r.max_points for r in self.rows if r.status != BY_HAND)

    @property
    def passed(self) -> int:
        return sum(r.status in (PASSED, VISIBLE_PASSED) for r in self.rows)


# ----------------------------------------------------------------------------- where things are


def _course_root() -> Path:
    """The learner's course folder (a student's copy has no grader configuration: not required)."""
    from aisec.grading.selfgrade import learner_root

    return learner_root()


def _workspace() -> Path:
    from aisec.grading.selfgrade import learner_workspace

    return learner_workspace()


def labs_dir(root: Path | None = None) -> Path:
    """The student versions of the labs: ``<course>/labs``."""
    return (root or _course_root()) / "labs"


def available_labs(root: Path | None = None) -> list[str]:
    """Every lab a learner has (folders of ``labs/`` holding a notebook), sorted."""
    folder = labs_dir(root)
    if not folder.is_dir():
        raise ProgressError(
            f"There is no labs/ folder in {folder.parent}. Open this notebook from the course folder "
            "(a clone of the course repository), or set AISEC_COURSE_ROOT to it."
        )
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))


def result_path(lab: str, workspace: Path | None = None) -> Path:
    """Where self-grading leaves the result of ``lab``."""
    return (workspace or _workspace()) / "self" / lab / "result.json"


# ----------------------------------------------------------------------------- reading


def lab_questions(lab: str, root: Path | None = None) -> list[Question]:
    """The graded cells of ``lab``'s student notebook(s), in notebook order."""
    folder = labs_dir(root) / lab
    notebooks = sorted(folder.glob("*.ipynb")) if folder.is_dir() else []
    if not notebooks:
        known = ", ".join(available_labs(root)) or "none"
        raise ProgressError(f"There is no lab called {lab!r}. The labs are: {known}. Check the spelling.")
    questions: list[Question] = []
    import nbformat  # here, not at import time: the lab's first cell need not pay for it

    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("grade") and meta.get("grade_id"):
                questions.append(
                    Question(
                        grade_id=str(meta["grade_id"]),
                        max_points=float(meta.get("points", 0) or 0),
                        by_hand=cell.cell_type == "markdown" or bool(meta.get("task")),
                    )
                )
    return questions


def load_result(lab: str, workspace: Path | None = None) -> dict[str, Any] | None:
    """The latest self-grading result of ``lab``, or None if it was never self-graded."""
    path = result_path(lab, workspace)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ProgressError(
            f"The saved grade of {lab} ({path}) cannot be read ({exc}). Grade the lab again to replace it."
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
        raise ProgressError(f"The saved grade of {lab} ({path}) is not a grading result. Grade the lab again.")
    return data


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def lab_progress(lab: str, questions: Sequence[Question], result: Mapping[str, Any] | None) -> LabProgress:
    """Merge a lab's grade cells with its latest result (pure: no files)."""
    by_id: dict[str, Mapping[str, Any]] = {}
    if result is not None:
        for q in result.get("questions", []):
            if isinstance(q, Mapping) and isinstance(q.get("grade_id"), str):
                by_id[q["grade_id"]] = q
    progress = LabProgress(lab=lab, max_score=sum(q.max_points for q in questions))
    if result is not None:
        progress.score = _number(result.get("score"))
        progress.graded_at = str(result.get("graded_at") or "") or None
        progress.mode = str(result.get("mode") or "") or None
    for q in questions:
        graded = by_id.get(q.grade_id)
        feedback = _feedback_text(graded.get("feedback")) if graded else ""
        points = _number(graded.get("points")) if graded else None
        if q.by_hand:
            status = BY_HAND
            feedback = feedback or "Your instructor grades written answers by hand."
        elif graded is None:
            status = NOT_GRADED
        elif progress.visible_only:
            status = VISIBLE_PASSED if graded.get("passed") is True else VISIBLE_FAILED
        else:
            status = PASSED if graded.get("passed") is True else FAILED
        progress.rows.append(QuestionStatus(lab, q.label, status, points, q.max_points, feedback))
    return progress


def collect_progress(labs: Sequence[str] | None = None) -> list[LabProgress]:
    """The progress of every lab (or of ``labs``), from the labs' grade cells and saved results."""
    root = _course_root()
    ws = _workspace()
    return [lab_progress(lab, lab_questions(lab, root), load_result(lab, ws)) for lab in (labs or available_labs(root))]


def progress_frame(progress: Sequence[LabProgress]):  # -> pandas.DataFrame
    """One row per question: lab, question, status, points, max_points, feedback."""
    import pandas as pd

    rows = [
        {
            "lab": r.lab,
            "question": r.question,
            "status": f"{_SYMBOL[r.status]} {r.status}",
            "points": r.points,
            "max_points": r.max_points,
            "feedback": r.feedback,
        }
        for lab in progress
        for r in lab.rows
    ]
    return pd.DataFrame(rows, columns=["lab", "question", "status", "points", "max_points", "feedback"])


# ----------------------------------------------------------------------------- rendering


def _fmt(points: float | None) -> str:
    if points is None:
        return "–"
    return f"{points:g}"


def _rows_html(rows: Sequence[QuestionStatus]) -> str:
    body = "".join(
        "<tr>"
        f"<td style='text-align:left'>{html.escape(r.question)}</td>"
        f"<td style='text-align:left;color:{_COLOUR[r.status]}'>{_SYMBOL[r.status]} {html.escape(r.status)}</td>"
        f"<td>{_fmt(r.points)} / {_fmt(r.max_points)}</td>"
        f"<td style='text-align:left'>{html.escape(r.feedback).replace(chr(10), '<br>')}</td>"
        "</tr>"
        for r in rows
    )
    return (
        "<table class='aisec-progress-table'>"
        "<thead><tr><th scope='col'>question</th><th scope='col'>status</th><th scope='col'>points</th>"
        "<th scope='col'>feedback</th></tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def _by_hand_note(p: LabProgress) -> str:
    by_hand = p.max_score - p.autograded_max
    return f", plus {by_hand:g} points graded by hand" if by_hand else ""


def _lab_heading(p: LabProgress) -> str:
    auto = sum(1 for r in p.rows if r.status != BY_HAND)
    if p.visible_only:
        return (f"{p.lab}: visible checks only, no score: {p.passed}/{auto} autograded questions pass their "
                "visible checks" + (f" (checked {p.graded_at})" if p.graded_at else ""))
    if p.score is None:
        return f"{p.lab}: not graded yet ({auto} autograded questions, {p.autograded_max:g} points{_by_hand_note(p)})"
    return (
        f"{p.lab}: {p.score:g} / {p.autograded_max:g} automatic points{_by_hand_note(p)}; "
        f"{p.passed}/{auto} autograded questions passed" + (f" (graded {p.graded_at})" if p.graded_at else "")
    )


def progress_html(progress: Sequence[LabProgress]) -> str:
    """The overview as one HTML fragment (headings and tables), for places without widgets."""
    parts = ["<div class='aisec-progress'>"]
    for p in progress:
        parts.append(f"<h4>{html.escape(_lab_heading(p))}</h4>{_rows_html(p.rows)}")
    parts.append("</div>")
    return "".join(parts)


def progress_widget(progress: Sequence[LabProgress]):  # -> ipywidgets.VBox
    """The overview as ipywidgets: per lab, a labelled progress bar and a table of its questions."""
    import ipywidgets as widgets

    children = [widgets.HTML("<h3>Your progress</h3>")]
    for p in progress:
        score = p.score or 0.0
        bar = widgets.FloatProgress(
            value=min(score, p.autograded_max),
            min=0.0,
            max=max(p.autograded_max, 1.0),
            description=p.lab,
            bar_style="success" if p.score is not None and score >= p.autograded_max else "info",
            style={"description_width": "initial"},
            layout=widgets.Layout(width="60%"),
        )
        bar.add_class("aisec-progress-bar")
        caption = widgets.HTML(html.escape(_lab_heading(p)))
        # The questions fold away for labs not graded yet, so the overview fits on a screen.
        questions = widgets.Accordion(
            children=[widgets.HTML(_rows_html(p.rows))],
            titles=(f"{p.lab}: questions",),
            selected_index=None if p.score is None else 0,
        )
        children.append(widgets.VBox([bar, caption, questions]))
    box = widgets.VBox(children)
    box.add_class("aisec-progress")
    return box


def _display(obj: Any) -> None:
    from IPython.display import display

    display(obj)


def _message_html(text: str, *, error: bool) -> str:
    colour = "#b35900" if error else "#1a7f37"
    return (
        f"<div class='aisec-message' role='{'alert' if error else 'status'}' "
        f"style='border-left:4px solid {colour};padding:4px 8px'>{html.escape(text)}</div>"
    )


def show_progress(labs: Sequence[str] | None = None, *, widget: bool = True) -> list[LabProgress]:
    """Display the progress overview (ipywidgets, or an HTML table if ``widget`` is False or missing).

    Problems are shown as a message that says what to do; the progress is returned for scripts.
    """
    from IPython.display import HTML

    try:
        progress = collect_progress(labs)
    except ProgressError as exc:
        _display(HTML(_message_html(str(exc), error=True)))
        return []
    if widget:
        try:
            view = progress_widget(progress)
        except ImportError:
            view = HTML(progress_html(progress) + "<p>(Install ipywidgets for the interactive view.)</p>")
    else:
        view = HTML(progress_html(progress))
    _display(view)
    return progress


# ----------------------------------------------------------------------------- self-grading

SelfGrade = Callable[..., dict[str, Any]]


def _self_grade_function() -> SelfGrade:
    try:
        from aisec.grading.selfgrade import self_grade
    except ImportError as exc:
        raise ProgressError(
            "Self-grading is not available in this installation (aisec.grading.selfgrade is missing). "
            "Update the course (git pull), then reinstall it: `.venv/bin/pip install -e .`."
        ) from exc
    return self_grade


def _feedback_text(feedback: Any) -> str:
    """A question's feedback as text: the grader's verdict lines (one check a line), or older text."""
    if isinstance(feedback, list):
        return "\n".join(str(line) for line in feedback)
    return str(feedback or "")


def result_html(result: Mapping[str, Any], questions: Sequence[Question]) -> str:
    """Score and per-question feedback of one self-grading result, as HTML."""
    p = lab_progress(str(result.get("lab", "")), questions, result)
    score = _number(result.get("score"))
    max_score = _number(result.get("max_score"))
    if p.visible_only:
        headline = html.escape(_lab_heading(p))
        notes = (
            f"<p>{html.escape(str(result.get('hint') or 'Hidden tests were not run: there is no score.'))} "
            "Fix a ✘, save the notebook (Ctrl+S), and check again.</p>"
        )
    else:
        via = " (graded by your class's grading service)" if result.get("mode") == "service" else ""
        headline = html.escape(
            f"{p.lab}: {_fmt(score)} / {_fmt(max_score if max_score is not None else p.autograded_max)} "
            f"automatic points{_by_hand_note(p)}{via}"
        )
        notes = (
            "<p>Hidden tests ran your code on other data and seeds. Written answers are graded by your "
            "instructor, so they score 0 here. Fix a ✘, save the notebook (Ctrl+S), and grade again.</p>"
        )
    extra = ""
    if result.get("error"):
        extra += _message_html(
            f"Your notebook could not be graded completely: {result['error']}. Run it top to bottom "
            "(Kernel → Restart Kernel and Run All Cells), fix the first error, save, and grade again.",
            error=True,
        )
    for note in result.get("notes") or []:
        extra += f"<p>Note: {html.escape(str(note))}</p>"
    return f"<div class='aisec-selfgrade'><h3>{headline}</h3>{extra}{_rows_html(p.rows)}{notes}</div>"


def _from_service(exc: BaseException) -> bool:
    """Whether ``exc`` is the grading service's refusal (its message is meant for the learner)."""
    try:
        from aisec.grading.selfgrade import GradingServiceError
    except ImportError:
        return False
    return isinstance(exc, GradingServiceError)


def _grading_message(lab: str) -> str:
    """What is about to happen, for the mode ``self_grade`` will choose."""
    from aisec.grading.selfgrade import SERVICE_URL_ENV, has_hidden_tests

    if os.environ.get(SERVICE_URL_ENV):
        return f"Sending {lab} to your class's grading service; this takes a minute or two…"
    if has_hidden_tests(lab):
        return f"Grading {lab} with the hidden tests; this takes a minute…"
    return f"Running {lab} and its visible checks (this copy of the course has no hidden tests)…"


def grade_lab(lab: str, notebook: str | None = None, *, self_grade: SelfGrade | None = None) -> dict[str, Any] | None:
    """Grade the learner's own copy of ``lab`` (the mode ``self_grade`` chooses) and show the result.

    ``notebook`` is the learner's notebook (default: the one in ``labs/<lab>/``). Save it first:
    the grader reads the file on disk, not the open editor. Returns the result, or None after
    showing what went wrong and what to do.
    """
    from IPython.display import HTML

    try:
        questions = lab_questions(lab)
        grade = self_grade or _self_grade_function()
        if notebook is not None and not Path(notebook).is_file():
            raise ProgressError(f"There is no notebook at {notebook}. Give the path of your saved lab notebook.")
        _display(HTML(_message_html(_grading_message(lab), error=False)))
        with warnings.catch_warnings():
            # The grading machinery's own warnings (SQLAlchemy, nbgrader) are not the learner's business;
            # the learner's code runs in a separate kernel, whose output the result reports.
            warnings.simplefilter("ignore")
            result = grade(lab, notebook)
    except ProgressError as exc:
        _display(HTML(_message_html(str(exc), error=True)))
        return None
    except (FileNotFoundError, ValueError, RuntimeError, SystemExit) as exc:
        if _from_service(exc):
            # The service's refusal already says what to do (wait, restart the server, ask the instructor).
            _display(HTML(_message_html(f"Grading {lab} failed: {exc}", error=True)))
            return None
        # SystemExit: the grading command's own friendly exit, raised inside a notebook.
        _display(
            HTML(
                _message_html(
                    f"Grading {lab} failed: {exc}. Save your notebook, check that it runs top to bottom "
                    "(Kernel → Restart Kernel and Run All Cells), then grade again.",
                    error=True,
                )
            )
        )
        return None
    _display(HTML(result_html(result, questions)))
    return result
