"""Lab 7, part A: CycloneDX SBOMs of a small Python environment, before and after a requirements change.

The environment is real but tiny: ``python -m venv --without-pip`` plus one ``*.dist-info/METADATA``
per component (what an installer leaves behind, without the code), so ``cyclonedx-py environment``
discovers it as it would a full install, in a fraction of a second. The requirements change is
seeded: a version bump, a dropped package, a legitimate new dependency and a planted typosquat of a
name the stack already uses (one edit away, a separator trick or a look-alike letter).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

# The stack before the change: name -> version (real projects, real versions).
STACK = {"torch": "2.6.0", "transformers": "4.49.0", "safetensors": "0.5.3", "numpy": "2.1.3",
         "tokenizers": "0.21.0", "huggingface-hub": "0.29.1", "requests": "2.32.3", "pillow": "11.1.0",
         "scikit-learn": "1.6.1", "onnx": "1.17.0", "pyyaml": "6.0.2", "tqdm": "4.67.1"}
# Names that may legitimately appear in a change (far from every name above).
NEW_DEPENDENCIES = {"accelerate": "1.4.0", "sentencepiece": "0.2.0", "protobuf": "5.29.3", "regex": "2024.11.6"}
# Look-alike letters an attacker swaps in (each pair reads alike in many fonts).
LOOKALIKES = {"l": "1", "o": "0", "m": "rn", "w": "vv", "i": "l"}


def typosquat(name: str, rng: np.random.Generator) -> str:
    """A name that a hurried reader takes for ``name``: one letter dropped, doubled or swapped with
    its neighbour, a separator added or removed, or a look-alike letter."""
    kinds = ["drop", "double", "swap", "separator", "lookalike"]
    while True:
        kind = kinds[int(rng.integers(len(kinds)))]
        i = int(rng.integers(1, len(name) - 1))
        if kind == "drop":
            out = name[:i] + name[i + 1:]
        elif kind == "double":
            out = name[:i] + name[i] + name[i:]
        elif kind == "swap":
            out = name[:i] + name[i + 1] + name[i] + name[i + 2:]
        elif kind == "separator":
            out = name.replace("-", "", 1) if "-" in name else name[:i] + "-" + name[i:]
        else:
            spots = [j for j, c in enumerate(name) if c in LOOKALIKES]
            if not spots:
                continue
            j = spots[int(rng.integers(len(spots)))]
            out = name[:j] + LOOKALIKES[name[j]] + name[j + 1:]
        if out != name and "--" not in out and not out.startswith("-") and not out.endswith("-"):
            return out


def requirements_change(seed: int) -> tuple[dict[str, str], dict[str, str]]:
    """(components before, components after) a seeded requirements change: one version bump, one
    package removed, one legitimate new dependency, one typosquat of a stack name added."""
    rng = np.random.default_rng(seed)
    before = dict(STACK)
    after = dict(STACK)
    names = sorted(STACK)
    bumped, dropped, squatted = (names[int(k)] for k in rng.choice(len(names), size=3, replace=False))
    major, minor, *rest = after[bumped].split(".")
    after[bumped] = ".".join([major, str(int(minor) + 1), *["0" for _ in rest]])
    del after[dropped]
    new = sorted(NEW_DEPENDENCIES)[int(rng.integers(len(NEW_DEPENDENCIES)))]
    after[new] = NEW_DEPENDENCIES[new]
    after[typosquat(squatted, rng)] = STACK[squatted]  # same version as the real one: it looks right
    return before, after


def make_environment(folder: Path) -> Path:
    """A virtual environment without pip in ``folder``; returns its interpreter."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, capture_output=True)
    return Path(folder) / "bin" / "python"


def _site_packages(python: Path) -> Path:
    found = sorted((python.parent.parent / "lib").glob("python3*/site-packages"))
    return found[0]


def install_metadata(python: Path, components: dict[str, str]) -> None:
    """Make the environment hold exactly ``components``: one dist-info folder each (metadata only)."""
    import shutil

    site = _site_packages(python)
    for old in site.glob("*.dist-info"):
        shutil.rmtree(old)
    for name, version in components.items():
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
        (info / "INSTALLER").write_text("aisec.lab07\n", encoding="utf-8")


def cyclonedx_environment(python: Path) -> dict[str, Any]:
    """The CycloneDX (JSON) SBOM that ``cyclonedx-py environment <python>`` writes, run in-process
    (its command-line entry point, so its argument handling and output are the tool's own)."""
    import contextlib
    import io
    import warnings

    from cyclonedx_py._internal.cli import run

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sbom.json"
        log = io.StringIO()
        # --no-validate skips the JSON-schema pass (a second of the tool's time); the tool then logs
        # "Validation skipped" on stderr, kept here unless it fails. Its deprecation warnings are its own.
        with contextlib.redirect_stderr(log), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            code = run(argv=["environment", str(python), "--of", "JSON", "--output-reproducible", "--no-validate",
                             "-o", str(out)])
        if code != 0:
            raise RuntimeError(f"cyclonedx-py environment failed ({code}): {log.getvalue()}")
        return json.loads(out.read_text(encoding="utf-8"))


def sbom_pair(seed: int, work: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """SBOMs of one environment before and after the seeded requirements change (made in ``work``)."""
    before, after = requirements_change(seed)
    python = make_environment(Path(work) / f"venv-{seed}")
    install_metadata(python, before)
    old = cyclonedx_environment(python)
    install_metadata(python, after)
    return old, cyclonedx_environment(python)


def synthetic_sbom(components: dict[str, str]) -> dict[str, Any]:
    """A CycloneDX 1.6 document shaped like cyclonedx-py's output, without running it (for fast,
    many-case checks): components with name, version, purl and bom-ref."""
    comps = [{"bom-ref": f"{n}=={v}", "name": n, "purl": f"pkg:pypi/{n.lower()}@{v}", "type": "library",
              "version": v} for n, v in sorted(components.items())]
    return {"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1, "components": comps}
