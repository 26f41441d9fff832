"""The student's path in a real browser: JupyterLab from the installed environment, Debian's Chromium
driven headless by Playwright.

In a temporary copy of the course, a JupyterLab server starts on localhost with a token. The test
opens the start page and runs it; opens Lab 0 as a student who has not answered yet (the first
check says "not answered yet") and as a student who has solved it (every visible check prints ✔,
no error output); then opens ``course/my_progress.ipynb``, runs its self-grading cell and progress
overview, and checks that the score, the per-question feedback and the ipywidgets view appear.
Screenshots go to ``artifacts/screenshots/`` (ignored by git; CI keeps them as artefacts).

With CI=true a missing Chromium or Playwright is a failure, not a skip.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from notebook_utils import paste_answers

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:  # reported by the browser fixture (a failure under CI)
    PlaywrightTimeout = TimeoutError  # type: ignore[misc,assignment]

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
LAB = "lab00_minimisation"
LAB_NOTEBOOK = f"labs/{LAB}/{LAB}.ipynb"
TOKEN = "aisec-browser-test"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _require(condition: bool, why: str) -> None:
    if condition:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{why} (CI must run the browser test: .ci/run installs chromium through apt)")
    pytest.skip(why)


# ----------------------------------------------------------------------------- the course copy


def solved_student_notebook(student: Path, source: Path) -> nbformat.NotebookNode:
    """The student version with every answer code cell filled in from the source, as a student who solved it.

    Only answer cells (``solution: true`` code cells) change; test cells stay the student's, so no
    hidden test reaches the browser.
    """
    nb = nbformat.read(student, as_version=4)
    paste_answers(nb, source, code_only=True)
    return nb


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def course_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("course")
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
    for folder in ("course", "labs", "solutions", "grader", "tools"):
        shutil.copytree(ROOT / folder, root / folder, ignore=ignore)
    for name in ("nbgrader_config.py", "course.sh", "pyproject.toml"):
        shutil.copy2(ROOT / name, root / name)
    (root / ".venv").symlink_to(ROOT / ".venv")  # course.sh runs JupyterLab from the course's environment
    # The student who solved lab 0 works in a second copy of the lab folder, kept apart from the
    # untouched one so that both can be opened.
    solved = root / "labs" / f"{LAB}_solved"
    shutil.copytree(root / "labs" / LAB, solved)
    nbformat.write(
        solved_student_notebook(root / LAB_NOTEBOOK, ROOT / "solutions" / LAB / f"{LAB}.ipynb"),
        solved / f"{LAB}.ipynb",
    )
    return root


@contextlib.contextmanager
def course_server(root: Path, mode: str, state: Path) -> Iterator[dict[str, Any]]:
    """``./course.sh start`` (mode "start", the student's) or ``./course.sh instructor`` in the course copy,
    exactly as a user runs it, plus the test's port, token and settings; stopped on exit."""
    stamp = ROOT / ".venv" / f".installed-{hashlib.sha256((ROOT / 'pyproject.toml').read_bytes()).hexdigest()[:16]}"
    if not stamp.is_file():
        pytest.fail(f"the course's environment is not installed for this pyproject.toml ({stamp.name} is missing): "
                    "run ./course.sh test, which installs it first")
    settings = state / "settings" / "@jupyterlab"
    (settings / "notebook-extension").mkdir(parents=True)
    # Every cell in the DOM (no virtual scrolling), so what the test reads is the whole notebook.
    (settings / "notebook-extension" / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "JUPYTER_CONFIG_PATH")},
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
        "JUPYTER_CONFIG_DIR": str(state / "config"),
        "JUPYTER_DATA_DIR": str(state / "data"),
        "AISEC_WORKSPACE": str(root / ".workspace"),
        "AISEC_COURSE_ROOT": str(root),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    cmd = [
        "bash", str(root / "course.sh"), mode, "--no-browser", f"--port={port}", "--ip=127.0.0.1",
        f"--ServerApp.token={TOKEN}", f"--LabApp.user_settings_dir={state / 'settings'}",
        f"--LabApp.workspaces_dir={state / 'workspaces'}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    log = (state / "server.log").open("w")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"course.sh {mode} exited with {proc.returncode}:\n{(state / 'server.log').read_text()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"course.sh {mode} did not listen within 90 s:\n{(state / 'server.log').read_text()[-3000:]}")
        yield {"url": url, "root": root, "log": state / "server.log"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def lab_server(course_copy: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The student's JupyterLab: ``./course.sh start``."""
    with course_server(course_copy, "start", tmp_path_factory.mktemp("jupyter-student")) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _require(CHROMIUM.is_file(), f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require(False, "playwright is not installed (pip install -e '.[test]')")
        raise
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(60_000)
    pg = context.new_page()
    try:
        yield pg
    finally:
        context.close()


# ----------------------------------------------------------------------------- driving JupyterLab


def open_notebook(page: Any, server: dict[str, Any], path: str) -> None:
    page.goto(f"{server['url']}/lab/tree/{path}?token={TOKEN}&reset")
    page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for(state="visible", timeout=120_000)
    wait_kernel_idle(page, timeout_s=120)


def wait_kernel_idle(page: Any, timeout_s: float) -> None:
    # The status bar says "Python 3 (ipykernel) | Idle" once the kernel is connected, and the
    # toolbar's execution indicator is idle when nothing runs.
    page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\| Idle")).first.wait_for(timeout=timeout_s * 1000)
    page.wait_for_function(
        """() => {
            const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
            if (!panel) return false;
            const status = panel.querySelector('.jp-Notebook-ExecutionIndicator');
            return status && status.getAttribute('data-status') === 'idle';
        }""",
        timeout=timeout_s * 1000,
    )


def run_all(page: Any, timeout_s: float) -> None:
    """Run → Run All Cells from the menu bar, then wait until no cell is queued or running.

    A click that lands while the kernel is still connecting runs nothing; then it is clicked again.
    """
    prompts = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt")
    for _attempt in range(3):
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        try:
            page.wait_for_function(
                "(n) => [...document.querySelectorAll(n)].some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))",
                arg=".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt",
                timeout=15_000,
            )
            break
        except PlaywrightTimeout:
            wait_kernel_idle(page, timeout_s=60)
    else:
        pytest.fail(f"Run All Cells ran nothing; prompts: {prompts.all_inner_texts()}")
    page.wait_for_function(
        """() => {
            const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
            const status = panel && panel.querySelector('.jp-Notebook-ExecutionIndicator');
            const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
            return status && status.getAttribute('data-status') === 'idle'
                && !prompts.some(p => p.textContent.includes('*'));
        }""",
        timeout=timeout_s * 1000,
    )


def save(page: Any) -> None:
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+s")
    page.wait_for_function(
        "() => !document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-mod-dirty')"
        " && !document.querySelector('.lm-TabBar-tab.jp-mod-current.jp-mod-dirty')",
        timeout=30_000,
    )


def outputs_text(page: Any) -> str:
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea").all_inner_texts().__str__()


def error_outputs(path: Path) -> list[str]:
    """``ename: evalue`` of every error output in the saved notebook."""
    nb = nbformat.read(path, as_version=4)
    return [
        f"{out.get('ename')}: {out.get('evalue')}"
        for cell in nb.cells if cell.cell_type == "code"
        for out in cell.get("outputs", []) if out.get("output_type") == "error"
    ]


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)


# ----------------------------------------------------------------------------- the student's path


def test_start_page_runs_without_errors(page: Any, lab_server: dict[str, Any]) -> None:
    open_notebook(page, lab_server, "course/00_start_here.ipynb")
    run_all(page, timeout_s=120)
    page.get_by_text("torch runs on").first.scroll_into_view_if_needed()
    shot(page, "01_start_page")
    save(page)
    assert error_outputs(lab_server["root"] / "course" / "00_start_here.ipynb") == []
    assert "torch runs on: cpu" in outputs_text(page)


def test_untouched_lab_says_not_answered_yet(page: Any, lab_server: dict[str, Any]) -> None:
    open_notebook(page, lab_server, LAB_NOTEBOOK)
    run_all(page, timeout_s=180)
    page.get_by_text("not answered yet").first.scroll_into_view_if_needed()
    shot(page, "02_lab00_untouched")
    text = outputs_text(page)
    assert "not answered yet" in text, "the first check should tell the student to replace raise NotImplementedError()"
    assert "CheckFailed" in text
    # Test cells are tagged raises-exception: Run All goes on past a failing check, so every question's
    # check reports in one pass (and not one question at a time).
    save(page)
    cells = nbformat.read(lab_server["root"] / LAB_NOTEBOOK, as_version=4).cells
    checks = [c for c in cells if c.cell_type == "code" and "check(" in c.source]
    assert checks and all("raises-exception" in c.metadata.get("tags", []) for c in checks)
    silent = [c.metadata.get("nbgrader", {}).get("grade_id") for c in checks if not c.get("outputs")]
    assert not silent, f"Run All stopped before these checks ran: {silent}"


def test_solved_lab_shows_every_check_passing(page: Any, lab_server: dict[str, Any]) -> None:
    open_notebook(page, lab_server, f"labs/{LAB}_solved/{LAB}.ipynb")
    run_all(page, timeout_s=240)
    page.get_by_text("visible checks passed").nth(1).scroll_into_view_if_needed()
    shot(page, "03_lab00_solved")
    save(page)
    saved = lab_server["root"] / "labs" / f"{LAB}_solved" / f"{LAB}.ipynb"
    assert error_outputs(saved) == []
    text = outputs_text(page)
    assert "✘" not in text
    assert text.count("✔") >= 8, "every question's visible checks should print ✔"
    # The lab's plot rendered as an image.
    assert page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-RenderedImage img").count() >= 1


NEWS_PROMPT = "official Jupyter news"  # JupyterLab 4's first-run question: "...notified about official Jupyter news?"


def nbgrader_menu_items(page: Any) -> str:
    menu_bar = page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Nbgrader$"))
    if not menu_bar.count():
        return ""
    menu_bar.click()
    items = page.locator(".lm-Menu").last.inner_text()
    page.keyboard.press("Escape")
    return items


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_students_get_nbgrader_student_tools_only(page: Any, lab_server: dict[str, Any]) -> None:
    """``./course.sh start``: Validate and Assignments are there; the formgrader, Create Assignment, the course
    list and the news prompt are not (in the page, and the formgrader's server side answers 404)."""
    open_notebook(page, lab_server, LAB_NOTEBOOK)
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Toolbar").get_by_text("Validate").wait_for()
    page.wait_for_timeout(3000)  # the news prompt, when on, shows within a second or two of the page
    assert page.get_by_text(NEWS_PROMPT).count() == 0, "JupyterLab asks students about news"
    assert page.get_by_text("Create Assignment").count() == 0
    menu = nbgrader_menu_items(page)
    assert "Assignment List" in menu, menu
    assert "Formgrader" not in menu and "Course List" not in menu, menu
    assert http_status(f"{lab_server['url']}/formgrader?token={TOKEN}") == 404
    shot(page, "00_student_view")


def test_instructors_get_their_tools(page: Any, course_copy: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """``./course.sh instructor``: the formgrader, Create Assignment and the course list are on; no news prompt."""
    with course_server(course_copy, "instructor", tmp_path_factory.mktemp("jupyter-instructor")) as server:
        assert http_status(f"{server['url']}/formgrader?token={TOKEN}") == 200
        open_notebook(page, server, LAB_NOTEBOOK)
        menu = nbgrader_menu_items(page)
        assert "Formgrader" in menu and "Course List" in menu and "Assignment List" in menu, menu
        page.wait_for_timeout(3000)
        assert page.get_by_text(NEWS_PROMPT).count() == 0, "JupyterLab asks the instructor about news"
        shot(page, "00_instructor_view")


def test_self_grading_and_progress_overview(page: Any, lab_server: dict[str, Any]) -> None:
    """Self-grade the solved copy from my_progress.ipynb: the score, per-question feedback and widget appear."""
    root = lab_server["root"]
    solved = root / "labs" / f"{LAB}_solved" / f"{LAB}.ipynb"
    nb_path = root / "course" / "my_progress.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    # The learner points the cell at their notebook (here, the solved copy).
    nb.cells[1].source = nb.cells[1].source.replace("grade_lab(LAB)", f"grade_lab(LAB, notebook={str(solved)!r})")
    nbformat.write(nb, nb_path)

    open_notebook(page, lab_server, "course/my_progress.ipynb")
    run_all(page, timeout_s=600)
    page.locator(".aisec-progress .aisec-progress-bar").first.wait_for(state="visible", timeout=60_000)
    page.locator(".aisec-selfgrade").first.scroll_into_view_if_needed()
    shot(page, "04_self_grade")
    page.locator(".aisec-progress").first.scroll_into_view_if_needed()
    shot(page, "05_progress_overview")
    save(page)
    assert error_outputs(nb_path) == []
    assert page.locator(".aisec-message[role=alert]").count() == 0, outputs_text(page)[:2000]
    text = outputs_text(page)
    assert re.search(rf"{LAB}: \d+(\.\d+)? / \d+(\.\d+)? automatic points", text), text[:2000]
    assert "Warning" not in text, "the grading machinery's warnings should not reach the learner"
    assert "✔ passed" in text and "graded by hand" in text
    # Nothing of the hidden tests reaches the learner's screen.
    assert "BEGIN HIDDEN TESTS" not in text and "record(" not in text
    result = json.loads((root / ".workspace" / "self" / LAB / "result.json").read_text())
    assert result["score"] > 0 and any(q["passed"] for q in result["questions"])
