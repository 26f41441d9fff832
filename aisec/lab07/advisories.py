"""Lab 7, part A: the offline advisory snapshot and the AI stacks the lab audits.

``osv/`` holds real OSV records of the PyPA advisory database (torch, transformers, onnx, mlflow),
converted from YAML to JSON field by field; ``osv/SOURCES.tsv`` names each record's source path and
commit. Nothing here decides which requirement an advisory affects: that is the student's matcher.

pip-audit's machinery is used as it ships: :func:`pip_audit_service` builds pip-audit's own
``OsvService`` (its OSV response parsing: withdrawn records, aliases, fix versions) whose HTTP session
is replaced by :class:`SnapshotSession`, which answers OSV ``/v1/query`` POSTs from the snapshot with
a matcher the caller passes in. pip-audit cannot read an offline OSV folder itself (its ``osv``
service only queries api.osv.dev; ``--disable-pip --no-deps`` still needs that service), hence the
session.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

#: A matcher: (OSV records, canonical package name, version string) -> the records that affect it.
Matcher = Callable[[list[dict[str, Any]], str, str], list[dict[str, Any]]]

PACKAGES = ("torch", "transformers", "onnx", "mlflow")
# Packages of the stack that the snapshot has no advisory for (they must come out clean).
CLEAN = {"numpy": ["1.26.4", "2.1.3"], "safetensors": ["0.4.5", "0.5.3"], "scikit-learn": ["1.5.2", "1.6.1"]}
# How a requirements file may spell a name (PEP 503 normalises all of them to the same project).
SPELLINGS = {"scikit-learn": ["scikit-learn", "scikit_learn", "Scikit.Learn"], "torch": ["torch", "Torch"],
             "transformers": ["transformers", "Transformers"], "onnx": ["onnx", "ONNX"],
             "mlflow": ["mlflow", "MLflow"], "numpy": ["numpy", "NumPy"], "safetensors": ["safetensors"]}


@lru_cache(maxsize=1)
def _records() -> tuple[str, ...]:
    folder = resources.files("aisec.lab07") / "osv"
    return tuple(sorted(p.read_text(encoding="utf-8") for p in folder.iterdir() if p.name.endswith(".json")))


def load_snapshot() -> list[dict[str, Any]]:
    """Every OSV record of the snapshot, as fresh dicts (sorted by id)."""
    return sorted((json.loads(text) for text in _records()), key=lambda r: r["id"])


def snapshot_as_of(date: str) -> list[dict[str, Any]]:
    """The records already published on ``date`` (ISO ``YYYY-MM-DD``): the feed an audit run on that
    day would have seen (the records' later modifications are kept: OSV keeps no history)."""
    return [r for r in load_snapshot() if r["published"][:10] <= date]


def sources() -> list[dict[str, str]]:
    """Where each record comes from: file, source_path (in the advisory database), commit."""
    lines = (resources.files("aisec.lab07") / "osv" / "SOURCES.tsv").read_text(encoding="utf-8").splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, line.split("\t"))) for line in lines[1:]]


def _versions_seen(records: list[dict[str, Any]], package: str) -> list[str]:
    """Versions the snapshot names for ``package``: enumerated affected versions and fix versions."""
    seen: set[str] = set()
    for rec in records:
        for aff in rec.get("affected", []):
            if aff["package"]["name"] != package:
                continue
            seen.update(aff.get("versions", []))
            for rng in aff.get("ranges", []):
                if rng["type"] == "ECOSYSTEM":
                    seen.update(ev["fixed"] for ev in rng["events"] if "fixed" in ev)
    return sorted(seen)


def stack_pins(seed: int) -> dict[str, str]:
    """An AI stack's pins, drawn with ``seed``: the four advised packages at versions the snapshot
    names (old and new), some with a local version label (``+cpu``), plus packages without advisories.
    Keys are canonical names."""
    rng = np.random.default_rng(seed)
    records = load_snapshot()
    pins: dict[str, str] = {}
    for pkg in PACKAGES:
        versions = _versions_seen(records, pkg)
        version = versions[int(rng.integers(len(versions)))]
        if pkg == "torch" and rng.random() < 0.5:
            version += "+cpu"  # the CPU wheel's local label: ``versions`` lists never name it
        pins[pkg] = version
    for pkg, versions in CLEAN.items():
        pins[pkg] = versions[int(rng.integers(len(versions)))]
    return pins


def requirements_text(pins: dict[str, str], seed: int) -> str:
    """A pinned requirements file for ``pins`` as people write them: comments, blank lines, extras,
    environment markers, names in other spellings; seeded."""
    rng = np.random.default_rng(seed)
    lines = ["# inference service: pinned by hand, reviewed 2024", ""]
    for name, version in pins.items():
        spelled = SPELLINGS.get(name, [name])[int(rng.integers(len(SPELLINGS.get(name, [name]))))]
        extra = "[sentencepiece]" if name == "transformers" and rng.random() < 0.5 else ""
        marker = ' ; python_version >= "3.9"' if rng.random() < 0.3 else ""
        comment = "  # pinned for the demo" if rng.random() < 0.3 else ""
        lines.append(f"{spelled}{extra}=={version}{marker}{comment}")
    return "\n".join(lines) + "\n"


class _Response:
    def __init__(self, body: dict[str, Any]) -> None:
        self._body = body

    def raise_for_status(self) -> None:
        return None

    def json(self) -> dict[str, Any]:
        return self._body


class SnapshotSession:
    """Stands in for pip-audit's HTTP session: answers OSV ``/v1/query`` POSTs from the snapshot.

    ``matcher`` decides which records affect the queried (name, version); the session only speaks
    the protocol (an empty object when nothing matches, as api.osv.dev does)."""

    def __init__(self, records: list[dict[str, Any]], matcher: Matcher) -> None:
        self.records = records
        self.matcher = matcher
        self.queries: list[tuple[str, str]] = []

    def post(self, url: str, data: str, timeout: Any = None) -> _Response:
        query = json.loads(data)
        name, version = query["package"]["name"], query["version"]
        self.queries.append((name, version))
        hits = self.matcher(self.records, name, version)
        return _Response({"vulns": hits} if hits else {})


def pip_audit_service(matcher: Matcher, records: list[dict[str, Any]] | None = None) -> Any:
    """pip-audit's own ``OsvService``, answering from the snapshot through ``matcher``."""
    from pip_audit._service.osv import OsvService

    service = OsvService.__new__(OsvService)  # its __init__ only opens a cached HTTP session, replaced here
    service.session = SnapshotSession(load_snapshot() if records is None else records, matcher)
    service.timeout = None
    service.osv_url = OsvService.DEFAULT_OSV_URL
    return service


def pip_audit_report(pins: dict[str, str], matcher: Matcher,
                     records: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Audit ``pins`` with pip-audit's service and fix resolver over ``records`` (default: the whole snapshot).

    Returns ``{"findings": {name: sorted primary ids}, "fixes": {name: version or None}}``; a fix is
    None where pip-audit finds no version that fixes every advisory."""
    from packaging.version import Version
    from pip_audit._fix import ResolvedFixVersion, resolve_fix_versions
    from pip_audit._service.interface import ResolvedDependency

    service = pip_audit_service(matcher, records)
    results = {}
    findings: dict[str, list[str]] = {}
    for name, version in pins.items():
        dep, vulns = service.query(ResolvedDependency(name=name, version=Version(version)))
        results[dep] = vulns
        if vulns:
            findings[name] = sorted(v.id for v in vulns)
    fixes: dict[str, str | None] = {}
    for fix in resolve_fix_versions(service, results):
        fixes[fix.dep.name] = str(fix.version) if isinstance(fix, ResolvedFixVersion) else None
    return {"findings": findings, "fixes": fixes}
