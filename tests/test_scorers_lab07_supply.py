"""Unit tests of lab 07 part A's scorers (aisec.grading.scorers.lab07_supply): no notebook. The scorers
rebuild the seeded scenario (advisory feed, requirements change, wheelhouse) as the grader does."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import pytest

from aisec.grading.scorers import SCORERS, Malformed
from aisec.lab07 import advisories, sbom, wheels

PLAN = SCORERS["lab07.plan_matches_pip_audit"]
SQUAT = SCORERS["lab07.typosquats_caught"]
HASH = SCORERS["lab07.hash_pins"]


def test_plan_scorer_rewards_the_resolvers_plan_only() -> None:
    pins = {"torch": "2.4.0", "transformers": "4.30.0", "numpy": "1.26.4"}
    ref = {"pins": pins, "as_of": "2026-01-01", "plan": {}}
    assert PLAN(ref, {"plan": {"torch": "2.6.0", "transformers": "4.49.0"}}) == 1.0
    # an older feed knows fewer advisories: the latest fixes are then not the minimal plan
    old = {"pins": pins, "as_of": "2024-01-01", "plan": {}}
    assert PLAN(old, {"plan": {"torch": "2.6.0", "transformers": "4.49.0"}}) < 1.0
    assert PLAN(ref, {"plan": {"torch": "2.6.0"}}) == pytest.approx(0.5)
    assert PLAN(ref, {"plan": {"torch": "2.6.0", "transformers": "4.49.0", "numpy": "2.0.0"}}) < 1.0


def test_plan_scorer_refuses_malformed_values() -> None:
    ref = {"pins": {"torch": "2.4.0"}, "as_of": "2026-01-01", "plan": {}}
    for bad in (None, {"plan": [1]}, {"plan": {"torch": 2.6}}, {"other": {}}):
        with pytest.raises(Malformed):
            PLAN(ref, bad)


def test_typosquat_scorer_knows_the_planted_name() -> None:
    seeds = [3, 4, 5]
    planted = [sorted(set(sbom.requirements_change(s)[1]) - set(sbom.STACK) - set(sbom.NEW_DEPENDENCIES)) for s in seeds]
    assert all(len(p) == 1 for p in planted)
    ref = {"seeds": seeds, "suspects": planted}
    assert SQUAT(ref, {"suspects": planted}) == 1.0
    legit = [sorted(set(sbom.requirements_change(s)[1]) & set(sbom.NEW_DEPENDENCIES)) for s in seeds]
    assert SQUAT(ref, {"suspects": [p + n for p, n in zip(planted, legit)]}) == 0.0
    assert SQUAT(ref, {"suspects": [planted[0], [], []]}) == pytest.approx(1 / 3)
    with pytest.raises(Malformed):
        SQUAT(ref, {"suspects": planted[:2]})


def _pins(seed: int, n: int) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        paths = wheels.build_wheelhouse(Path(tmp), seed, n=n)
        return "".join(f"{wheels.wheel_project(p)[0]}=={wheels.wheel_project(p)[1]} "
                       f"--hash=sha256:{hashlib.sha256(p.read_bytes()).hexdigest()}\n" for p in paths)


def test_hash_scorer_recomputes_the_digests() -> None:
    ref = {"seed": 7, "n": 4, "requirements": ""}
    good = _pins(7, 4)
    assert HASH(ref, {"requirements": good}) == 1.0
    assert HASH(ref, {"requirements": _pins(8, 4)}) < 1.0  # another wheelhouse's digests
    first, *rest = good.splitlines()
    wrong = first[:-1] + ("0" if first[-1] != "0" else "1")
    assert HASH(ref, {"requirements": "\n".join([wrong, *rest])}) == pytest.approx(0.75)
    assert HASH(ref, {"requirements": good + "numpy==2.1.3\n"}) == 0.0  # not a hash pin: pip would refuse the file
    with pytest.raises(Malformed):
        HASH(ref, {"requirements": 3})
