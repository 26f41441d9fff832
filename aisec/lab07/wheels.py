"""Lab 7, part A: a local wheelhouse of tiny, real wheels, a tampered copy, and pip run on it offline.

The wheels are built here byte for byte (a zip with ``*.dist-info/METADATA``, ``WHEEL`` and a
``RECORD`` of sha256 digests, fixed timestamps), so the same seed gives the same bytes and the same
sha256 on every machine: the grader rebuilds them to recompute the hashes itself. pip installs them
with ``--no-index --find-links``: nothing leaves the machine.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

# Distribution names as their projects spell them (wheel file names use the escaped form: '-' -> '_').
PROJECTS = ("tiny-tokenizer", "toy_vocab", "Mini.Runtime", "prompt-guard-lite", "safe_loader")
_EPOCH = (1980, 1, 1, 0, 0, 0)


def _escape(name: str) -> str:
    """A distribution name as a wheel file name writes it (PEP 427 / binary distribution format)."""
    import re

    return re.sub(r"[-_.]+", "_", name).lower()


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(folder: Path, name: str, version: str, code: str) -> Path:
    """Write one pure-Python wheel of project ``name`` holding one module with ``code``."""
    module = _escape(name)
    dist_info = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": code.encode(),
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: aisec.lab07\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files.items())
    files[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    path = Path(folder) / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for arcname, data in files.items():
            info = zipfile.ZipInfo(arcname, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return path


def build_wheelhouse(folder: Path, seed: int, n: int = 3) -> list[Path]:
    """``n`` tiny wheels (distinct projects, seeded versions and code) in ``folder``, sorted by name."""
    rng = np.random.default_rng(seed)
    Path(folder).mkdir(parents=True, exist_ok=True)
    picks = rng.choice(len(PROJECTS), size=n, replace=False)
    paths = []
    for i in sorted(int(p) for p in picks):
        version = f"{rng.integers(0, 3)}.{rng.integers(0, 20)}.{rng.integers(0, 9)}"
        code = f'"""{PROJECTS[i]}: a tiny helper."""\nVALUE = {int(rng.integers(1_000_000))}\n'
        paths.append(build_wheel(Path(folder), PROJECTS[i], version, code))
    return sorted(paths)


def wheel_project(path: Path) -> tuple[str, str]:
    """(project name as METADATA says it, version) of a wheel, read from inside the wheel."""
    with zipfile.ZipFile(path) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        fields = dict(line.split(": ", 1) for line in zf.read(meta).decode().splitlines() if ": " in line)
    return fields["Name"], fields["Version"]


def tamper_wheel(path: Path) -> None:
    """The attacker's rebuild: same name, same version, a payload added to the module, a RECORD that
    matches the new bytes (pip's own wheel checks pass; only a pinned hash can tell)."""
    name, version = wheel_project(path)
    with zipfile.ZipFile(path) as zf:
        module = next(n for n in zf.namelist() if n.endswith("/__init__.py"))
        code = zf.read(module).decode()
    build_wheel(Path(path).parent, name, version, code + "import os  # payload: runs at import\n")


# Runs pip's own command-line entry point once per job inside ONE fresh interpreter: pip's start-up
# (a second or two on a busy machine) is paid once, and the notebook's kernel never imports pip.
_DRIVER = """
import contextlib, io, json, sys
from pip._internal.cli.main import main
for job in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(err):
        code = main(job["argv"])
    with open(job["log"], "w", encoding="utf-8") as fh:
        json.dump({"returncode": code, "stderr": err.getvalue()}, fh)
"""


def pip_dry_run(jobs: list[tuple[str, Path]], work: Path) -> list[subprocess.CompletedProcess[str]]:
    """Run the real pip on each (requirements text, wheel folder) job:
    ``pip install --require-hashes --no-index --find-links <folder> --dry-run --report <file> -r <file>``.

    pip resolves, reads the wheels from the folder and checks every hash exactly as a real install does,
    then stops before writing into the environment (``--dry-run``), which keeps the course's venv
    untouched. Each result's ``report`` attribute is pip's JSON install report (None when pip failed)."""
    import json

    specs = []
    for i, (requirements, wheel_dir) in enumerate(jobs):
        req, report, log = (Path(work) / f"pip-{i}{ext}" for ext in ("-requirements.txt", "-report.json", "-log.json"))
        req.write_text(requirements, encoding="utf-8")
        report.unlink(missing_ok=True)
        argv = ["install", "--quiet", "--no-color", "--disable-pip-version-check", "--no-cache-dir", "--require-hashes",
                "--no-index", "--find-links", str(wheel_dir), "--dry-run", "--ignore-installed", "--report", str(report),
                "-r", str(req)]
        specs.append({"argv": argv, "log": str(log), "report": str(report)})
    subprocess.run([sys.executable, "-c", _DRIVER, json.dumps(specs)], check=True, capture_output=True, timeout=300)
    results = []
    for spec in specs:
        log = json.loads(Path(spec["log"]).read_text(encoding="utf-8"))
        done = subprocess.CompletedProcess(["pip", *spec["argv"]], log["returncode"], "", log["stderr"])
        report = Path(spec["report"])
        done.report = json.loads(report.read_text()) if log["returncode"] == 0 and report.exists() else None  # type: ignore[attr-defined]
        results.append(done)
    return results
