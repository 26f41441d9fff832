"""Lab 07, part A (dependencies and artefacts): what the grader measures itself, outside the
student's process.

* ``lab07.plan_matches_pip_audit``: the grader runs pip-audit's own fix resolver (its ``OsvService``
  answering from the lab's OSV snapshot as of the reference's date) on the reference's pins and
  compares the student's upgrade plan with it, package by package.
* ``lab07.typosquats_caught``: the grader rebuilds each seeded requirements change and knows which
  name was planted; a change counts when the planted name is the student's only suspect.
* ``lab07.hash_pins``: the grader rebuilds the reference's wheelhouse (same seed, same bytes),
  recomputes every sha256 and counts the wheels the student's requirements text pins right.

Each returns a rate in [0, 1]; a value of the wrong shape raises :class:`Malformed` with a fixed text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from aisec.grading.scorers.common import Malformed, reference_field

MAX_PINS = 50
MAX_TEXT = 20_000


def _grader_affects(record: dict[str, Any], name: str, version: str) -> bool:
    """The grader's own reading of an OSV record (ECOSYSTEM ranges, PEP 440 order)."""
    from packaging.utils import canonicalize_name
    from packaging.version import Version

    if record.get("withdrawn"):
        return False
    v = Version(version)
    for aff in record.get("affected", []):
        if aff["package"]["ecosystem"] != "PyPI" or canonicalize_name(aff["package"]["name"]) != canonicalize_name(name):
            continue
        for rng in aff.get("ranges", []):
            if rng["type"] != "ECOSYSTEM":
                continue
            inside = False
            for ev in sorted(rng["events"], key=lambda e: Version(next(iter(e.values())))):
                if "introduced" in ev:
                    inside = inside or v >= Version(ev["introduced"])
                elif "fixed" in ev and v >= Version(ev["fixed"]):
                    inside = False
                elif "last_affected" in ev and v > Version(ev["last_affected"]):
                    inside = False
            if inside:
                return True
    return False


def plan_matches_pip_audit(reference: Any, student: Any) -> float:
    from aisec.lab07 import advisories

    pins = reference_field(reference, "pins", dict)
    date = reference_field(reference, "as_of", str)
    plan = student.get("plan") if isinstance(student, dict) else None
    if type(plan) is not dict or len(plan) > MAX_PINS:
        raise Malformed("should be a dict with the upgrade plan under 'plan'")
    if not all(type(k) is str and (v is None or type(v) is str) for k, v in plan.items()):
        raise Malformed("the plan should map package names to version strings (or None)")
    records = advisories.snapshot_as_of(date)
    service_matcher = lambda recs, n, v: [r for r in recs if _grader_affects(r, n, v)]  # noqa: E731
    from packaging.version import Version
    from pip_audit._fix import ResolvedFixVersion, resolve_fix_versions
    from pip_audit._service.interface import ResolvedDependency

    service = advisories.pip_audit_service(service_matcher, records)
    results = dict(service.query(ResolvedDependency(name=n, version=Version(v))) for n, v in pins.items())
    truth = {fix.dep.name: (str(fix.version) if isinstance(fix, ResolvedFixVersion) else None)
             for fix in resolve_fix_versions(service, results)}
    keys = set(truth) | set(plan)
    if not keys:
        return 1.0
    return sum(k in truth and k in plan and truth[k] == plan[k] for k in keys) / len(keys)


def typosquats_caught(reference: Any, student: Any) -> float:
    from packaging.utils import canonicalize_name

    from aisec.lab07 import sbom

    seeds = reference_field(reference, "seeds", list)
    found = student.get("suspects") if isinstance(student, dict) else None
    if type(found) is not list or len(found) != len(seeds):
        raise Malformed("should hold one list of suspects per requirements change")
    if not all(type(s) is list and all(type(n) is str for n in s) for s in found):
        raise Malformed("each entry should be a list of names")
    caught = 0
    for seed, names in zip(seeds, found):
        before, after = sbom.requirements_change(int(seed))
        planted = {canonicalize_name(n) for n in set(after) - set(before) - set(sbom.NEW_DEPENDENCIES)}
        caught += {canonicalize_name(n) for n in names} == planted
    return caught / len(seeds) if seeds else 0.0


_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)\s+--hash=sha256:([0-9a-f]{64})\s*$")


def hash_pins(reference: Any, student: Any) -> float:
    import hashlib
    import tempfile
    from pathlib import Path

    from packaging.utils import canonicalize_name

    from aisec.lab07 import wheels

    seed = reference_field(reference, "seed", int)
    n = reference_field(reference, "n", int)
    text = student.get("requirements") if isinstance(student, dict) else None
    if type(text) is not str or len(text) > MAX_TEXT:
        raise Malformed("should be a dict with the requirements text under 'requirements'")
    pins: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _PIN.match(line)
        if match is None:
            return 0.0  # a line pip would not read as a hash pin
        pins[canonicalize_name(match.group(1))] = (match.group(2), match.group(3))
    with tempfile.TemporaryDirectory() as tmp:
        truth = {}
        for path in wheels.build_wheelhouse(Path(tmp), seed, n=n):
            name, version = wheels.wheel_project(path)
            truth[canonicalize_name(name)] = (version, hashlib.sha256(path.read_bytes()).hexdigest())
    if set(pins) - set(truth):
        return 0.0  # a pin for a project the wheelhouse does not hold
    return sum(pins.get(k) == v for k, v in truth.items()) / len(truth)


SCORERS: dict[str, Callable[[Any, Any], float]] = {
    "lab07.plan_matches_pip_audit": plan_matches_pip_audit,
    "lab07.typosquats_caught": typosquats_caught,
    "lab07.hash_pins": hash_pins,
}
