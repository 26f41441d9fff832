"""The grading worker's image (grader/worker/Dockerfile) against pyproject.toml: no drift by construction.

Docker does not run here, so the image is not built; what can drift is checked instead: the Python version,
the dependency list (installed from pyproject.toml itself, never restated), the CPU-only torch choice,
the no-deps list, bubblewrap, the worker command, and nothing secret copied into the image.
"""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

from conftest import ROOT

DOCKERFILE = ROOT / "grader" / "worker" / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
            for line in (ln.strip() for ln in joined.splitlines()) if line]


def test_python_is_the_version_pyproject_requires() -> None:
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minor = re.search(r">=\s*3\.(\d+)", requires)
    assert minor, requires
    base = [args for kind, args in instructions(DOCKERFILE.read_text()) if kind == "FROM"]
    assert len(base) == 1 and re.match(rf"python:3\.{minor.group(1)}\b", base[0]), base


def test_dependencies_come_from_pyproject_with_cpu_torch_and_the_no_deps_list() -> None:
    steps = instructions(DOCKERFILE.read_text())
    copied = " ".join(args for kind, args in steps if kind == "COPY")
    for needed in ("pyproject.toml", "aisec/", "tools/"):
        assert needed in copied, f"the image must copy {needed}"
    run = " ".join(args for kind, args in steps if kind == "RUN")
    assert re.search(r"pip install [^&|]*\$\(python tools/torch_index\.py\) \.", run), (
        "install the project itself (pyproject.toml's list) with tools/torch_index.py's index choice")
    assert '["tool"]["aisec"]["no-deps"]' in run and "--no-deps" in run, "read the no-deps list from pyproject.toml"
    assert "bubblewrap" in run, "the sandbox needs bubblewrap"
    # No second dependency list to drift: no package of pyproject.toml is named in a RUN step.
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.match(r"[A-Za-z0-9_.-]+", d).group(0).lower() for d in deps}  # type: ignore[union-attr]
    restated = sorted(n for n in names if re.search(rf"(?<![\w/.-]){re.escape(n)}[=<>~]", run.lower()))
    assert not restated, f"the Dockerfile restates pinned dependencies: {restated}"


def test_nothing_secret_is_copied_and_the_worker_command_exists() -> None:
    steps = instructions(DOCKERFILE.read_text())
    copied = " ".join(args for kind, args in steps if kind in ("COPY", "ADD"))
    for secret in ("solutions", ".workspace", "gradebook", "references", " . "):
        assert secret not in f" {copied} ", f"the worker image must not contain {secret.strip()}"
    entry = [args for kind, args in steps if kind == "ENTRYPOINT"]
    assert entry == ['["dask", "worker"]'], entry
    assert shutil.which("dask") or (ROOT / ".venv" / "bin" / "dask").exists(), "distributed's dask command is missing"


def test_every_copied_path_exists() -> None:
    for kind, args in instructions(DOCKERFILE.read_text()):
        if kind == "COPY":
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: no such path in the repository"
