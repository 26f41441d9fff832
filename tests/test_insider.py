"""Fast unit tests of aisec.lab04.insider: the seeded audit log, the pickle corpus, the policy data
and alert scoring. The malicious pickles are only ever loaded inside a temporary folder."""

from __future__ import annotations

import os
import pickle
import pickletools
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from aisec.lab04.insider import (
    BENIGN_FAMILIES,
    FRAME_COLUMNS,
    MALICIOUS_FAMILIES,
    MODEL_FILE_BENIGN,
    MODEL_FILE_MALICIOUS,
    SENSITIVITY_LEVELS,
    SKLEARN_ZOO,
    audit_log,
    duties,
    model_file_corpus,
    pandas_frame,
    pickle_corpus,
    resources,
    score_alerts,
    sklearn_model,
)


@pytest.fixture(scope="module")
def log():
    return audit_log(seed=0)


def test_audit_log_is_seeded_and_different_across_seeds(log) -> None:
    again = audit_log(seed=0)
    pd.testing.assert_frame_equal(log.events, again.events)
    assert np.array_equal(log.is_exfil, again.is_exfil)
    other = audit_log(seed=1)
    assert not log.events["bytes"].equals(other.events["bytes"])


def test_audit_log_shape_and_columns(log) -> None:
    ev = log.events
    assert list(ev.columns) == ["time", "day", "user", "role", "host", "action", "resource", "bytes"]
    assert len(ev) > 3000, "thousands of rows"
    assert ev["time"].is_monotonic_increasing
    assert ev["day"].between(0, 59).all()
    assert set(ev["resource"]) <= set(resources()["resource"])
    assert set(ev["action"]) <= {"read", "write", "export", "download", "push", "promote"}
    assert (ev["bytes"] > 0).all()
    assert log.is_exfil.dtype == bool and log.is_exfil.shape == (len(ev),)


def test_ground_truth_is_the_insider_after_the_start(log) -> None:
    ev = log.events
    exfil = ev[log.is_exfil]
    assert 15 <= len(exfil) <= 120
    assert set(exfil["user"]) == {log.insider}
    assert exfil["day"].min() >= log.exfil_start_day
    assert 28 <= log.exfil_start_day <= 38
    assert set(exfil["action"]) <= {"export", "download"}
    sensitivity = exfil["resource"].map(resources().set_index("resource")["sensitivity"])
    assert (sensitivity == "restricted").all()
    assert (ev.loc[ev["user"] == log.insider, "role"] == "data_scientist").all()


def test_audit_log_refuses_too_short_a_period() -> None:
    with pytest.raises(ValueError):
        audit_log(seed=0, n_days=20)


def test_score_alerts_counts_true_and_false_positives(log) -> None:
    truth = log.events.loc[log.is_exfil, ["user", "day"]].drop_duplicates()
    perfect = score_alerts(truth, log)
    assert perfect.precision == 1.0 and perfect.recall == 1.0 and perfect.false_positives == 0
    assert perfect.days_to_detection == int(truth["day"].min()) - log.exfil_start_day
    none = score_alerts(pd.DataFrame({"user": [], "day": []}), log)
    assert none.days_to_detection is None and none.recall == 0.0 and none.precision == 0.0
    innocent = log.events.loc[~log.events["user"].eq(log.insider), ["user", "day"]].drop_duplicates().head(5)
    wrong = score_alerts(innocent, log)
    assert wrong.true_positives == 0 and wrong.false_positives == 5


def test_policy_data_is_consistent() -> None:
    res = resources()
    assert set(res["kind"]) == {"dataset", "model"}
    assert set(res["sensitivity"]) <= set(SENSITIVITY_LEVELS)
    assert res["resource"].is_unique
    d = duties()
    assert set(d["max_sensitivity"]) <= set(SENSITIVITY_LEVELS)
    assert not d.duplicated(["role", "action", "kind"]).any()


def test_corpus_is_written_only_into_the_given_folder_and_is_seeded() -> None:
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        first = pickle_corpus(a, seed=3)
        second = pickle_corpus(b, seed=3)
        assert sorted(os.listdir(a)) == sorted(f.path.name for f in first)
        assert all(f.path.parent == Path(a) for f in first)
        assert len(first) == 2 * (len(BENIGN_FAMILIES) + len(MALICIOUS_FAMILIES))
        assert [f.family for f in first] == [f.family for f in second]
        assert sum(f.malicious for f in first) == 2 * len(MALICIOUS_FAMILIES)


def test_corpus_refuses_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        pickle_corpus(tmp_path / "does-not-exist", seed=0)


def assert_marker_only_if_malicious(root: Path, f: Any, load: Callable[[], object]) -> None:
    """Run ``load`` (which unpickles corpus file ``f``): a malicious file leaves exactly one marker file in
    ``root`` (removed here), a benign one nothing."""
    before = set(root.iterdir())
    load()
    created = set(root.iterdir()) - before
    if f.malicious:
        assert len(created) == 1, f"{f.family}: expected one marker, got {created}"
        marker = created.pop()
        assert marker.parent == root and marker.name.startswith("marker-")
        marker.unlink()
    else:
        assert not created, f"benign {f.family} created {created}"



@pytest.mark.parametrize("seed", [0, 1])
def test_corpus_files_parse_and_payloads_only_touch_the_temporary_folder(seed: int) -> None:
    """Load every file inside a fresh temporary folder: benign ones load without side effects,
    malicious ones create exactly one marker file there and nothing else."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        corpus = pickle_corpus(root, seed=seed)
        for f in corpus:
            data = f.path.read_bytes()
            list(pickletools.genops(data))  # every file is a well-formed pickle
            assert_marker_only_if_malicious(root, f, lambda: pickle.loads(data))
        assert sorted(p.name for p in root.iterdir()) == sorted(f.path.name for f in corpus)


# ------------------------------------------------------------- real model files


def test_model_file_corpus_is_seeded_written_only_into_the_folder_and_varies_with_the_seed() -> None:
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b, tempfile.TemporaryDirectory() as c:
        first = model_file_corpus(a, seed=3)
        second = model_file_corpus(b, seed=3)
        other = model_file_corpus(c, seed=4)
        assert sorted(os.listdir(a)) == sorted(f.path.name for f in first)
        assert len(first) == 2 * (len(MODEL_FILE_BENIGN) + len(MODEL_FILE_MALICIOUS))
        assert [(f.family, f.path.name) for f in first] == [(f.family, f.path.name) for f in second]
        assert [f.path.read_bytes() for f in first if f.family == "numpy-plain-npy"] == [
            f.path.read_bytes() for f in second if f.family == "numpy-plain-npy"]
        assert [f.family for f in first] != [f.family for f in other]
        assert {f.path.suffix for f in first} == {".pt", ".npy", ".pkl"}


def test_model_file_corpus_refuses_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        model_file_corpus(tmp_path / "does-not-exist", seed=0)


def _load_model_file(path: Path) -> object:
    """Load a corpus file with its framework's own (unsafe) loader, as a victim would."""
    import torch

    if path.suffix == ".pt":
        return torch.load(path, weights_only=False)
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=True)
    return pd.read_pickle(path)


@pytest.mark.parametrize("seed", [0, 1])
def test_model_files_are_real_and_payloads_only_touch_the_temporary_folder(seed: int) -> None:
    """Benign files load with their framework and without side effects (torch files even under
    weights_only=True); every malicious file creates exactly one marker in the folder when loaded, and
    torch's weights_only loader refuses the malicious checkpoints."""
    import pickle as _pickle

    import torch

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        corpus = model_file_corpus(root, seed=seed)
        assert {f.family for f in corpus} == set(MODEL_FILE_BENIGN) | set(MODEL_FILE_MALICIOUS)
        for f in corpus:
            if f.path.suffix == ".pt":
                if f.malicious:
                    with pytest.raises(_pickle.UnpicklingError):
                        torch.load(f.path, weights_only=True)
                else:
                    assert isinstance(torch.load(f.path, weights_only=True), dict)
            assert_marker_only_if_malicious(root, f, lambda: _load_model_file(f.path))
        assert sorted(p.name for p in root.iterdir()) == sorted(f.path.name for f in corpus)


def test_sklearn_zoo_and_frames_are_seeded_and_validated() -> None:
    for name in SKLEARN_ZOO:
        model = sklearn_model(name, seed=2)
        again = sklearn_model(name, seed=2)
        x = np.random.default_rng(0).normal(size=(5, model.n_features_in_))
        assert np.array_equal(model.predict(x), again.predict(x)), name
    with pytest.raises(ValueError):
        sklearn_model("SVC", seed=0)
    frame = pandas_frame(seed=1)
    assert list(frame.columns) == [f"{kind}_col" for kind in FRAME_COLUMNS]
    pd.testing.assert_frame_equal(frame, pandas_frame(seed=1))
    assert list(pandas_frame(seed=1, columns=("int", "bool")).columns) == ["int_col", "bool_col"]
    with pytest.raises(ValueError):
        pandas_frame(seed=0, columns=("complex",))


# ------------------------------------------------------------------ q15: the insider's side


def test_insider_view_leaves_out_only_the_exfiltration(log) -> None:
    from aisec.lab04.insider import insider_view

    view = insider_view(log)
    assert view.insider == log.insider and view.first_day == log.exfil_start_day
    assert view.n_days == int(log.events["day"].max()) + 1
    assert len(view.events) == int((~log.is_exfil).sum())
    pd.testing.assert_frame_equal(view.events, log.events[~log.is_exfil].reset_index(drop=True))


def test_with_planned_events_records_them_as_the_log_would(log) -> None:
    from aisec.lab04.insider import insider_view, planned_rows, with_planned_events

    view = insider_view(log)
    before = view.events.copy()
    plan = pd.DataFrame({"day": [40, 41], "hour": [10.5, 23.0], "host": ["ws-x", "ws-y"], "action": ["export", "download"],
                         "resource": ["ds/transactions", "model/credit-scoring"], "bytes": np.array([7, 9], dtype=np.int64)})
    merged = with_planned_events(view.events, view.insider, plan)
    pd.testing.assert_frame_equal(view.events, before)  # pure
    assert list(merged.columns) == list(view.events.columns) and len(merged) == len(view.events) + 2
    assert merged["time"].is_monotonic_increasing
    added = merged[merged["host"].isin(["ws-x", "ws-y"])].reset_index(drop=True)
    assert list(added["day"]) == [40, 41] and list(added["time"].dt.hour) == [10, 23]
    assert list(added["time"].dt.minute) == [30, 0] and set(added["user"]) == {view.insider}
    assert set(added["role"]) == {"data_scientist"} and list(added["bytes"]) == [7, 9]
    as_rows = planned_rows(plan)
    assert as_rows is not None and type(as_rows[0]["bytes"]) is int and type(as_rows[0]["hour"]) is float
    pd.testing.assert_frame_equal(with_planned_events(view.events, view.insider, as_rows), merged)
    pd.testing.assert_frame_equal(with_planned_events(view.events, view.insider, []), view.events)
    assert planned_rows("not a plan") is None and planned_rows([1, 2]) is None
    with pytest.raises(ValueError):
        with_planned_events(view.events, "nobody", plan)


def test_team_detectors_differ_by_seed_and_catch_the_burst(log) -> None:
    from aisec.lab04.insider import insider_view, team_detector

    view = insider_view(log)
    alert_sets = []
    for seed in range(6):
        alerts = team_detector(seed)(log.events)
        assert list(alerts.columns) == ["user", "day"] and alerts["day"].dtype.kind == "i"
        pd.testing.assert_frame_equal(alerts, team_detector(seed)(log.events))  # seeded
        on_insider = alerts.loc[alerts["user"] == log.insider, "day"]
        assert len(on_insider) > 0 and on_insider.min() - log.exfil_start_day <= 10, "the burst is caught"
        honest = team_detector(seed)(view.events)
        assert (honest["user"] == log.insider).sum() < len(on_insider), "the burst adds alerts on the insider"
        alert_sets.append(frozenset(zip(alerts["user"], alerts["day"])))
    assert len(set(alert_sets)) > 1, "teams tune their detectors differently"
