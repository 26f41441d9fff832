"""nbgrader configuration of the AI security course.

Layout: instructor sources in ``solutions/`` (solutions and hidden tests), student versions
in ``labs/`` (generated, committed), everything about students (submissions, autograded and
feedback folders, the gradebook, the reference runs) in an ignored workspace, ``.workspace/``
by default or wherever ``AISEC_WORKSPACE`` points. ``AISEC_GRADEBOOK_URL`` switches the
gradebook to another SQLAlchemy URL (e.g. PostgreSQL for several grading hosts).
"""

import os

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKSPACE = os.path.abspath(os.environ.get("AISEC_WORKSPACE") or os.path.join(ROOT, ".workspace"))

# nbgrader opens the gradebook before it creates folders: make the workspace exist first.
os.makedirs(WORKSPACE, exist_ok=True)

c.CourseDirectory.root = ROOT
c.CourseDirectory.course_id = "aisec"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "labs"
c.CourseDirectory.submitted_directory = os.path.join(WORKSPACE, "submitted")
c.CourseDirectory.autograded_directory = os.path.join(WORKSPACE, "autograded")
c.CourseDirectory.feedback_directory = os.path.join(WORKSPACE, "feedback")
c.CourseDirectory.solution_directory = os.path.join(WORKSPACE, "solution")
c.CourseDirectory.source_with_tests_directory = os.path.join(WORKSPACE, "source_with_tests")
c.CourseDirectory.db_url = os.environ.get("AISEC_GRADEBOOK_URL") or "sqlite:///" + os.path.join(WORKSPACE, "gradebook.db")
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".cache"]
c.Exchange.root = os.environ.get("AISEC_EXCHANGE") or os.path.join(WORKSPACE, "exchange")

# Every lab opens with the same header: who, how to run, how to check.
c.IncludeHeaderFooter.header = os.path.join(ROOT, "grader", "header.ipynb")
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Autograding: execute in the sandbox (aisec.grading.sandbox: bubblewrap, no network, no view of
# the course), then judge every test cell by the values its hidden tests recorded, compared
# outside the student's kernel with the reference run (aisec.grading.judge). Plain
# `nbgrader autograde` runs serially through the same sandbox; `aisec-grade class` runs the
# sandboxes in parallel on Dask and loads their outputs here (see grader/GRADING.md).
c.SandboxExecute.source_root = os.path.join(ROOT, "solutions")
c.SandboxExecute.release_root = os.path.join(ROOT, "labs")
c.SandboxExecute.runs_dir = os.path.join(WORKSPACE, "grading", "runs")
c.SandboxExecute.reference_dir = os.path.join(WORKSPACE, "references")
# Only for trusted work on hosts without user namespaces: never for a class.
c.SandboxExecute.allow_unsandboxed = os.environ.get("AISEC_ALLOW_UNSANDBOXED") == "1"
# Tests cells deleted by a student come back from the gradebook's copy of the source.
c.OverwriteCells.add_missing_cells = True
# Sandbox limits: their defaults live in aisec.grading.sandbox.Limits; the environment variables
# below override them for the course, lab_limits per lab.
_LIMIT_VARIABLES = {"memory_mb": "AISEC_MEMORY_MB", "sandbox_memory_mb": "AISEC_SANDBOX_MEMORY_MB",
                    "wall_seconds": "AISEC_WALL_SECONDS", "cell_timeout": "AISEC_CELL_TIMEOUT"}
c.GradingPipeline.limits = {k: int(os.environ[v]) for k, v in _LIMIT_VARIABLES.items() if os.environ.get(v)}
c.GradingPipeline.lab_limits = {
    "lab00_minimisation": {"wall_seconds": 300, "output_bytes": 2 * 1024 * 1024},
}
c.LimitOutput.max_lines = 1000
c.LimitOutput.max_traceback = 100
c.Autograde.autograde_preprocessors = [
    "aisec.grading.execute.SandboxExecute",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "aisec.grading.judge.JudgeRecords",
    "aisec.grading.feedback.AuthorFeedback",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
c.JudgeRecords.source_root = os.path.join(ROOT, "solutions")
c.JudgeRecords.reference_dir = os.path.join(WORKSPACE, "references")

# Feedback shows the grader's verdicts (AuthorFeedback wrote them at autograde time) and each test
# cell as released: never hidden test code, whatever the student's cells contain.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "aisec.grading.feedback.ReleasedTestSources",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
c.ReleasedTestSources.release_root = os.path.join(ROOT, "labs")
c.AuthorFeedback.verdicts_dir = os.path.join(WORKSPACE, "grading", "verdicts")
