"""Visible checks of lab 7, part A (dependencies and artefacts): q1-q5. They run on the visible seed
and data only; hidden tests call the same answers on other seeds, other requirement files, an older
advisory feed, other SBOM pairs, other wheels and other tampered model folders. The checks test
properties of the answers (for the advisory checks: a rule that holds for this snapshot, where every
range opens at 0 and closes at one fix version), never a copy of the solution."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

from aisec.check import Check, expect_type


def _by_id(rid: str) -> dict[str, Any]:
    from aisec.lab07 import advisories

    return next(r for r in advisories.load_snapshot() if r["id"] == rid)


# ------------------------------------------------------------------------------ q1 audit


def _q1_ranges(answer: Any) -> None:
    osv_affects, _ = answer
    rec = _by_id("PYSEC-2025-41")
    for version, hit in (("2.5.1", True), ("1.0.0", True), ("2.6.0", False), ("2.7.1", False)):
        out = osv_affects(rec, "torch", version)
        expect_type(out, bool, "osv_affects(...)")
        assert out is hit, "CVE-2025-32434 (PYSEC-2025-41) affects torch below 2.6.0 and nothing from 2.6.0 on"


def _q1_beyond_the_list(answer: Any) -> None:
    osv_affects, _ = answer
    rec = _by_id("PYSEC-2025-41")
    assert osv_affects(rec, "torch", "2.5.1+cpu") is True, \
        "2.5.1+cpu is not in the record's `versions` list, but it is below the fix: evaluate the range (PEP 440 order)"
    assert osv_affects(rec, "torch", "2.4.2") is True, "a version the record does not enumerate can still be in its range"


def _q1_names(answer: Any) -> None:
    osv_affects, _ = answer
    rec = _by_id("PYSEC-2025-41")
    assert osv_affects(rec, "Torch", "2.5.1") is True, "compare project names as PEP 503 normalises them"
    assert osv_affects(rec, "transformers", "2.5.1") is False, "a record only affects the packages it names"


# What the visible checks expect on the visible data (seed 0), written out rather than computed, so that this
# module, which students can read, holds no audit or planning logic. tests/test_lab07_supply_scenario.py
# recomputes them with the grader's own OSV reading.
VISIBLE_AFFECTED = {
    "torch": ["PYSEC-2024-259", "PYSEC-2025-41"],
    "transformers": ["PYSEC-2023-300", "PYSEC-2023-301", "PYSEC-2024-227", "PYSEC-2024-228", "PYSEC-2024-229",
                     "PYSEC-2025-40"],
    "onnx": ["PYSEC-2023-38", "PYSEC-2024-222", "PYSEC-2024-223", "PYSEC-2025-10"],
    "mlflow": ["PYSEC-2022-28", "PYSEC-2023-252", "PYSEC-2023-253", "PYSEC-2023-260", "PYSEC-2023-28", "PYSEC-2023-280",
               "PYSEC-2023-281", "PYSEC-2023-29", "PYSEC-2023-308", "PYSEC-2023-309", "PYSEC-2023-68", "PYSEC-2023-69",
               "PYSEC-2023-70", "PYSEC-2024-224", "PYSEC-2024-239", "PYSEC-2024-240", "PYSEC-2024-241", "PYSEC-2024-242",
               "PYSEC-2024-243", "PYSEC-2024-244", "PYSEC-2024-51", "PYSEC-2025-17", "PYSEC-2025-52"],
}
VISIBLE_PLANS = {
    "2026-01-01": {"torch": "2.6.0", "transformers": "4.49.0", "onnx": "1.16.2", "mlflow": "3.1.0"},
    "2024-01-01": {"transformers": "4.36.0", "onnx": "1.13.0", "mlflow": "2.9.2"},
}
VISIBLE_DIFF = {
    "changed": [["scikit-learn", "1.6.1", "1.7.0"]],
    "added": ["pkg:pypi/accelerate@1.4.0", "pkg:pypi/tkenizers@0.21.0"],
    "removed": ["pkg:pypi/safetensors@0.5.3"],
}


def _q1_file(answer: Any) -> None:
    from aisec.lab07 import advisories

    _, affected_requirements = answer
    pins = advisories.stack_pins(0)
    out = affected_requirements(advisories.requirements_text(pins, 0), advisories.load_snapshot())
    expect_type(out, dict, "affected_requirements(...)")
    assert set(out) == set(VISIBLE_AFFECTED), \
        "the affected packages (canonical names, clean packages left out) are not right"
    assert all(out[k] == VISIBLE_AFFECTED[k] for k in VISIBLE_AFFECTED), \
        "each package's list should hold every affecting record id, sorted"


# ------------------------------------------------------------------------------ q2 upgrade plan


def _q2_fixes_everything(answer: Any) -> None:
    from packaging.version import Version

    from aisec.lab07 import advisories

    plan = answer(advisories.stack_pins(0), advisories.load_snapshot())
    expect_type(plan, dict, "minimal_upgrade_plan(...)")
    for name, version in plan.items():
        expect_type(version, str, "a planned version")
    planned = {k: Version(v) for k, v in plan.items()}
    needed = {k: Version(v) for k, v in VISIBLE_PLANS["2026-01-01"].items()}
    assert all(k in planned and planned[k] >= v for k, v in needed.items()), \
        "a planned version is still affected by an advisory of the snapshot"


def _q2_minimal(answer: Any) -> None:
    from aisec.lab07 import advisories

    pins = advisories.stack_pins(0)
    for date, expected in VISIBLE_PLANS.items():
        plan = answer(pins, advisories.snapshot_as_of(date))
        assert not set(plan) - set(expected), "leave packages that no advisory affects out of the plan"
        assert plan == expected, \
            "each planned version should be the smallest fix version that clears every advisory of the feed"


# ------------------------------------------------------------------------------ q3 SBOM diff


def _q3_sets(answer: Any) -> None:
    from aisec.lab07 import sbom

    before, after = sbom.requirements_change(0)
    out = answer(sbom.synthetic_sbom(before), sbom.synthetic_sbom(after))
    expect_type(out, dict, "sbom_diff(...)")
    assert set(out) == {"added", "removed", "changed", "suspects"}, "return the keys added, removed, changed, suspects"
    assert out["changed"] == VISIBLE_DIFF["changed"], \
        "changed: [name, old version, new version] for each component whose version changed"
    assert out["added"] == VISIBLE_DIFF["added"], \
        "added: the purls of components that are new by name (a version change is not an addition)"
    assert out["removed"] == VISIBLE_DIFF["removed"], "removed: the purls of components gone by name"


def _q3_typosquat(answer: Any) -> None:
    from aisec.lab07 import sbom

    before, after = sbom.requirements_change(0)
    planted = sorted(set(after) - set(before) - set(sbom.NEW_DEPENDENCIES))
    legit = sorted(set(after) & set(sbom.NEW_DEPENDENCIES))
    out = answer(sbom.synthetic_sbom(before), sbom.synthetic_sbom(after))
    assert out["suspects"] == planted, "the planted look-alike of a stack name should be the only suspect"
    assert not set(out["suspects"]) & set(legit), "a new dependency whose name resembles nothing is not a suspect"


def _q3_lookalikes(answer: Any) -> None:
    from aisec.lab07 import sbom

    before = {"tqdm": "4.67.1", "pillow": "11.1.0", "torch": "2.6.0"}
    after = {**before, "tqdrn": "4.67.1", "pi1low": "11.1.0", "torchvision": "0.21.0"}
    out = answer(sbom.synthetic_sbom(before), sbom.synthetic_sbom(after))
    assert out["suspects"] == ["pi1low", "tqdrn"], \
        "'rn' reads as 'm' and '1' as 'l': catch look-alikes, but not a real sibling project like torchvision"


# ------------------------------------------------------------------------------ q4 hash pins


def _q4_pins(answer: Any) -> None:
    from aisec.lab07 import wheels

    with tempfile.TemporaryDirectory() as tmp:
        paths = wheels.build_wheelhouse(Path(tmp), 0)
        text = answer(Path(tmp))
        expect_type(text, str, "hash_pinned_requirements(...)")
        lines = [line for line in text.splitlines() if line.strip()]
        assert len(lines) == len(paths), "write one line per wheel"
        digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
        for line in lines:
            assert " --hash=sha256:" in line and "==" in line, "each line reads name==version --hash=sha256:<hex digest>"
            assert line.split("--hash=sha256:")[1].strip() in digests, \
                "a pinned digest is not the sha256 of any wheel's bytes (hash the whole .whl file)"


def _q4_names(answer: Any) -> None:
    from packaging.utils import canonicalize_name

    from aisec.lab07 import wheels

    with tempfile.TemporaryDirectory() as tmp:
        paths = wheels.build_wheelhouse(Path(tmp), 0)
        text = answer(Path(tmp))
        expected = sorted(f"{canonicalize_name(n)}=={v}" for n, v in map(wheels.wheel_project, paths))
        got = [line.split(" ")[0] for line in text.splitlines() if line.strip()]
        assert got == expected, "pin each project by its canonical name and exact version, lines sorted by name"


# ------------------------------------------------------------------------------ q5 triage


def _q5_cases(answer: Any, kinds: tuple[str, ...]) -> list[tuple[Any, Any]]:
    from aisec.lab07 import signing

    with tempfile.TemporaryDirectory() as tmp:
        out = []
        for case in signing.cases(Path(tmp), 0, [(k,) for k in kinds]):
            out.append((case, answer(case.folder, case.bundle, case.public_pem)))
        return out


def _q5_intact_and_files(answer: Any) -> None:
    for case, rep in _q5_cases(answer, ("intact", "modified", "added", "removed")):
        expect_type(rep, dict, "triage_signed_model(...)")
        assert set(rep) == {"signature_valid", "modified", "swapped", "added", "removed", "verdict"}, \
            "return the keys signature_valid, modified, swapped, added, removed, verdict"
        kind = case.kinds[0]
        assert rep["signature_valid"] is True, "the publisher's bundle checks with the publisher's key"
        assert (rep["verdict"] == "accept") == (kind == "intact"), "accept the intact folder and nothing else"
        for key in ("modified", "added", "removed"):
            assert (len(rep[key]) == 1) == (kind == key), f"the '{kind}' folder should show one file under '{kind}' only"


def _q5_swap(answer: Any) -> None:
    from aisec.lab07 import signing

    ((_, rep),) = _q5_cases(answer, ("swapped",))
    assert rep["swapped"] == sorted(signing.SHARDS), \
        "two shards of the same size exchanged: each now holds bytes the manifest signed under the other name"
    assert rep["verdict"] == "reject", "a swap keeps every size and every signed byte, but it is still tampering"


def _q5_signature(answer: Any) -> None:
    for case, rep in _q5_cases(answer, ("forged_manifest", "other_key")):
        assert rep["signature_valid"] is False, \
            f"'{case.kinds[0]}': the DSSE signature over the statement does not check with the publisher's key"
        assert rep["verdict"] == "reject", "an invalid signature means reject, whatever the manifest says"


CHECKS = {
    "q1": [Check("osv_affects follows the record's ECOSYSTEM range (torch and CVE-2025-32434)", _q1_ranges),
           Check("osv_affects compares PEP 440 versions, also ones the record does not enumerate", _q1_beyond_the_list),
           Check("osv_affects normalises project names and ignores other packages", _q1_names),
           Check("affected_requirements finds every advisory of the visible requirements file", _q1_file)],
    "q2": [Check("every planned version is clear of every advisory", _q2_fixes_everything),
           Check("the plan is minimal, leaves clean packages out and follows the feed's date", _q2_minimal)],
    "q3": [Check("sbom_diff reports added, removed and changed components by purl", _q3_sets),
           Check("the planted typosquat is the only suspect", _q3_typosquat),
           Check("look-alike letters are caught, a real sibling project is not", _q3_lookalikes)],
    "q4": [Check("one name==version --hash=sha256 line per wheel, with the wheel's real digest", _q4_pins),
           Check("projects are pinned by canonical name and exact version, sorted", _q4_names)],
    "q5": [Check("intact folder accepted; a modified, added or removed file is named and rejected", _q5_intact_and_files),
           Check("two same-size shards swapped are reported as swapped", _q5_swap),
           Check("a forged manifest or a bundle signed by another key fails the signature check", _q5_signature)],
}

HIDDEN_HINTS = {
    "q1_audit_test.findings": "affected_requirements on another stack's requirements file (other spellings, extras, markers)",
    "q1_audit_test.matcher_grid": "osv_affects on every record of the snapshot at versions around each fix, with local labels",
    "q1_audit_test.pip_audit_findings": "pip-audit's own OSV service, answering through your osv_affects, on another stack",
    "q2_upgrade_test.plans": "minimal_upgrade_plan on other stacks and on the feed as of other dates",
    "q2_upgrade_test.plan_matches_pip_audit": "the grader runs pip-audit's fix resolver on the same pins and feed and compares",
    "q3_sbom_diff_test.diffs": "sbom_diff on other seeded requirements changes",
    "q3_sbom_diff_test.typosquats_caught": "the grader knows which name was planted in each change: it alone must be a suspect",
    "q3_sbom_diff_test.cyclonedx_pair": "sbom_diff on two SBOMs that cyclonedx-py wrote for another change",
    "q4_hash_pins_test.requirements": "hash_pinned_requirements on another wheelhouse, compared line by line",
    "q4_hash_pins_test.hashes_recomputed": "the grader rebuilds the wheels and recomputes every digest itself",
    "q5_triage_test.reports": "triage_signed_model on another model, key and combinations of tamperings",
}
