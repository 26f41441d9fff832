"""Scenario tests of lab 7, part A (aisec.lab07.advisories, sbom, wheels, signing): the snapshot is what it
says, pip-audit's machinery reads it, the tools run offline and every attack does what the lab claims."""

from __future__ import annotations

import hashlib
import json
import zipfile
from importlib import resources
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from aisec.lab07 import advisories, sbom, signing, wheels


def test_snapshot_files_are_osv_records_with_their_sources() -> None:
    folder = resources.files("aisec.lab07") / "osv"
    files = sorted(p.name for p in folder.iterdir() if p.name.endswith(".json"))
    records = advisories.load_snapshot()
    assert [r["id"] + ".json" for r in records] == files
    assert sorted(s["file"] for s in advisories.sources()) == files
    for rec, src in zip(records, sorted(advisories.sources(), key=lambda s: s["file"])):
        package = rec["affected"][0]["package"]["name"]
        assert src["source_path"] == f"vulns/{package}/{rec['id']}.yaml"
        assert len(src["commit"]) == 40
        assert {"id", "modified", "published", "affected", "details"} <= set(rec)
    torch = next(r for r in records if r["id"] == "PYSEC-2025-41")
    assert set(torch["aliases"]) == {"CVE-2025-32434", "GHSA-53q9-r3pm-6pq6"}
    assert {"fixed": "2.6.0"} in torch["affected"][0]["ranges"][0]["events"]
    assert "2.5.1" in torch["affected"][0]["versions"] and "2.6.0" not in torch["affected"][0]["versions"]


def test_feed_as_of_a_date_only_holds_published_records() -> None:
    old = advisories.snapshot_as_of("2024-01-01")
    assert 0 < len(old) < len(advisories.load_snapshot())
    assert all(r["published"] <= "2024-01-02" for r in old)
    assert "PYSEC-2025-41" not in {r["id"] for r in old}


def test_stack_and_requirements_text_are_seeded_and_parse_back() -> None:
    assert advisories.stack_pins(3) == advisories.stack_pins(3)
    assert len({tuple(advisories.stack_pins(s).items()) for s in range(6)}) > 1
    pins = advisories.stack_pins(2)
    text = advisories.requirements_text(pins, 2)
    parsed = {}
    for line in text.splitlines():
        line = line.split(" #")[0].strip()
        if line and not line.startswith("#"):
            req = Requirement(line)
            parsed[canonicalize_name(req.name)] = next(iter(req.specifier)).version
    assert parsed == pins


def _by_versions_list(records: list[dict], name: str, version: str) -> list[dict]:
    return [r for r in records if any(a["package"]["name"] == name and version in a.get("versions", [])
                                      for a in r["affected"])]


def test_pip_audit_reads_the_snapshot_through_the_session() -> None:
    report = advisories.pip_audit_report({"torch": "2.5.1", "numpy": "2.1.3"}, _by_versions_list)
    assert "numpy" not in report["findings"]
    assert "PYSEC-2025-41" in report["findings"]["torch"]
    assert report["fixes"] == {"torch": "2.6.0"}
    service = advisories.pip_audit_service(_by_versions_list)
    from packaging.version import Version
    from pip_audit._service.interface import ResolvedDependency

    _, vulns = service.query(ResolvedDependency(name="torch", version=Version("2.5.1")))
    rce = next(v for v in vulns if v.id == "PYSEC-2025-41")
    assert "CVE-2025-32434" in rce.aliases and [str(v) for v in rce.fix_versions] == ["2.6.0"]
    _, none = service.query(ResolvedDependency(name="torch", version=Version("2.6.0")))
    assert none == [] and service.session.queries[-1] == ("torch", "2.6.0")


def test_requirements_change_plants_one_lookalike() -> None:
    for seed in range(20):
        before, after = sbom.requirements_change(seed)
        added = set(after) - set(before)
        planted = added - set(sbom.NEW_DEPENDENCIES)
        assert len(added) == 2 and len(planted) == 1 and len(set(before) - set(after)) == 1
        (squat,) = planted
        assert squat not in sbom.STACK and after[squat] in sbom.STACK.values()


def test_cyclonedx_sees_exactly_the_installed_components(tmp_path: Path) -> None:
    old, new = sbom.sbom_pair(1, tmp_path)
    before, after = sbom.requirements_change(1)
    assert old["bomFormat"] == "CycloneDX"
    assert {c["purl"] for c in old["components"]} == {f"pkg:pypi/{n}@{v}" for n, v in before.items()}
    assert {c["purl"] for c in new["components"]} == {f"pkg:pypi/{n}@{v}" for n, v in after.items()}
    assert {c["purl"] for c in sbom.synthetic_sbom(after)["components"]} == {c["purl"] for c in new["components"]}


def test_wheels_are_reproducible_and_tampering_keeps_them_valid(tmp_path: Path) -> None:
    a = wheels.build_wheelhouse(tmp_path / "a", 5, n=4)
    b = wheels.build_wheelhouse(tmp_path / "b", 5, n=4)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert len(a) == 4
    before = hashlib.sha256(a[0].read_bytes()).hexdigest()
    project = wheels.wheel_project(a[0])
    wheels.tamper_wheel(a[0])
    assert hashlib.sha256(a[0].read_bytes()).hexdigest() != before and wheels.wheel_project(a[0]) == project
    with zipfile.ZipFile(a[0]) as zf:  # the attacker's RECORD matches the new bytes
        record = next(n for n in zf.namelist() if n.endswith("RECORD"))
        module = next(n for n in zf.namelist() if n.endswith("__init__.py"))
        assert wheels._record_hash(zf.read(module)) in zf.read(record).decode()


def test_pip_accepts_pinned_wheels_and_refuses_a_tampered_one(tmp_path: Path) -> None:
    clean, dirty = tmp_path / "clean", tmp_path / "dirty"
    paths = wheels.build_wheelhouse(clean, 2)
    wheels.build_wheelhouse(dirty, 2)
    text = "".join(f"{wheels.wheel_project(p)[0]}=={wheels.wheel_project(p)[1]} "
                   f"--hash=sha256:{hashlib.sha256(p.read_bytes()).hexdigest()}\n" for p in paths)
    wheels.tamper_wheel(sorted(dirty.glob("*.whl"))[1])
    ok, refused = wheels.pip_dry_run([(text, clean), (text, dirty)], tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert sorted(i["metadata"]["version"] for i in ok.report["install"]) == sorted(wheels.wheel_project(p)[1] for p in paths)
    assert refused.returncode != 0 and "DO NOT MATCH THE HASHES" in refused.stderr


def test_model_signing_rejects_every_tampering(tmp_path: Path) -> None:
    found = {c.kinds[0]: signing.verify_folder(c.folder, c.public_pem, c.bundle) for c in signing.cases(tmp_path, 4)}
    assert found["intact"] == (True, "")
    assert all(not ok for kind, (ok, _) in found.items() if kind != "intact")
    assert "Extra files" in found["added"][1] and "Missing files" in found["removed"][1]


def test_swap_keeps_sizes_and_signed_bytes(tmp_path: Path) -> None:
    (case,) = signing.cases(tmp_path, 2, [("swapped",)])
    import base64

    statement = json.loads(base64.b64decode(json.loads(case.bundle.read_text())["dsseEnvelope"]["payload"]))
    signed = {r["name"]: r["digest"] for r in statement["predicate"]["resources"]}
    a, b = (case.folder / s for s in signing.SHARDS)
    assert a.stat().st_size == b.stat().st_size
    assert hashlib.sha256(a.read_bytes()).hexdigest() == signed[signing.SHARDS[1]]
    assert hashlib.sha256(b.read_bytes()).hexdigest() == signed[signing.SHARDS[0]]


def test_keys_are_seeded() -> None:
    assert signing.key_pair(1) == signing.key_pair(1) and signing.key_pair(1) != signing.key_pair(2)
    with pytest.raises(ValueError):
        signing.tamper(Path("."), Path("x"), "unknown", 0)


def _fails(question: str, answer: object) -> bool:
    from aisec.lab07.checks_supply import CHECKS

    failed = False
    for chk in CHECKS[question]:
        try:
            chk.run(answer)
        except AssertionError:
            failed = True
    return failed


def test_visible_checks_refuse_plausible_wrong_answers() -> None:
    # a matcher that trusts the enumerated versions only misses 2.5.1+cpu
    def listed_only(record: dict, name: str, version: str) -> bool:
        return any(canonicalize_name(a["package"]["name"]) == canonicalize_name(name) and version in a.get("versions", [])
                   for a in record["affected"])

    assert _fails("q1", (listed_only, lambda text, records: {}))
    # "upgrade to the latest fix of the whole snapshot" is not minimal on an older feed
    latest = {"torch": "2.6.0", "transformers": "4.49.0", "onnx": "1.16.2", "mlflow": "3.1.0"}
    assert _fails("q2", lambda pins, records: {k: v for k, v in latest.items() if k in pins})

    # flagging every added component as a suspect
    def paranoid(old: dict, new: dict) -> dict:
        names = {c["name"] for c in old["components"]}
        added = [c for c in new["components"] if c["name"] not in names]
        return {"added": sorted(c["purl"] for c in added), "removed": [], "changed": [],
                "suspects": sorted(c["name"] for c in added)}

    assert _fails("q3", paranoid)
    # hashing the wheel's file name instead of its bytes
    assert _fails("q4", lambda folder: "".join(
        f"{p.name.split('-')[0]}=={p.name.split('-')[1]} --hash=sha256:{hashlib.sha256(p.name.encode()).hexdigest()}\n"
        for p in sorted(Path(folder).glob("*.whl"))))

    # a triage that trusts the library's manifest and never checks the signature
    def no_signature_check(folder: Path, bundle: Path, public_pem: bytes) -> dict:
        import base64

        statement = json.loads(base64.b64decode(json.loads(Path(bundle).read_text())["dsseEnvelope"]["payload"]))
        signed = {r["name"]: r["digest"] for r in statement["predicate"]["resources"]}
        disk = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in Path(folder).iterdir()}
        modified = sorted(n for n in signed if n in disk and disk[n] != signed[n])
        rep = {"signature_valid": True, "modified": modified, "swapped": [], "added": sorted(set(disk) - set(signed)),
               "removed": sorted(set(signed) - set(disk))}
        rep["verdict"] = "reject" if modified or rep["added"] or rep["removed"] else "accept"
        return rep

    assert _fails("q5", no_signature_check)


def test_the_visible_checks_expectations_agree_with_the_graders_reading_of_the_snapshot() -> None:
    """aisec.lab07.checks_supply writes its expectations out (students can read that module); they must be what
    the grader's own OSV reading gives on the visible data, and what the snapshot's dated feeds give."""
    from packaging.version import Version

    from aisec.grading.scorers.lab07_supply import _grader_affects
    from aisec.lab07 import advisories, sbom
    from aisec.lab07.checks_supply import VISIBLE_AFFECTED, VISIBLE_DIFF, VISIBLE_PLANS

    pins = advisories.stack_pins(0)
    records = advisories.load_snapshot()
    affected = {name: sorted(r["id"] for r in records if _grader_affects(r, name, version))
                for name, version in pins.items()}
    assert VISIBLE_AFFECTED == {k: v for k, v in affected.items() if v}

    def fixed_in(record: dict) -> Version:
        (rng,) = [r for r in record["affected"][0]["ranges"] if r["type"] == "ECOSYSTEM"]
        return Version(next(ev["fixed"] for ev in rng["events"] if "fixed" in ev))

    for date, plan in VISIBLE_PLANS.items():
        feed = advisories.snapshot_as_of(date)
        needed = {name: max(fixed_in(r) for r in feed if _grader_affects(r, name, version))
                  for name, version in pins.items() if any(_grader_affects(r, name, version) for r in feed)}
        assert plan == {k: str(v) for k, v in needed.items()}
        assert all(not _grader_affects(r, k, v) for k, v in plan.items() for r in feed)

    before, after = sbom.requirements_change(0)
    bumped = sorted(n for n in before if n in after and before[n] != after[n])
    assert VISIBLE_DIFF["changed"] == [[n, before[n], after[n]] for n in bumped]
    assert VISIBLE_DIFF["added"] == sorted(f"pkg:pypi/{n}@{after[n]}" for n in after if n not in before)
    assert VISIBLE_DIFF["removed"] == sorted(f"pkg:pypi/{n}@{before[n]}" for n in before if n not in after)
