"""pyproject.toml is the one source of truth for dependencies; environment.yml (Binder) must mirror it."""

from __future__ import annotations

import tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import ROOT


def pyproject_requirements(text: str) -> dict[str, Requirement]:
    project = tomllib.loads(text)["project"]
    return {canonicalize_name(r.name): r for r in map(Requirement, project["dependencies"])}


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
    problems = [f"{name} is in pyproject.toml but not in environment.yml" for name in sorted(set(py) - set(env))]
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
    ],
    ids=["missing-in-env", "extra-in-env", "different-pin", "torch-drift"],
)
def test_the_consistency_check_catches_drift(edit, expected: str) -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    environment = edit((ROOT / "environment.yml").read_text())
    problems = mismatches(pyproject, environment)
    assert any(p.startswith(expected) for p in problems), problems
