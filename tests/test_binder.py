"""Binder (repo2docker): the configuration parses, describes an installable CPU-only environment,
sets nbgrader up for students, and opens a start page that exists.

Docker does not run here, so the image itself is not built. What is tested instead:
environment.yml parses and every pip requirement in it resolves from the package registries
(``pip install --dry-run``, metadata only, with the file's own index options), torch resolves to the
CPU build without CUDA libraries, postBuild is valid bash naming extensions that exist, and the
start URL's notebook is in the repository.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ENV_FILE = ROOT / "environment.yml"
POSTBUILD = ROOT / "postBuild"

#: The page Binder opens; the README's badge links ``?urlpath=`` + this.
BINDER_URLPATH = "lab/tree/course/00_start_here.ipynb"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# Unreachable indexes (the PyTorch CPU index is not reachable from CI) must fail fast, not retry.
FAST_PIP = ["--retries", "0", "--timeout", "20", "--disable-pip-version-check"]


def _environment() -> dict:
    assert ENV_FILE.is_file(), "environment.yml is missing: Binder would build a bare image"
    data = yaml.safe_load(ENV_FILE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("dependencies"), list), "environment.yml has no dependencies"
    return data


def _pip_section() -> tuple[list[str], list[str]]:
    """(pip options, requirements) of environment.yml's ``pip:`` list."""
    pip_lists = [d["pip"] for d in _environment()["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1, "environment.yml should have exactly one pip: section"
    options: list[str] = []
    requirements: list[str] = []
    for entry in pip_lists[0]:
        entry = str(entry).strip()
        (options.extend(shlex.split(entry)) if entry.startswith("-") else requirements.append(entry))
    return options, requirements


def _dry_run(args: list[str], tmp_path: Path) -> list[dict]:
    report = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
           "--report", str(report), *FAST_PIP, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"pip could not resolve: {' '.join(args)}\n{proc.stderr[-3000:]}"
    return json.loads(report.read_text())["install"]


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, f"cannot read a package name in {requirement!r}"
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


# ----------------------------------------------------------------------------- environment.yml


def test_environment_yml_parses_and_pins_python_311() -> None:
    deps = _environment()["dependencies"]
    pythons = [d for d in deps if isinstance(d, str) and re.match(r"python\s*[=<>]", d)]
    assert pythons and all("3.11" in p for p in pythons), f"Binder must get Python 3.11, got {pythons}"
    assert "pip" in deps, "environment.yml must install pip for its pip: section"


def _without_cpu_index(options: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for opt in options:
        if skip:
            skip = False
            continue
        if opt in ("--extra-index-url", "--find-links", "-f") :
            skip = True  # takes the next item as its value
            if opt == "--extra-index-url":
                continue
        out.append(opt)
    return [o for o in out if CPU_INDEX not in o]


def test_every_pip_requirement_resolves(tmp_path: Path) -> None:
    """Everything but torch from PyPI (metadata only, no dependencies: quick)."""
    options, requirements = _pip_section()
    others = [r for r in requirements if _name(r) != "torch"]
    resolved = _dry_run([*_without_cpu_index(options), "--no-deps", *others], tmp_path)
    found = {_name(item["metadata"]["name"]) for item in resolved}
    missing = sorted(_name(r) for r in others if _name(r) not in found)
    assert not missing, f"not resolvable from the registries: {missing}"


def test_torch_resolves_to_the_cpu_build_without_cuda_libraries(tmp_path: Path) -> None:
    """The torch pin with the file's own index options, and its dependencies.

    Where the PyTorch CPU index is unreachable (CI here), pip finds the same wheel on this
    machine's disk; either way the pin only matches a ``+cpu`` build.
    """
    options, requirements = _pip_section()
    torch = next(r for r in requirements if _name(r) == "torch")
    resolved = _dry_run([*options, torch], tmp_path)
    versions = {_name(item["metadata"]["name"]): item["metadata"]["version"] for item in resolved}
    assert versions.get("torch", "").endswith("+cpu"), f"torch resolved to {versions.get('torch')}, not the CPU build"
    cuda = sorted(n for n in versions if n.startswith(("nvidia-", "triton", "cuda-")))
    assert not cuda, f"the torch pin drags in CUDA packages (a several-GB image): {cuda}"


# ----------------------------------------------------------------------------- postBuild and start


def test_postbuild_is_valid_executable_bash() -> None:
    assert POSTBUILD.is_file(), "postBuild is missing"
    assert POSTBUILD.stat().st_mode & 0o111, "postBuild must be executable (chmod +x postBuild)"
    assert POSTBUILD.read_text().startswith("#!/usr/bin/env bash\n")
    proc = subprocess.run(["bash", "-n", str(POSTBUILD)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _postbuild_commands() -> list[list[str]]:
    lines = [ln.strip() for ln in POSTBUILD.read_text().splitlines()]
    return [shlex.split(ln) for ln in lines if ln and not ln.startswith("#")]


def test_postbuild_installs_the_course_without_dependencies() -> None:
    pip = [c for c in _postbuild_commands() if "pip" in c and "install" in c]
    assert pip, "postBuild must install the course package"
    assert all("--no-deps" in c for c in pip), "postBuild's pip must not resolve dependencies (a CUDA torch could come in)"


def test_postbuild_sets_nbgrader_up_for_students() -> None:
    """Formgrader, create-assignment and the course list off; validate and the assignment list on.

    The names must be real: a typo disables nothing and Binder would still show the formgrader.
    """
    lab = {c[-1]: c[2] for c in _postbuild_commands() if c[:2] == ["jupyter", "labextension"]}
    server = {c[-1]: c[3] for c in _postbuild_commands() if c[:3] == ["jupyter", "server", "extension"]}
    for plugin in ("formgrader", "create-assignment", "course-list"):
        assert lab.get(f"@jupyter/nbgrader:{plugin}") == "disable", f"students should not get nbgrader's {plugin}"
    for plugin in ("assignment-list", "validate-assignment"):
        assert lab.get(f"@jupyter/nbgrader:{plugin}") != "disable", f"students need nbgrader's {plugin}"
    assert server.get("nbgrader.server_extensions.formgrader") == "disable"
    assert "nbgrader.server_extensions.validate_assignment" not in server or server[
        "nbgrader.server_extensions.validate_assignment"] == "enable"

    bundles = [Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "@jupyter" / "nbgrader" / "static",
               Path(sys.prefix) / "share" / "jupyter" / "lab" / "static"]
    code = "".join(p.read_text(errors="replace") for bundle in bundles for p in bundle.glob("*.js"))
    for plugin in lab:
        assert f'"{plugin}"' in code, f"postBuild names a JupyterLab plugin that does not exist: {plugin}"
    for module in server:
        assert importlib.util.find_spec(module) is not None, f"postBuild names a server extension that does not exist: {module}"


def test_postbuild_gives_binder_the_student_mode_of_course_sh() -> None:
    """Binder's students see what ``./course.sh start`` shows (grader/modes/student): the same names off."""
    student = ROOT / "grader" / "modes" / "student"
    page_config = json.loads((student / "labconfig" / "page_config.json").read_text())
    server_config = json.loads((student / "jupyter_server_config.d" / "aisec-student-mode.json").read_text())
    lab_off = {c[-1] for c in _postbuild_commands() if c[:3] == ["jupyter", "labextension", "disable"]}
    server_off = {c[-1] for c in _postbuild_commands() if c[:4] == ["jupyter", "server", "extension", "disable"]}
    assert lab_off == {k for k, off in page_config["disabledExtensions"].items() if off}
    assert server_off == {k for k, on in server_config["ServerApp"]["jpserver_extensions"].items() if not on}


def test_optional_repo2docker_files_are_sane() -> None:
    # A Dockerfile would make repo2docker ignore every other file here.
    assert not (ROOT / "Dockerfile").exists() and not (ROOT / "binder").exists()
    start = ROOT / "start"
    if start.exists():
        assert start.stat().st_mode & 0o111, "start must be executable"
        assert 'exec "$@"' in start.read_text(), "repo2docker's start must end with exec \"$@\""
        assert subprocess.run(["bash", "-n", str(start)]).returncode == 0
    runtime = ROOT / "runtime.txt"
    if runtime.exists():
        assert runtime.read_text().strip().startswith("python-3.11"), "runtime.txt must agree on Python 3.11"


# ----------------------------------------------------------------------------- the start page


def test_start_url_opens_an_existing_notebook() -> None:
    # The urlpath of every Binder link the README publishes, not this file's own constant.
    links = re.findall(r"mybinder\.org/v2/[^)\s]*urlpath=([^)\s&]+)", (ROOT / "README.md").read_text())
    assert links, "the README has no Binder link with a urlpath"
    for urlpath in {link.replace("%2F", "/") for link in links}:
        assert urlpath.startswith("lab/tree/"), f"Binder should open JupyterLab, got {urlpath}"
        notebook = ROOT / urlpath.removeprefix("lab/tree/")
        assert notebook.is_file(), f"Binder's start page {notebook.relative_to(ROOT)} does not exist"
        json.loads(notebook.read_text())
    notebook = ROOT / BINDER_URLPATH.removeprefix("lab/tree/")
    assert notebook.is_file(), f"Binder's start page {notebook.relative_to(ROOT)} does not exist"
    json.loads(notebook.read_text())


def test_readme_binder_link_uses_the_start_url() -> None:
    readme = ROOT / "README.md"
    if not readme.is_file():
        pytest.fail("README.md is missing")
    links = re.findall(r"https://mybinder\.org/v2/[^\s)\]]+", readme.read_text())
    assert links, "README.md should carry a Binder link"
    for link in links:
        assert "urlpath=" + BINDER_URLPATH in link.replace("%2F", "/"), f"Binder link does not open the start page: {link}"
