"""Visible checks of lab 4 (insider threats). They run on the visible seed only; hidden
tests call the same functions on other seeds. The checks test properties of the answers,
never a copy of the solution."""

from __future__ import annotations

import dataclasses
import functools
import pickle
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aisec.check import Check, expect_type


def _split(seed: int = 0):
    from aisec.data import digits

    return digits(seed=seed)


# ------------------------------------------------------------------------ q1 poisoning


def _q1_stamp(answer: Any) -> None:
    stamp, _ = answer
    x = _split().x_train[:5].copy()
    before = x.copy()
    out = stamp(x)
    expect_type(out, np.ndarray, "stamp_trigger(x)")
    assert out.shape == x.shape, f"stamp_trigger should keep the shape {x.shape}, got {out.shape}"
    assert np.array_equal(x, before), "stamp_trigger modified its input: work on a copy"
    changed = np.flatnonzero(np.any(out != x, axis=0))
    assert set(changed) <= {54, 55, 62, 63}, f"only the trigger pixels may change, pixels {sorted(set(changed) - {54, 55, 62, 63})} changed"
    assert np.all(out[:, [54, 55, 62, 63]] == 1.0), "the trigger pixels should be exactly 1.0"


def _q1_poison(answer: Any) -> None:
    _, poison = answer
    s = _split()
    xp, yp, idx = poison(s.x_train, s.y_train, target=0, rate=0.04, seed=0)
    for value, what in ((xp, "x_poisoned"), (yp, "y_poisoned"), (idx, "idx")):
        expect_type(value, np.ndarray, what)
    k = round(0.04 * len(s.x_train))
    assert len(idx) == k, f"expected k = round(rate * n) = {k} poisoned indices, got {len(idx)}"
    assert np.all(np.diff(idx) > 0), "idx should be sorted and without repeats"
    assert np.all(s.y_train[idx] != 0), "poison only samples whose label is not the target"
    assert np.all(yp[idx] == 0), "poisoned samples should carry the target label"
    others = np.setdiff1d(np.arange(len(yp)), idx)
    assert np.array_equal(yp[others], s.y_train[others]), "labels of samples not in idx must not change"
    assert np.array_equal(xp[others], s.x_train[others]), "images of samples not in idx must not change"
    assert np.all(xp[idx][:, [54, 55, 62, 63]] == 1.0), "poisoned images should carry the trigger"


# ------------------------------------------------------------------------------ q2 ASR


class _TriggerFollower(torch.nn.Module):
    """A stand-in for a backdoored model: predicts 0 whenever the trigger is present, else 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        triggered = (x[:, [54, 55, 62, 63]] == 1.0).all(dim=1)
        logits = torch.zeros(x.shape[0], 10)
        logits[triggered, 0] = 1.0
        logits[~triggered, 1] = 1.0
        return logits


class _Constant(torch.nn.Module):
    """A stand-in for a clean model that ignores the trigger: always predicts 5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(x.shape[0], 10)
        logits[:, 5] = 1.0
        return logits


def _q2_follower(answer: Any) -> None:
    s = _split()
    value = answer(_TriggerFollower(), s.x_test, s.y_test, 0)
    expect_type(value, float, "attack_success_rate(...)")
    assert value == 1.0, f"a model that always obeys the trigger has ASR 1.0, got {value}"


def _q2_constant(answer: Any) -> None:
    s = _split()
    value = answer(_Constant(), s.x_test, s.y_test, 0)
    assert value == 0.0, f"a model that always answers 5 never outputs the target 0: ASR 0.0, got {value}"
    value5 = answer(_Constant(), s.x_test, s.y_test, 5)
    assert value5 == 1.0, f"with target 5 the same model 'succeeds' on every non-5 image: ASR 1.0, got {value5}"


# ---------------------------------------------------------------------------- q3 detect


def _q3(answer: Any) -> None:
    detect, model, x, y, idx = answer
    flags = detect(model, x, y)
    expect_type(flags, np.ndarray, "detect_poison(...)")
    assert flags.dtype == bool and flags.shape == y.shape, f"expected a bool array of shape {y.shape}, got {flags.dtype} {flags.shape}"
    truth = np.zeros(len(y), dtype=bool)
    truth[idx] = True
    recall = float(flags[truth].mean())
    precision = float(truth[flags].mean()) if flags.any() else 0.0
    assert recall >= 0.8, f"recall {recall:.2f} < 0.8: too many poisoned samples missed"
    assert precision >= 0.5, f"precision {precision:.2f} < 0.5: too many clean samples flagged"


# ---------------------------------------------------------------------------- q4 payload


def _q4(answer: Any) -> None:
    make_payload = answer
    with tempfile.TemporaryDirectory() as folder:
        marker = Path(folder) / "marker.txt"
        blob = make_payload(str(marker))
        expect_type(blob, bytes, "make_payload(marker)")
        assert not marker.exists(), "making the payload must not create the marker: only loading it should"
        pickle.loads(blob)
        assert marker.exists(), "loading the payload did not create the marker file"
        assert marker.read_text() == "pwned", f"the marker should contain 'pwned', got {marker.read_text()!r}"
        assert [p.name for p in Path(folder).iterdir()] == ["marker.txt"], "the payload must create the marker and nothing else"


# --------------------------------------------------------------------------- q5 imports


def _q5_simple(answer: Any) -> None:
    imports = answer
    import collections

    for protocol in (0, 2, 4):
        got = imports(pickle.dumps(collections.OrderedDict(a=1), protocol=protocol))
        expect_type(got, list, "pickle_imports(data)")
        assert got == ["collections.OrderedDict"], f"protocol {protocol}: expected ['collections.OrderedDict'], got {got}"
    assert imports(pickle.dumps({"a": [1, 2.0, "x"]}, protocol=4)) == [], "plain data imports nothing"


def _q5_memo(answer: Any) -> None:
    imports = answer
    got = imports(pickle.dumps({"w": np.arange(3), "s": np.float64(1.0)}, protocol=4))
    for name in ("numpy.dtype", "numpy.ndarray"):
        assert name in got, f"{name} missing from {got}: with protocol 4 the module string can come back from the memo (BINGET)"
    assert len(got) == len(set(got)), "no duplicates, please"


def _q5_corpus(answer: Any) -> None:
    from aisec.lab04.insider import pickle_corpus

    with tempfile.TemporaryDirectory() as folder:
        for f in pickle_corpus(folder, seed=0):
            got = answer(f.path.read_bytes())
            if f.family == "posix-system":
                assert "posix.system" in got, f"{f.path.name}: expected posix.system among {got}"
            if f.family == "io-fileio":
                assert "_io.FileIO" in got, f"{f.path.name}: expected _io.FileIO among {got}"
            if f.family == "hidden-in-state-dict":
                assert "builtins.exec" in got, f"{f.path.name}: expected builtins.exec among {got}"


# ------------------------------------------------------------------------- q6, q7 scans


def _corpus_verdicts(scan: Any, seed: int = 0) -> list[tuple[bool, bool, str]]:
    from aisec.lab04.insider import pickle_corpus

    with tempfile.TemporaryDirectory() as folder:
        return [(scan(f.path.read_bytes()), f.malicious, f.family) for f in pickle_corpus(folder, seed=seed)]


def _q6(answer: Any) -> None:
    rows = _corpus_verdicts(answer)
    expect_type(rows[0][0], bool, "denylist_scan(data)")
    benign_flagged = [fam for v, m, fam in rows if v and not m]
    assert not benign_flagged, f"benign files flagged: {benign_flagged}"
    for v, m, fam in rows:
        if fam in ("exec-p2", "eval-p4", "posix-system", "subprocess-call"):
            assert v, f"the deny-list should catch the {fam} file"


def _q7(answer: Any) -> None:
    rows = _corpus_verdicts(answer)
    expect_type(rows[0][0], bool, "allowlist_scan(data)")
    missed = [fam for v, m, fam in rows if m and not v]
    wrong = [fam for v, m, fam in rows if v and not m]
    assert not missed, f"malicious files missed: {missed}"
    assert not wrong, f"benign files flagged: {wrong}"


# ---------------------------------------------------------------------------- q8 signing


def _q8(answer: Any) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    sign, verify = answer
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "weights.bin"
        path.write_bytes(b"weights" * 100)
        sig = sign(path, key)
        expect_type(sig, bytes, "sign_file(...)")
        assert len(sig) == 64, f"an Ed25519 signature has 64 bytes, got {len(sig)}"
        ok = verify(path, sig, key.public_key())
        expect_type(ok, bool, "verify_file(...)")
        assert ok, "a genuine file should verify"
        path.write_bytes(b"weights" * 99 + b"WEIGHT")
        assert verify(path, sig, key.public_key()) is False, "a tampered file must be rejected (False, not an exception)"


# --------------------------------------------------------------------------- q9, q10 logs


def _q9(answer: Any) -> None:
    rules, log, catalogue = answer
    flags = rules(log.events, catalogue)
    expect_type(flags, np.ndarray, "rule_alerts(...)")
    assert flags.dtype == bool and flags.shape == (len(log.events),), "expected one bool per event"
    precision = float(log.is_exfil[flags].mean()) if flags.any() else 0.0
    recall = float(flags[log.is_exfil].mean())
    assert precision >= 0.6, f"precision {precision:.2f} < 0.6"
    assert recall >= 0.25, f"recall {recall:.2f} < 0.25"


def _q10(answer: Any) -> None:
    import pandas as pd

    from aisec.lab04.insider import score_alerts

    detect, log, catalogue = answer
    alerts = detect(log.events, catalogue)
    expect_type(alerts, pd.DataFrame, "detect_exfiltration(...)")
    assert {"user", "day"} <= set(alerts.columns), f"columns user and day needed, got {list(alerts.columns)}"
    score = score_alerts(alerts, log)
    assert score.days_to_detection is not None, "the insider is never alerted on"
    assert score.days_to_detection <= 10, f"insider detected after {score.days_to_detection} days (> 10)"
    assert score.false_positives <= 30, f"{score.false_positives} false-positive user-days (> 30)"
    assert score.recall >= 0.3, f"recall {score.recall:.2f} < 0.3"


# ----------------------------------------------------------------------------- q11 policy


def _q11(answer: Any) -> None:
    import pandas as pd

    from aisec.lab04.insider import duties

    authorize, log, catalogue = answer
    ok = authorize(log.events, catalogue, duties())
    expect_type(ok, np.ndarray, "authorize(...)")
    assert ok.dtype == bool and ok.shape == (len(log.events),), "expected one bool per event"
    ev = log.events
    probe = pd.DataFrame(
        {
            "role": ["analyst", "analyst", "data_scientist", "data_scientist", "ml_engineer"],
            "action": ["export", "export", "export", "download", "write"],
            "resource": ["ds/public-benchmarks", "ds/clickstream", "ds/transactions", "model/fraud-detector", "ds/features-v3"],
        }
    )
    probe = probe.assign(time=ev["time"].iloc[0], day=0, user="probe", host="ws-1", bytes=1)
    got = [bool(v) for v in authorize(probe, catalogue, duties())]
    assert got == [True, False, False, True, False], f"on five probe events expected [True, False, False, True, False], got {got}"
    assert ok.mean() > 0.9, "most of the team's normal work should be allowed"
    assert not authorize(probe, catalogue, duties().iloc[0:0]).any(), "no duties at all should deny everything"


# --------------------------------------------------------------------------- q12 encryption


def _q12(answer: Any) -> None:
    import pandas as pd
    from cryptography.exceptions import InvalidTag

    encrypt, decrypt = answer
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    key = bytes(32)
    blob = encrypt(df, key, b"ds/demo")
    expect_type(blob, bytes, "encrypt_table(...)")
    assert b"x,1" not in blob and b"a,b" not in blob, "the CSV text is visible in the blob: is it encrypted?"
    back = decrypt(blob, key, b"ds/demo")
    assert back.equals(df), "decrypt_table(encrypt_table(df)) should give df back"
    assert encrypt(df, key, b"ds/demo")[:12] != blob[:12], "use a fresh random nonce every time"
    bad = blob[:-1] + bytes([blob[-1] ^ 1])
    try:
        decrypt(bad, key, b"ds/demo")
    except InvalidTag:
        pass
    else:
        raise AssertionError("a tampered blob decrypted without error: authenticated encryption must reject it")


# ---------------------------------------------------------------- q13 real model files


def _q13(answer: Any) -> None:
    from aisec.lab04.insider import model_file_corpus

    with tempfile.TemporaryDirectory() as folder:
        rows = [(answer(f.path), f.malicious, f.family) for f in model_file_corpus(folder, seed=0)]
    expect_type(rows[0][0], bool, "scan_model_file(path)")
    wrong = sorted({fam for v, m, fam in rows if v and not m})
    missed = sorted({fam for v, m, fam in rows if m and not v})
    assert not wrong, f"benign files written by the frameworks flagged: {wrong}"
    assert not missed, f"malicious files missed: {missed}"


def _q13_garbage(answer: Any) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "broken.pt"
        path.write_bytes(b"PK\x03\x04 not really a zip")
        assert answer(path) is True, "a file that cannot be parsed must be flagged unsafe"


# ---------------------------------------------------------------- q14 attributions


def _q14(answer: Any) -> None:
    find, backdoored, clean, inputs = answer
    found = find(backdoored, inputs)
    expect_type(found, dict, "find_trigger(...)")
    assert {"poisoned", "target", "pixels"} <= set(found), f"expected the keys poisoned, target, pixels, got {sorted(found)}"
    assert found["poisoned"] is True, "the lab's backdoored model should be called poisoned"
    assert found["target"] == 0, f"the backdoor's target class is 0, you found {found['target']}"
    pixels = [int(p) for p in found["pixels"]]
    assert len(pixels) <= 8, f"return at most 2k = 8 pixels, got {len(pixels)}"
    hits = len(set(pixels) & {54, 55, 62, 63})
    assert hits >= 2, f"only {hits} of the 4 trigger pixels among the pixels you located"
    verdict = find(clean, inputs)
    assert verdict["poisoned"] is False, "the clean model ignores the stamp: it should be called clean"


# ------------------------------------------------------------------- q15 low and slow

_Q15_TARGET_MB = 1500
_Q15_TEAM = 2  # a strict team: its detector lets little through per day
_Q15_PLANS: dict[tuple[int, int], tuple[Any, Any]] = {}


@functools.lru_cache(maxsize=1)
def _q15_view() -> Any:
    from aisec.lab04.insider import audit_log, insider_view

    return insider_view(audit_log(seed=0))


def _q15_plan(answer: Any, team: int) -> tuple[Any, Any, list[dict[str, Any]]]:
    """The visible log's insider view, a team's detector and the answer's plan against it, as plain rows."""
    from aisec.lab04.insider import PLAN_COLUMNS, planned_rows, team_detector

    view = dataclasses.replace(_q15_view(), events=_q15_view().events.copy())  # an answer may touch the frame
    detector = team_detector(team)
    key = (id(answer), team)
    if key not in _Q15_PLANS or _Q15_PLANS[key][0] is not answer:  # both checks share a plan per team
        _Q15_PLANS[key] = (answer, planned_rows(answer(view, detector, _Q15_TARGET_MB)))
    rows = _Q15_PLANS[key][1]
    assert rows is not None, "plan_exfiltration should return a DataFrame or a list of dicts"
    for row in rows:
        missing = set(PLAN_COLUMNS) - set(row)
        assert not missing, f"every planned event needs the columns {PLAN_COLUMNS}, missing {sorted(missing)}"
    return view, detector, rows


def _q15_shape(answer: Any) -> None:
    from aisec.lab04.insider import EGRESS_ACTIONS, resources

    view, _, rows = _q15_plan(answer, _Q15_TEAM)
    kinds = dict(zip(resources()["resource"], resources()["kind"]))
    assert rows, "an empty plan takes nothing out"
    for row in rows:
        assert isinstance(row["day"], int) and view.first_day <= row["day"] < view.n_days, (
            f"day {row['day']!r}: plan within view.first_day ({view.first_day}) to view.n_days - 1 ({view.n_days - 1}), as ints")
        assert isinstance(row["hour"], (int, float)) and 0 <= row["hour"] < 24, f"hour {row['hour']!r} is not in [0, 24)"
        assert row["resource"] in kinds, f"{row['resource']!r} is not in the catalogue"
        assert row["action"] == EGRESS_ACTIONS[kinds[row["resource"]]], (
            f"{row['action']!r} on {row['resource']!r}: egress is 'export' for a dataset, 'download' for a model")
        assert isinstance(row["bytes"], int) and row["bytes"] >= 0, f"bytes {row['bytes']!r} should be a non-negative int"
        assert isinstance(row["host"], str) and row["host"], "every event needs a host name"


def _q15_evades(answer: Any) -> None:
    from aisec.lab04.insider import resources, with_planned_events

    catalogue = resources()
    restricted = set(catalogue.loc[catalogue["sensitivity"] == "restricted", "resource"])
    team = _Q15_TEAM
    view, detector, rows = _q15_plan(answer, team)
    megabytes = sum(r["bytes"] for r in rows if r["resource"] in restricted) / 1e6
    assert megabytes >= _Q15_TARGET_MB, (
        f"team {team}: your plan takes out {megabytes:.0f} MB of restricted resources, the target is {_Q15_TARGET_MB} "
        "(only restricted resources count)")
    honest = detector(view.events)
    before = set(honest.loc[honest["user"] == view.insider, "day"])
    alerts = detector(with_planned_events(view.events, view.insider, rows))
    after = set(alerts.loc[alerts["user"] == view.insider, "day"])
    caught = sorted((after - before) | (after & {r["day"] for r in rows}))
    assert not caught, f"team {team}'s detector alerts on the insider on days {caught}: query it and adapt"


CHECKS = {
    "q1": [
        Check("stamp_trigger sets exactly the trigger pixels, on a copy", _q1_stamp),
        Check("poison_dataset poisons the specified samples", _q1_poison),
    ],
    "q2": [
        Check("ASR of a model that always obeys the trigger is 1.0 (a float)", _q2_follower),
        Check("ASR of a model that ignores the trigger", _q2_constant),
    ],
    "q3": [Check("detect_poison finds the poison (recall >= 0.8, precision >= 0.5)", _q3)],
    "q4": [Check("loading the payload writes 'pwned' into the marker, and nothing else", _q4)],
    "q5": [
        Check("GLOBAL and STACK_GLOBAL on a simple pickle", _q5_simple),
        Check("strings coming back from the memo", _q5_memo),
        Check("imports of the visible corpus", _q5_corpus),
    ],
    "q6": [Check("deny-list verdicts on the visible corpus", _q6)],
    "q7": [Check("allow-list: every malicious file flagged, no benign one", _q7)],
    "q8": [Check("sign, verify, reject a tampered file", _q8)],
    "q9": [Check("rules: precision >= 0.6, recall >= 0.25 on the visible log", _q9)],
    "q10": [Check("detector: insider within 10 days, <= 30 false positives, recall >= 0.3", _q10)],
    "q11": [Check("least-privilege decisions on probe events and the log", _q11)],
    "q12": [Check("AES-GCM round trip, fresh nonce, tampering detected", _q12)],
    "q13": [Check("real model files: every malicious file flagged, no benign torch/sklearn/numpy/pandas file", _q13),
            Check("a file that cannot be parsed is unsafe", _q13_garbage)],
    "q14": [Check("attributions locate the lab's trigger and target, and call the clean model clean", _q14)],
    "q15": [
        Check("planned events have the log's columns, are egress, and fall within the insider's days", _q15_shape),
        Check("the plan takes out 1500 MB of restricted data without an alert from a strict team's detector", _q15_evades),
    ],
}


#: An authored hint for every hidden record of the lab (by key): the property it tests, never a value.
#: Hidden tests run the same functions on another seed: another split, corpus, log, key or table.
HIDDEN_HINTS: dict[str, str] = {
    "q1_poison_test.idx": "the poisoned indices chosen exactly as specified, for another split, target and rate",
    "q1_poison_test.labels_changed": "only the chosen samples are relabelled",
    "q1_poison_test.pixels_changed": "only the trigger pixels change",
    "q1_poison_test.x_sum": "the poisoned images as a whole",
    "q1_poison_test.untouched_input": "the input arrays are not modified",
    "q2_asr_test.asr": "the attack success rate of a backdoored model trained on another split",
    "q2_asr_test.is_float": "a Python float",
    "q2_asr_test.asr_clean_model": "the attack success rate of a clean model trained on another split",
    "q2_asr_test.asr_high": "your poisoning plants a backdoor the grader's own trigger test confirms",
    "q2_asr_test.accuracy_drop": "your poisoned model keeps the clean model's test accuracy",
    "q3_detect_test.is_bool_array": "one bool per training sample, as a numpy array",
    "q3_detect_test.recall": "most poisoned samples of another poisoned training set are flagged",
    "q3_detect_test.precision": "most flagged samples of another poisoned training set are poisoned",
    "q4_payload_test.is_bytes": "bytes",
    "q4_payload_test.marker": "loading writes the text into another marker path, which did not exist before",
    "q4_payload_test.only_marker": "nothing but the marker is created",
    "q5_imports_test.types": "a list of str per file",
    "q5_imports_test.corpus": "the imports of every file of another corpus, in order, without duplicates",
    "q5_imports_test.memo": "imports whose strings come back from the memo",
    "q6_denylist_test.types": "one bool per file",
    "q6_denylist_test.verdicts": "the deny-list verdicts on another corpus",
    "q7_allowlist_test.types": "one bool per file",
    "q7_allowlist_test.verdicts": "the allow-list verdicts on another corpus",
    "q7_allowlist_test.all_malicious_flagged": "every malicious file of another corpus flagged",
    "q7_allowlist_test.no_benign_flagged": "no benign file of another corpus flagged",
    "q7_allowlist_test.garbage": "bytes that are not a pickle are unsafe",
    "q8_sign_test.signature": "the signature of another file with another key",
    "q8_sign_test.types": "bools, never an exception",
    "q8_sign_test.verdicts": "genuine file accepted; wrong key and tampered file rejected",
    "q9_rules_test.is_bool_array": "one bool per event, as a numpy array",
    "q9_rules_test.precision": "the grader's precision of your flags on another audit log",
    "q9_rules_test.recall": "the grader's recall of your flags on another audit log",
    "q10_detect_test.has_columns": "a DataFrame with columns user and day",
    "q10_detect_test.days_to_detection": "the insider of another audit log alerted on soon after the exfiltration starts",
    "q10_detect_test.false_positives": "few innocent user-days alerted on another audit log",
    "q10_detect_test.recall": "enough exfiltration user-days of another audit log alerted",
    "q11_authorize_test.is_bool_array": "one bool per event, as a numpy array",
    "q11_authorize_test.denied_rows": "exactly the events least privilege denies in another audit log",
    "q11_authorize_test.denied_without_analyst": "a role without any duty is denied everything",
    "q12_encrypt_test.is_bytes": "bytes",
    "q12_encrypt_test.overhead": "a nonce and a tag, nothing more, around the CSV",
    "q12_encrypt_test.fresh_nonce": "a fresh nonce on every call",
    "q12_encrypt_test.round_trip": "another table decrypts to itself",
    "q12_encrypt_test.tamper": "a flipped byte and a wrong associated data both raise InvalidTag",
    "q13_model_files_test.types": "one bool per file",
    "q13_model_files_test.malicious_flagged": "every malicious file of another corpus of real model files flagged",
    "q13_model_files_test.benign_flagged": "no benign torch, scikit-learn, numpy or pandas file of another corpus flagged",
    "q13_model_files_test.truncated_zip": "a truncated torch checkpoint is unsafe",
    "q14_saliency_test.types": "a bool verdict and an int or None target",
    "q14_saliency_test.backdoors_located": "backdoors with other triggers and targets found: verdict, target and trigger pixels",
    "q14_saliency_test.clean_false_alarms": "clean models shown stamped inputs are called clean",
    "q15_low_slow_test.evasions": "on another audit log, against other teams' detectors (other baselines, weights and "
                                  "thresholds): the target of restricted data taken out with no new alert on the "
                                  "insider and none on the days the plan acts on, for nearly every team",
}
