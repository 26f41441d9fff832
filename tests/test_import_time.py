"""Importing the course's helpers loads no heavy library: a lab's first cell pays only for what it uses.

Each module is imported in a fresh interpreter and the test reads ``sys.modules`` afterwards, so an
import that another test already made cannot hide one. torch, transformers, opacus, scikit-learn,
matplotlib, pandas and scipy load inside the functions that need them.
(benchmarks/lab_times.py measures what the labs' setup cells cost.)
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "opacus", "sklearn", "matplotlib", "pandas", "scipy")

LIGHT_MODULES = [
    "aisec",
    "aisec.cache",
    "aisec.check",
    "aisec.data",
    "aisec.plots",
    "aisec.seeding",
    "aisec.progress",
    "aisec.lab01.leakage",
    "aisec.lab01.assistant",
    "aisec.lab02.inversion",
    "aisec.llm",
    "aisec.lab05.mail",
    "aisec.lab05.rag",
    "aisec.lab05.secrets",
    "aisec.lab05.tasks",
    "aisec.lab06.dp",
    "aisec.lab06.fedavg",
    "aisec.lab06.leakage",
    "aisec.lab06.poisoning",
    "aisec.lab06.robust",
    "aisec.lab06.secagg",
    "aisec.lab01.checks",
    "aisec.lab02.checks",
    "aisec.lab05.checks",
    "aisec.lab06.checks",
]


def heavy_loaded_by(module: str) -> list[str]:
    """The heavy top-level packages present in ``sys.modules`` after importing ``module`` alone."""
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_importing_a_helper_loads_no_heavy_library(module: str) -> None:
    assert heavy_loaded_by(module) == []


def test_models_loads_torch_and_nothing_else_heavy() -> None:
    # aisec.models defines torch modules (MLP subclasses nn.Module), so torch itself is needed at import.
    assert heavy_loaded_by("aisec.models") == ["torch"]


def test_the_check_can_fail() -> None:
    # The probe reports a heavy import when one happens, so the tests above can fail.
    assert heavy_loaded_by("sklearn.linear_model") != []
