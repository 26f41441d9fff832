"""aisec-grade publish: a student-only copy of the course, proved clean by its own leak scan.

One real build of the copy (labs released afresh by nbgrader) is shared by the module; the tests of
the command replace the release step by a copy of that build's labs, so they run in seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

import notebook_utils
from aisec.grading import publish as pub
from aisec.grading.cli import main as cli
from conftest import LABS, ROOT, SOLUTIONS, lab_ids

STUDENT_FILES = [
    "README.md", "course.sh", "pyproject.toml", "environment.yml", "postBuild", pub.MARKER_FILE,
    "course/00_start_here.ipynb", "course/syllabus.md", "course/my_progress.ipynb",
    "aisec/__init__.py", "aisec/check.py", "aisec/grading/selfgrade.py", "aisec/grading/scorers/__init__.py",
    "grader/modes/student", "grader/nbgrader_config.py",
]
INSTRUCTOR_FILES = [
    "solutions", "tests", "benchmarks", "references", ".workspace", ".git", ".cache", "artifacts",
    "course/instructor_guide.md", "grader/AUTHORING.md", "grader/GRADING.md", "grader/header.ipynb",
    "nbgrader_config.py", "aisec/grading/publish.py", "aisec/grading/scorers/lab03.py",
]


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The student copy as the command builds it (labs released for real), before its scan."""
    tree = tmp_path_factory.mktemp("publish") / "aisec-students"
    tree.mkdir()
    pub.build(ROOT, tree)
    return tree


@pytest.fixture(scope="module")
def baseline(copy: Path) -> set[pub.Finding]:
    """What the scan finds in the repository's own copy (nothing, when the course is fit to publish)."""
    return set(pub.scan(copy, ROOT))


@pytest.fixture
def clean(baseline: set[pub.Finding]) -> None:
    """Tests of a successful publish need a repository that publishes clean."""
    if baseline:
        pytest.skip("the repository does not publish clean: test_the_repository_publishes_clean says why")


def _files(tree: Path) -> dict[Path, bytes]:
    return {p.relative_to(tree): p.read_bytes() for p in tree.rglob("*") if p.is_file()}


# ------------------------------------------------------------------------- what is planted


def _hidden_line() -> str:
    """A telling line of a hidden test (one the scan must know)."""
    for source in sorted(SOLUTIONS.glob("*/*.ipynb")):
        nb = nbformat.read(source, as_version=4)
        secret = pub.secret_lines(nb) - pub.TAUGHT_LINES
        for cell in nb.cells:
            for region in pub.HIDDEN_RE.findall(cell.source):
                for line in region.splitlines():
                    if line.strip() in secret and "record(" not in line:
                        return line.strip()
    raise AssertionError("no hidden test line found in solutions/")


def _solution_line() -> str:
    for source in sorted(SOLUTIONS.glob("*/*.ipynb")):
        nb = nbformat.read(source, as_version=4)
        secret = pub.secret_lines(nb) - pub.TAUGHT_LINES
        for cell in nb.cells:
            for region in pub.SOLUTION_RE.findall(cell.source):
                for line in region.splitlines():
                    if line.strip() in secret:
                        return line.strip()
    raise AssertionError("no solution line found in solutions/")


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def _plant_hidden_line(tree: Path) -> str:
    _append(tree / "aisec" / "data.py", f"\n# {_hidden_line()}\n")
    return "aisec/data.py"


def _plant_solution_line(tree: Path) -> str:
    _append(tree / "course" / "syllabus.md", f"\nA hint: `{_solution_line()}`\n")
    return "course/syllabus.md"


def _plant_record_call(tree: Path) -> str:
    _append(tree / "aisec" / "plots.py", '\n\ndef _leak(value):\n    record("q1_luhn_test.hidden", value)\n')
    return "aisec/plots.py"


def _plant_reference_cache(tree: Path) -> str:
    rel = "references/lab00_minimisation/lab00_minimisation.0123456789abcdef.v2.json"
    (tree / rel).parent.mkdir(parents=True)
    (tree / rel).write_text(json.dumps({"records": {"q1": {}}, "cell_seconds": {}, "seconds": 1.0}))
    return rel


def _plant_records_under_a_plain_name(tree: Path) -> str:
    (tree / "course" / "answers.json").write_text(json.dumps({"records": {"q1": {"value": 1}}, "cell_seconds": {}}))
    return "course/answers.json"


def _plant_marker_in_a_lab(tree: Path) -> str:
    path = next((tree / "labs" / "lab00_minimisation").glob("*.ipynb"))
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("### BEGIN HIDDEN TESTS\nx = 1\n### END HIDDEN TESTS"))
    nbformat.write(nb, path)
    return str(path.relative_to(tree))


def _plant_outputs_in_a_lab(tree: Path) -> str:
    path = next((tree / "labs" / "lab01_leakage").glob("*.ipynb"))
    nb = nbformat.read(path, as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", text="the answer is 42\n")]
    nbformat.write(nb, path)
    return str(path.relative_to(tree))


def _plant_binary(tree: Path) -> str:
    (tree / "aisec" / "answers.pt").write_bytes(b"PK\x03\x04\x00\x00 weights the scan cannot read")
    return "aisec/answers.pt"


PLANTS: dict[str, Callable[[Path], str]] = {
    "hidden-test line": _plant_hidden_line,
    "solution line": _plant_solution_line,
    "record call": _plant_record_call,
    "reference cache": _plant_reference_cache,
    "reference records": _plant_records_under_a_plain_name,
    "marker in a lab": _plant_marker_in_a_lab,
    "outputs in a lab": _plant_outputs_in_a_lab,
    "binary file": _plant_binary,
}


# ------------------------------------------------------------------------------ the copy


def test_the_repository_publishes_clean(baseline: set[pub.Finding]) -> None:
    assert not baseline, "the leak scan refuses the course as it is:\n" + "\n".join(sorted(map(str, baseline)))


def test_the_copy_holds_the_student_files_only(copy: Path) -> None:
    missing = [f for f in STUDENT_FILES if not (copy / f).exists()]
    assert not missing, f"the copy lacks {missing}"
    present = [f for f in INSTRUCTOR_FILES if (copy / f).exists()]
    assert not present, f"the copy holds instructor files {present}"
    assert not list(copy.rglob("__pycache__")) and not list(copy.rglob("*.pyc"))
    lessons = sorted(p.name for p in (ROOT / "course").glob("lesson*.ipynb"))
    assert lessons and sorted(p.name for p in (copy / "course").glob("lesson*.ipynb")) == lessons
    assert (copy / "grader" / "nbgrader_config.py").read_bytes() != (ROOT / "grader" / "nbgrader_config.py").read_bytes()
    assert json.loads((copy / pub.MARKER_FILE).read_text())["labs"] == lab_ids()


def test_the_lab_notebooks_equal_labs(copy: Path) -> None:
    assert _files(copy / "labs") == _files(LABS)


def test_the_copy_has_no_scorers(copy: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(copy)}
    out = subprocess.run([sys.executable, "-c", "import aisec.grading.scorers as s, aisec.grading.judge; "
                          "print(s.__file__, len(s.SCORERS))"], env=env, cwd=copy, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(copy / "aisec" / "grading" / "scorers" / "__init__.py"), "0"]


def test_the_student_course_sh(copy: Path) -> None:
    script = copy / "course.sh"
    assert os.access(script, os.X_OK)
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    assert 'jupyter" lab' in text and "grader/modes/" in text and "00_start_here.ipynb" in text
    assert ".[test]" not in text, "students install the runtime dependencies, not the test suite's"
    test = subprocess.run(["bash", str(script), "test"], capture_output=True, text=True, timeout=60)
    assert test.returncode == 2 and "instructor" in test.stderr and "./course.sh check" in test.stderr
    usage = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "start" in usage.stdout and "check LAB" in usage.stdout


def test_the_readme_says_how_to_start_and_check(copy: Path) -> None:
    readme = (copy / "README.md").read_text()
    for needed in ("./course.sh start", "./course.sh check lab00_minimisation", "aisec-grade self",
                   "my_progress.ipynb", "instructor's grading", "hidden tests"):
        assert needed in readme, f"README lacks {needed!r}"
    assert all(f"labs/{lab}/" in readme for lab in lab_ids())


def test_secret_lines_have_one_implementation() -> None:
    assert notebook_utils.secret_lines is pub.secret_lines


def test_every_taught_line_is_still_a_solution_line() -> None:
    """The allowance stays reviewed: an entry no lab needs any more must go."""
    secrets = set().union(*pub.course_secrets(ROOT).values())
    stale = sorted(pub.TAUGHT_LINES - secrets)
    assert not stale, f"remove from publish.TAUGHT_LINES: {stale}"


# ------------------------------------------------------------------------------ the scan


def test_only_seeding_from_a_variable_and_taught_lines_pass_outside_labs() -> None:
    taught = sorted(pub.TAUGHT_LINES)[0]
    assert not pub._telling("rng = np.random.default_rng(seed)", in_labs=False)
    assert not pub._telling(taught, in_labs=False)
    assert pub._telling("torch.manual_seed(4242)", in_labs=False), "a literal seed may be a hidden test's"
    assert pub._telling("rng = np.random.default_rng(SEED + 1)", in_labs=False)
    assert pub._telling("rng = np.random.default_rng(seed)", in_labs=True) and pub._telling(taught, in_labs=True)


def test_imports_of_other_packages_and_except_clauses_tell_nothing_anywhere() -> None:
    for line in ("from cryptography.hazmat.primitives import hashes", "import numpy as np", "except InvalidSignature:"):
        assert not pub._telling(line, in_labs=True) and not pub._telling(line, in_labs=False)
    assert pub._telling("from aisec.lab07.answers import audit", in_labs=False), "an import of the course's own code may tell"
    assert pub._telling("except InvalidSignature: return True", in_labs=False)


@pytest.mark.parametrize("plant", PLANTS, ids=list(PLANTS))
def test_the_scan_catches_a_planted_leak(plant: str, copy: Path, baseline: set[pub.Finding], tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(copy, tree)
    rel = PLANTS[plant](tree)
    new = set(pub.scan(tree, ROOT)) - baseline
    assert new and {f.path for f in new} == {rel}, sorted(map(str, new))


def test_the_scan_lets_taught_lines_pass_outside_labs_only(copy: Path, baseline: set[pub.Finding],
                                                            tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(copy, tree)
    taught = sorted(pub.TAUGHT_LINES)[0]
    _append(tree / "course" / "syllabus.md", f"\n{taught}\n")
    assert set(pub.scan(tree, ROOT)) == baseline
    path = next((tree / "labs" / "lab00_minimisation").glob("*.ipynb"))
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(taught))
    nbformat.write(nb, path)
    assert {f.path for f in set(pub.scan(tree, ROOT)) - baseline} == {str(path.relative_to(tree))}


# --------------------------------------------------------------------------- the command


@pytest.fixture
def quick_release(copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The release step as a copy of the module's real release (already checked against labs/)."""

    def release_labs(root: Path, staging: Path) -> list[str]:
        shutil.copytree(copy / "labs", staging / "labs")
        return lab_ids()

    monkeypatch.setattr(pub, "release_labs", release_labs)


def _planting(monkeypatch: pytest.MonkeyPatch, plant: Callable[[Path], str]) -> list[str]:
    """Make the build plant a leak in the staged copy, as a broken build step would; the list that
    receives the planted path when the build runs."""
    original = pub.copy_scripts_and_modes
    planted: list[str] = []

    def copy_and_plant(root: Path, staging: Path) -> None:
        original(root, staging)
        planted.append(plant(staging))

    monkeypatch.setattr(pub, "copy_scripts_and_modes", copy_and_plant)
    return planted


@pytest.mark.parametrize("plant", ["hidden-test line", "solution line", "record call", "reference cache"])
def test_a_leak_fails_the_command_and_writes_nothing(plant: str, quick_release: None, monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    planted = _planting(monkeypatch, PLANTS[plant])
    dest = tmp_path / "aisec-students"
    assert cli(["publish", str(dest)]) == 1
    (rel,) = planted
    err = capsys.readouterr().err
    assert "leak scan refused" in err and "nothing was written" in err and f"  {rel}: " in err
    assert not dest.exists(), "a refused copy must not be left at DEST"
    assert list(tmp_path.iterdir()) == [], "the staging folder must be removed"


def test_a_leak_leaves_an_earlier_copy_as_it_was(clean: None, quick_release: None, monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    dest = tmp_path / "aisec-students"
    assert cli(["publish", str(dest)]) == 0
    before = _files(dest)
    _planting(monkeypatch, _plant_record_call)
    assert cli(["publish", str(dest), "--force"]) == 1
    assert _files(dest) == before


def test_force_replaces_an_earlier_copy_and_keeps_its_git(clean: None, quick_release: None, tmp_path: Path) -> None:
    dest = tmp_path / "aisec-students"
    assert cli(["publish", str(dest)]) == 0
    (dest / ".git").mkdir()
    (dest / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (dest / "stale.txt").write_text("from an older copy")
    assert cli(["publish", str(dest)]) == 1, "a non-empty DEST needs --force"
    assert cli(["publish", str(dest), "--force"]) == 0
    assert (dest / ".git" / "HEAD").read_text() == "ref: refs/heads/main\n"
    assert not (dest / "stale.txt").exists()
    shutil.rmtree(dest / ".git")
    assert pub.scan(dest, ROOT) == []


def test_labs_out_of_sync_with_solutions_are_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import aisec.grading.release as release_module

    def drifted_release(labs: list[str], into: Path) -> list[Path]:
        shutil.copytree(LABS, into)
        _append(next((into / labs[0]).glob("*.ipynb")), " ")
        return [into / lab for lab in labs]

    monkeypatch.setattr(release_module, "release", drifted_release)
    with pytest.raises(pub.PublishError, match="not what solutions/ releases"):
        pub.publish(tmp_path / "aisec-students", log=lambda _m: None)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where, why", [
    ("inside", "inside the course repository"),
    ("parent", "holds the course repository"),
    ("non-empty", "is not empty"),
    ("non-empty --force", "not an earlier student copy"),
])
def test_bad_destinations_are_refused(where: str, why: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = {"inside": ROOT / "aisec-students", "parent": ROOT.parent}.get(where, tmp_path / "busy")
    if where.startswith("non-empty"):
        dest.mkdir()
        (dest / "notes.txt").write_text("mine")
    args = ["publish", str(dest)] + (["--force"] if where.endswith("--force") else [])
    assert cli(args) == 1
    assert why in capsys.readouterr().err
    assert not (ROOT / "aisec-students").exists()
    if where.startswith("non-empty"):
        assert (dest / "notes.txt").read_text() == "mine"


# ----------------------------------------------------------------- self-grading in the copy


@pytest.mark.slow
def test_self_grading_in_the_copy_runs_the_visible_checks_only(copy: Path, tmp_path: Path) -> None:
    """The copy's own package (PYTHONPATH), as a student runs it: no hidden tests, no score."""
    env = {**os.environ, "AISEC_COURSE_ROOT": str(copy), "AISEC_WORKSPACE": str(tmp_path / "ws"),
           "PYTHONPATH": str(copy)}
    env.pop("AISEC_GRADING_SERVICE_URL", None)
    proc = subprocess.run([sys.executable, "-m", "aisec.grading.cli", "self", "lab00_minimisation", "--json"],
                          cwd=copy, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["mode"] == "visible-only" and result["score"] is None and result["hidden_tests_run"] is False
    assert result["questions"], "no question was reported"
    kinds = {check["kind"] for q in result["questions"] for check in q["checks"]}
    assert "visible" in kinds and "hidden" not in kinds, kinds
    assert not any(q["passed"] for q in result["questions"]), "the untouched stubs pass no visible check"
