"""Write a student-only copy of the course, and prove it clean with a leak scan.

    aisec-grade publish ../aisec-students            # a new, empty (or absent) folder
    aisec-grade publish ../aisec-students --force    # replace an earlier copy (its .git is kept)

The copy holds what a learner needs: ``course/`` (without the instructor guide), ``labs/`` released
afresh from ``solutions/`` (and checked equal to the committed ``labs/``), the ``aisec`` package
without the grader's scorers, ``pyproject.toml``, ``environment.yml``, ``postBuild``, a student
``course.sh``, the student mode of ``grader/modes/``, a student nbgrader configuration (by which
the ``aisec`` tools find the course) and a generated README. It is built in a staging folder next to
DEST and moved into place only when :func:`scan` finds nothing: a failed scan leaves DEST as it was.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from aisec.grading.common import course_root, lab_ids, nbgrader_meta

# ------------------------------------------------------------------------ what a copy holds

MARKER_FILE = ".aisec-student-copy"  # names a folder as a copy, so that --force may replace it
COPIED_FILES = ("pyproject.toml", "environment.yml", "postBuild")
STUDENT_MODES = (Path("grader") / "modes" / "student", Path("grader") / "modes" / "README.md")
INSTRUCTOR_ONLY = {Path("course") / "instructor_guide.md"}
# The scorers rebuild the hidden tests' targets from the reference run's records (which stay with
# the instructor) and hold the grader's own attacks (lab03's FGSM and PGD answer questions 1 and 2):
# the copy gets an empty registry instead. publish.py itself is the instructor's tool.
PACKAGE_LEFT_OUT = (Path("aisec") / "grading" / "scorers", Path("aisec") / "grading" / "publish.py")
JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", ".DS_Store")
# Paths the copied scripts run (course.sh runs tools/torch_index.py, for one) come along.
SCRIPT_PATH_RE = re.compile(r"(?<![\w.-])((?:tools|grader|course|labs|aisec)/[\w./-]*[\w])")

# ----------------------------------------------------------------------- what a scan refuses

MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
SOLUTION_RE = re.compile(r"### BEGIN SOLUTION(.*?)### END SOLUTION", re.S)
HIDDEN_RE = re.compile(r"### BEGIN HIDDEN TESTS(.*?)### END HIDDEN TESTS", re.S)
RECORD_CALL_RE = re.compile(r"\brecord\s*\(")
FORBIDDEN_PARTS = {"solutions", "tests", "benchmarks", "references", ".workspace", ".git", ".cache", ".venv",
                   "artifacts", "__pycache__", ".ipynb_checkpoints", ".pytest_cache", "build", "dist"}
REFERENCE_CACHE_RE = re.compile(r"\.v\d+\.json$")  # aisec.grading.reference writes <nb>.<digest>.v2.json
INSTRUCTOR_DOCS = {Path("grader") / "AUTHORING.md", Path("grader") / "GRADING.md", Path("grader") / "PUBLISHING.md",
                   Path("grader") / "header.ipynb",
                   Path("grader") / "jupyterhub_config.py", Path("nbgrader_config.py"), *INSTRUCTOR_ONLY}
IMAGES = {".png", ".jpg", ".jpeg", ".gif", ".webp"}
RELEASED_CELL_METADATA = {"nbgrader", "deletable", "editable", "tags", "jupyter", "collapsed", "scrolled"}
# Lines of a solution that the course shows on purpose outside the labs: idioms the aisec package
# uses itself, and lesson code a lab asks students to apply. Reviewed one by one; any other solution
# line outside labs/ fails the scan (inside labs/ none is allowed).
TAUGHT_LINES = frozenset({
    "with torch.no_grad():",
    "for _ in range(epochs):",
    "for _ in range(steps):",
    "for c in np.unique(y):",
    "return x_adv.detach()",
    "super().__init__(convert_charrefs=True)",
    "allowed = {h.lower() for h in allowed_hosts}",  # aisec.lab01.assistant's leak finder
    "logp = torch.log_softmax(logits.float(), dim=-1)",  # aisec.llm's scoring
    "centred = feats[members] - feats[members].mean(axis=0)",  # lesson 4: spectral signatures
    "_, _, vt = np.linalg.svd(centred, full_matrices=False)",
    "known = dose_labels(people)",  # lesson 2: attribute inference
    '"email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}",',  # lesson 0: PII patterns
    '"national_id": r"\\b\\d{3}-\\d{2}-\\d{4}\\b",',
    'ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")',  # lesson 5: Wilson intervals
    "from scipy.optimize import minimize",  # lesson 6: DLG with L-BFGS
    "norm = float(np.linalg.norm(update))",  # aisec.lab06.checks measures the student's update
    'for rng in aff.get("ranges", []):',  # aisec.lab07 walks OSV records (the lab describes their structure)
    'if rng["type"] == "ECOSYSTEM":',
    "for name, version in pins.items():",
    'meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))',  # aisec.lab07.wheels reads a wheel's name
})
# Lines that name a tool but say nothing of how an answer uses it: imports of other packages than the
# course's own, and ``except SomeError:`` clauses.
IDIOM_RE = re.compile(r"(?:import [\w.]+(?: as \w+)?|from (?!aisec\b)[\w.]+ import [\w, ]+|except [\w.]+:)")


# Seeding a generator from a variable (``rng = np.random.default_rng(seed)``) tells nothing; a literal
# seed (a hidden test's ``torch.manual_seed(4242)``) or ``SEED + 1`` would, and does not match.
SEEDING_RE = re.compile(
    r"(?:\w+ = )?(?:np\.random\.default_rng|torch\.manual_seed|torch\.Generator\(\)\.manual_seed)"
    r"\([A-Za-z_]\w*\)")


def _telling(line: str, in_labs: bool) -> bool:
    """Whether a solution line found in a file of the copy gives something away there."""
    if IDIOM_RE.fullmatch(line):
        return False
    return in_labs or (line not in TAUGHT_LINES and not SEEDING_RE.fullmatch(line))


class PublishError(RuntimeError):
    """The copy cannot be written (bad destination, labs out of sync, or a leak)."""


@dataclass(frozen=True)
class Finding:
    """One thing the leak scan refuses: a file of the copy, and what in it."""

    path: str
    what: str

    def __str__(self) -> str:
        return f"{self.path}: {self.what}"


@dataclass(frozen=True)
class Published:
    """What :func:`publish` wrote."""

    dest: Path
    files: int
    size: int
    labs: list[str]


# ------------------------------------------------------------------------- secret lines


def secret_lines(nb: Any, min_len: int = 20) -> set[str]:
    """Lines of solutions, hidden tests and model answers that appear nowhere else in the source.

    These must never reach the student version. Short or generic lines (``return out``) are left
    out because they legitimately occur in given code too.
    """
    secret: set[str] = set()
    public: set[str] = set()
    for cell in nb.cells:
        src = cell.source
        regions = SOLUTION_RE.findall(src) + HIDDEN_RE.findall(src)
        if cell.cell_type == "markdown" and nbgrader_meta(cell).get("solution") and not regions:
            regions = [src]  # a model answer: nbgrader replaces the whole cell
        rest = HIDDEN_RE.sub("", SOLUTION_RE.sub("", src)) if regions != [src] else ""
        for region in regions:
            secret.update(line.strip() for line in region.splitlines())
        public.update(line.strip() for line in rest.splitlines())
    return {line for line in secret - public if len(line) >= min_len}


def course_secrets(root: Path) -> dict[str, set[str]]:
    """{lab: its secret lines}, from every source notebook in ``root/solutions``."""
    secrets: dict[str, set[str]] = {}
    for lab in sorted(p for p in (root / "solutions").iterdir() if p.is_dir()):
        for source in lab.glob("*.ipynb"):
            secrets.setdefault(lab.name, set()).update(secret_lines(nbformat.read(source, as_version=4)))
    return secrets


# ------------------------------------------------------------------------------ the scan


def _notebook_text(path: Path) -> str:
    """Every cell's source and text output, one after the other: what a reader of the notebook sees
    (the raw JSON escapes quotes and backslashes, which would hide a line from a plain search)."""
    nb = nbformat.read(path, as_version=4)
    parts = [cell.source for cell in nb.cells]
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(str(out.get("text", "")))
            parts += [str(v) for v in out.get("data", {}).values()]
    return "\n".join(parts)


def _readable_text(path: Path) -> str:
    """The file's text (for a notebook, plus its cells as text); ValueError when it cannot be read
    as such (binary, or a notebook nbformat cannot read)."""
    data = path.read_bytes()
    if b"\0" in data:
        raise ValueError("a binary file")
    text = data.decode("utf-8", errors="replace")
    if path.suffix == ".ipynb":
        try:
            text += "\n" + _notebook_text(path)
        except (ValueError, KeyError, AttributeError) as exc:
            raise ValueError(f"not a readable notebook ({exc})") from exc
    return text


def _path_findings(rel: Path, instructor_config: bytes, tree: Path) -> list[Finding]:
    """Files that are no student's business, by where they are and what they are."""
    found = []
    forbidden = FORBIDDEN_PARTS.intersection(rel.parts)
    if forbidden:
        found.append(Finding(str(rel), f"inside {sorted(forbidden)[0]}/, which stays with the instructor"))
    if REFERENCE_CACHE_RE.search(rel.name):
        found.append(Finding(str(rel), "a reference-run cache (the hidden tests' expected values)"))
    if rel in INSTRUCTOR_DOCS:
        found.append(Finding(str(rel), "an instructor document or configuration"))
    if rel == Path("grader") / "nbgrader_config.py" and (tree / rel).read_bytes() == instructor_config:
        found.append(Finding(str(rel), "the instructor's nbgrader configuration"))
    if rel.suffix == ".json":
        try:
            data = json.loads((tree / rel).read_text())
        except (UnicodeDecodeError, json.JSONDecodeError):
            data = None
        if isinstance(data, dict) and {"records", "cell_seconds"} <= set(data):
            found.append(Finding(str(rel), "reference records (the hidden tests' expected values)"))
    return found


def _python_findings(rel: str, text: str) -> list[Finding]:
    """In package code the markers and ``record`` may be named (to find them, to define it); a
    marker *line* or a *call* of record is a copied solution or hidden test."""
    found = [Finding(rel, f"an nbgrader marker line {line.strip()!r}") for line in text.splitlines()
             if line.strip().lstrip("#").strip().startswith(MARKERS)]
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return found + ([Finding(rel, "a record( call")] if RECORD_CALL_RE.search(text) else [])
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if name == "record":
                found.append(Finding(rel, f"a record( call on line {node.lineno} (hidden tests record)"))
    return found


def _text_findings(rel: str, text: str) -> list[Finding]:
    """Anywhere else (notebooks, docs, scripts) a marker or ``record(`` is a leak outright."""
    found = [Finding(rel, f"the nbgrader marker {marker!r}") for marker in MARKERS if marker in text]
    if RECORD_CALL_RE.search(text):
        found.append(Finding(rel, "a record( call (hidden tests record)"))
    return found


def _secret_findings(rel: Path, text: str, secrets: dict[str, set[str]]) -> list[Finding]:
    """Solution, hidden-test and model-answer lines; outside labs/ the reviewed TAUGHT_LINES and
    seeding lines pass."""
    in_labs = rel.parts[:1] == ("labs",)
    found = []
    for lab, lines in secrets.items():
        leaked = sorted(line for line in lines if line in text and _telling(line, in_labs))
        if leaked:
            shown = "; ".join(repr(line) for line in leaked[:3])
            found.append(Finding(str(rel), f"{len(leaked)} line(s) of {lab}'s solutions or hidden tests: {shown}"))
    return found


def _released_notebook_findings(rel: Path, path: Path) -> list[Finding]:
    """A released lab notebook carries no outputs, no execution counts and no stray cell metadata."""
    found = []
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.get("outputs") or cell.get("execution_count"):
            found.append(Finding(str(rel), f"cell {cell.get('id')} has outputs or an execution count"))
        extra = sorted(set(cell.get("metadata", {})) - RELEASED_CELL_METADATA)
        if extra:
            found.append(Finding(str(rel), f"cell {cell.get('id')} has unexpected metadata {extra}"))
    return found


def _script_findings(tree: Path) -> list[Finding]:
    """Files the copy's scripts run or serve must be in the copy, or it would not install or open."""
    found = []
    for script in ("course.sh", "postBuild"):
        path = tree / script
        if not path.is_file():
            found.append(Finding(script, "missing: the copy would not install"))
            continue
        for ref in sorted(set(SCRIPT_PATH_RE.findall(path.read_text()))):
            if not (tree / ref).exists():
                found.append(Finding(script, f"refers to {ref}, which the copy does not have"))
    return found


def scan(tree: Path, root: Path | None = None) -> list[Finding]:
    """Every reason the student copy at ``tree`` is not fit to publish (empty: clean).

    Looks at every file: its place (solutions/, tests/, references/, reference caches, instructor
    documents), nbgrader markers, ``record(`` calls, lines of the solutions and hidden tests of
    ``root/solutions`` (and model answers), and, for released labs, outputs and cell metadata.
    """
    root = root or course_root()
    secrets = course_secrets(root)
    if not any(secrets.values()):
        raise PublishError(f"no solution lines found in {root / 'solutions'}: the scan would prove nothing")
    instructor_config = (root / "grader" / "nbgrader_config.py").read_bytes()
    found = _script_findings(tree)
    for path in sorted(p for p in tree.rglob("*") if p.is_file()):
        rel = path.relative_to(tree)
        found += _path_findings(rel, instructor_config, tree)
        if path.suffix.lower() in IMAGES:
            continue  # pictures in lessons: nothing of a solution is written in them as text
        try:
            text = _readable_text(path)
        except ValueError as exc:
            found.append(Finding(str(rel), f"cannot be scanned ({exc}): leave it out of the copy"))
            continue
        found += (_python_findings if path.suffix == ".py" else _text_findings)(str(rel), text)
        found += _secret_findings(rel, text, secrets)
        if rel.parts[:1] == ("labs",) and path.suffix == ".ipynb":
            found += _released_notebook_findings(rel, path)
    return found


# ------------------------------------------------------------------------- the destination


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_destination(dest: Path, root: Path, force: bool) -> None:
    """Refuse a DEST inside the course (or holding it), a file, or a non-empty folder that is not an
    earlier copy (--force replaces only earlier copies: it deletes what is there)."""
    dest, root = dest.resolve(), root.resolve()
    if _inside(dest, root):
        raise PublishError(f"{dest} is inside the course repository {root}: the copy must live outside it "
                           "(e.g. aisec-grade publish ../aisec-students)")
    if _inside(root, dest):
        raise PublishError(f"{dest} holds the course repository {root}: choose a new folder beside it")
    if dest.exists() and not dest.is_dir():
        raise PublishError(f"{dest} is a file, not a folder")
    if not dest.is_dir() or not any(dest.iterdir()):
        return
    if not force:
        raise PublishError(f"{dest} is not empty: choose a new folder, or pass --force to replace an earlier copy")
    if not (dest / MARKER_FILE).is_file():
        raise PublishError(f"{dest} is not empty and is not an earlier student copy (no {MARKER_FILE}): "
                           "--force only replaces earlier copies; choose a new folder")


# ------------------------------------------------------------------------- building the copy


def copy_course(root: Path, staging: Path) -> None:
    """course/ without the instructor's files."""
    shutil.copytree(root / "course", staging / "course", ignore=JUNK)
    for rel in INSTRUCTOR_ONLY:
        (staging / rel).unlink(missing_ok=True)


def copy_package(root: Path, staging: Path) -> None:
    """The aisec package, with the scorers replaced by an empty registry and publish.py left out."""
    shutil.copytree(root / "aisec", staging / "aisec", ignore=JUNK)
    for rel in PACKAGE_LEFT_OUT:
        target = staging / rel
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    scorers = staging / "aisec" / "grading" / "scorers"
    scorers.mkdir()
    (scorers / "__init__.py").write_text(SCORERS_STUB)


SCORERS_STUB = '''"""The grader's scorers stay with the instructor: they measure a submission's raw outputs against
the reference run's values, which a student copy does not have. Self-grading here runs the
visible checks; the full grade comes from the instructor's grading."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MODULES: tuple[str, ...] = ()
SCORERS: dict[str, Callable[[Any, Any], float]] = {}


class Malformed(ValueError):
    """The student's value cannot be scored against the reference."""


__all__ = ["SCORERS", "Malformed", "MODULES"]
'''


def release_labs(root: Path, staging: Path) -> list[str]:
    """Release every lab from solutions/ into the copy, and insist that it equals the committed labs/."""
    from aisec.grading.release import release

    labs = lab_ids()
    try:
        release(labs, into=staging / "labs")
    except SystemExit as exc:  # release() is also a command: it exits with its message
        raise PublishError(f"releasing the labs failed: {exc}") from exc
    fresh = sorted(p.relative_to(staging / "labs") for p in (staging / "labs").rglob("*") if p.is_file())
    committed = sorted(p.relative_to(root / "labs") for p in (root / "labs").rglob("*")
                       if p.is_file() and ".ipynb_checkpoints" not in p.parts)
    drifted = sorted(set(fresh) ^ set(committed)) + [
        p for p in fresh if p in committed and (staging / "labs" / p).read_bytes() != (root / "labs" / p).read_bytes()]
    if drifted:
        raise PublishError(f"labs/ is not what solutions/ releases ({', '.join(map(str, drifted))}): run "
                           "python -m aisec.grading.release, commit labs/, and publish again")
    return labs


def copy_scripts_and_modes(root: Path, staging: Path) -> None:
    """pyproject.toml, environment.yml, postBuild, the student mode of grader/modes/, and what the
    scripts run."""
    for name in COPIED_FILES:
        shutil.copy2(root / name, staging / name)
    for rel in STUDENT_MODES:
        if (root / rel).is_dir():
            shutil.copytree(root / rel, staging / rel, ignore=JUNK)
        else:
            shutil.copy2(root / rel, staging / rel)
    for script in (root / "course.sh", root / "postBuild"):
        for ref in SCRIPT_PATH_RE.findall(script.read_text()):
            source = root / ref
            if ref.startswith("tools/") and source.is_file() and not (staging / ref).exists():
                (staging / ref).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, staging / ref)


def _case_branch(script: str, pattern: str) -> str:
    """The body of the ``pattern)`` branch of course.sh's dispatcher (up to its ``;;``)."""
    match = re.search(rf"^  {re.escape(pattern)}\)\n(.*?^    ;;\n)", script, re.S | re.M)
    if not match:
        raise PublishError(f"course.sh has no '{pattern})' branch: update aisec/grading/publish.py (student_course_sh)")
    return match.group(1)


STUDENT_USAGE = """\
# The course's commands, for a fresh machine with Python 3.11 (student copy: written by aisec-grade publish):
#   ./course.sh start        install everything into .venv, then open JupyterLab on the start page
#   ./course.sh check LAB    run the visible checks of your copy of LAB (e.g. lab00_minimisation)
#   ./course.sh test         (the course's test suite stays with your instructor: says so and stops)
"""

STUDENT_TEST_MESSAGE = (
    "This is the student copy of the course: the course's test suite (which runs the reference solutions "
    "and hidden tests) stays with your instructor. To check your work: ./course.sh check LAB "
    "(e.g. lab00_minimisation), or open course/my_progress.ipynb. Your grade comes from your instructor's grading."
)


def student_course_sh(script: str) -> str:
    """The instructor's course.sh with a student dispatcher: the same installation and the same
    ``start``; ``check LAB`` runs self-grading; ``test`` and ``instructor`` say why they are not here
    and exit 2, so that nothing mistakes the missing test suite for a passing one."""
    start = _case_branch(script, "start|instructor")
    # A student needs the course's runtime dependencies, not the test suite's (hub, browser, database).
    script = script.replace('-e ".[test]"', "-e .")
    dispatcher = script.find('case "${1:-help}" in')
    header_end = script.find("set -euo pipefail")
    if dispatcher < 0 or header_end < 0:
        raise PublishError("course.sh changed shape (no 'set -euo pipefail' or dispatcher): "
                           "update aisec/grading/publish.py (student_course_sh)")
    quoted = STUDENT_TEST_MESSAGE.replace('"', '\\"')
    return (
        "#!/usr/bin/env bash\n" + STUDENT_USAGE + script[header_end:dispatcher]
        + 'case "${1:-help}" in\n  start)\n' + start
        + '  check)\n    shift\n    [ $# -ge 1 ] || { echo "usage: ./course.sh check LAB (e.g. lab00_minimisation)" >&2; exit 2; }\n'
        + '    install_python_packages\n    exec "$VENV/bin/aisec-grade" self "$@"\n    ;;\n'
        + f'  test|instructor)\n    echo "{quoted}" >&2\n    exit 2\n    ;;\n'
        + "  *)\n    sed -n '2,5p' \"$0\" | sed 's/^# \\{0,1\\}//'\n    exit 2\n    ;;\nesac\n"
    )


STUDENT_NBGRADER_CONFIG = '''"""nbgrader configuration of a student copy of the AI security course (written by aisec-grade publish).

A student copy has the released labs (labs/) and no sources: no solutions, no hidden tests, no
gradebook of a class. The aisec tools find the course folder by this file; your own self-grading
results go to .workspace/ (or $AISEC_WORKSPACE).
"""

import os

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKSPACE = os.path.abspath(os.environ.get("AISEC_WORKSPACE") or os.path.join(ROOT, ".workspace"))

c.CourseDirectory.root = ROOT
c.CourseDirectory.course_id = "aisec"
c.CourseDirectory.release_directory = "labs"
c.CourseDirectory.submitted_directory = os.path.join(WORKSPACE, "submitted")
c.CourseDirectory.autograded_directory = os.path.join(WORKSPACE, "autograded")
c.CourseDirectory.feedback_directory = os.path.join(WORKSPACE, "feedback")
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".cache"]
c.Exchange.root = os.environ.get("AISEC_EXCHANGE") or os.path.join(WORKSPACE, "exchange")
'''


def _lessons(staging: Path) -> list[str]:
    return sorted(p.name for p in (staging / "course").glob("lesson*.ipynb"))


def student_readme(labs: list[str], lessons: list[str]) -> str:
    """The copy's README: how to start, how to check one's work, where the grade comes from."""
    lab_lines = "\n".join(f"- [{lab}](labs/{lab}/)" for lab in labs)
    lesson_lines = "\n".join(f"- [{name.removesuffix('.ipynb')}](course/{name})" for name in lessons)
    return f"""# AI security, hands on

How AI systems leak data, get inverted, get fooled and get betrayed from inside, learned by doing it: each lab
hands you a scenario and a real (tiny) model; you run the attack, measure it, build the defence and measure again.
Everything runs on a CPU, offline.

This is the **student copy** of the course: the lessons, the labs to work, and the `aisec` helper package. The
reference solutions, the hidden tests and the instructor's grading configuration are not part of it.

## Start

On a machine with Python 3.11 (Linux or macOS), from this folder:

```bash
./course.sh start    # installs everything into .venv (CPU-only torch), opens JupyterLab on the start page
```

Then open [course/00_start_here.ipynb](course/00_start_here.ipynb); the [syllabus](course/syllabus.md) has the
learning outcomes and hours. If your instructor gave you a Binder link, it opens the same thing in a browser.

Lessons:

{lesson_lines}

Labs:

{lab_lines}

## Working a lab and checking your work

Open `labs/labNN_topic/labNN_topic.ipynb`, replace each `raise NotImplementedError()` with your code, and run the
grey test cells: each prints a check mark or a cross with a hint. To run the visible checks of a whole lab on your
notebook from a terminal:

```bash
./course.sh check lab00_minimisation      # or: .venv/bin/aisec-grade self lab00_minimisation
```

or open [course/my_progress.ipynb](course/my_progress.ipynb) for an overview of every lab.

**Your grade comes from your instructor's grading.** It runs hidden tests on other data and other seeds, and your
instructor grades the written answers by hand. Passing the visible checks is a good sign, not a guarantee of full
marks: write the general solution, not one that fits the visible examples.

`./course.sh test` does not apply here: the course's own test suite belongs to the instructor's repository.

## Layout

```
course/      start page, lessons, syllabus, my_progress notebook
labs/        the labs you work in
aisec/       the helper package: data, models, plots, visible checks, self-grading
grader/      Jupyter settings for students (grader/modes/student)
```
"""


def _source_commit(root: Path) -> str | None:
    """The course repository's commit (with '-dirty' when it has changes), if git can tell."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=30)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def build(root: Path, staging: Path) -> list[str]:
    """Write the whole student copy into ``staging`` (an empty folder); return the labs released."""
    copy_course(root, staging)
    copy_package(root, staging)
    labs = release_labs(root, staging)
    copy_scripts_and_modes(root, staging)
    course_sh = staging / "course.sh"
    course_sh.write_text(student_course_sh((root / "course.sh").read_text()))
    course_sh.chmod(0o755)
    (staging / "grader" / "nbgrader_config.py").write_text(STUDENT_NBGRADER_CONFIG)
    (staging / "README.md").write_text(student_readme(labs, _lessons(staging)))
    (staging / MARKER_FILE).write_text(json.dumps({
        "published_from": _source_commit(root),
        "published_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "labs": labs,
    }, indent=1) + "\n")
    return labs


# -------------------------------------------------------------------------------- publish


def _move_into_place(staging: Path, dest: Path) -> None:
    """Replace DEST's contents (all but its .git) with the staged copy's."""
    if not dest.exists():
        os.replace(staging, dest)
        return
    for entry in dest.iterdir():
        if entry.name == ".git":
            continue  # the class repository's history survives a republish
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for entry in staging.iterdir():
        os.replace(entry, dest / entry.name)
    staging.rmdir()


def _tree_size(tree: Path) -> tuple[int, int]:
    files = [p for p in tree.rglob("*") if p.is_file() and ".git" not in p.relative_to(tree).parts]
    return len(files), sum(p.stat().st_size for p in files)


def publish(dest: Path, force: bool = False, log: Any = print) -> Published:
    """Build the student copy next to ``dest``, scan it, and move it into place only if clean.

    Raises :class:`PublishError` (DEST unchanged, nothing staged left behind) on a bad destination,
    labs/ out of sync with solutions/, or any leak the scan finds.
    """
    root = course_root().resolve()
    dest = Path(dest).expanduser().resolve()
    check_destination(dest, root, force)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.publishing-", dir=dest.parent))
    try:
        log(f"building the student copy in {staging}")
        labs = build(root, staging)
        findings = scan(staging, root)
        if findings:
            raise PublishError(f"the leak scan refused the copy ({len(findings)} finding(s)); nothing was written "
                               f"to {dest}:\n" + "\n".join(f"  {f}" for f in findings))
        files, size = _tree_size(staging)
        log(f"leak scan: {files} files, clean")
        _move_into_place(staging, dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return Published(dest, files, size, labs)


def render(result: Published) -> str:
    """What the command prints after a clean publish."""
    return (f"published the student copy to {result.dest}: {result.files} files, {result.size / 1e6:.1f} MB, "
            f"labs {', '.join(result.labs)}\nnext: review it, then git init / push it to the class's repository "
            "(see grader/PUBLISHING.md)")
