"""Unit tests of the shared helpers: data, cache, models, plots, check/record."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from aisec import cache, data, models, plots
from aisec.check import CheckFailed, UngradableValue, check, to_plain
from conftest import ROOT


# --------------------------------------------------------------------------- data


def test_people_is_deterministic_per_seed() -> None:
    a, b, c = data.people(100, seed=3), data.people(100, seed=3), data.people(100, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    assert a["customer_id"].is_unique
    assert set(data.PEOPLE_DIRECT_IDENTIFIERS) <= set(a.columns)
    assert 0.2 < a["churned"].mean() < 0.8, "churn must be learnable, not all one class"


def test_card_numbers_pass_luhn_and_decoys_fail() -> None:
    def luhn_ok(number: str) -> bool:
        digits = [int(d) for d in number.replace(" ", "")][::-1]
        return sum(d if i % 2 == 0 else (2 * d - 9 if 2 * d > 9 else 2 * d) for i, d in enumerate(digits)) % 10 == 0

    rng = np.random.default_rng(0)
    assert all(luhn_ok(data.card_number(rng)) for _ in range(200))
    assert not any(luhn_ok(data.card_number(rng, valid=False)) for _ in range(200))
    assert data.luhn_checksum_digit("7992739871") == "3"  # the textbook example 79927398713


def test_chat_transcript_ground_truth_is_in_the_messages() -> None:
    chat = data.chat_transcript(seed=5, n_messages=40)
    text = "\n".join(chat.messages)
    assert chat.secrets and chat.decoys
    assert all(s.text in text for s in chat.secrets)
    assert {s.kind for s in chat.secrets} <= {"email", "phone", "national_id", "api_key", "card_number"}
    assert chat == data.chat_transcript(seed=5, n_messages=40)


def test_digits_split_is_stratified_scaled_and_seeded() -> None:
    split = data.digits(seed=1)
    assert split.x_train.dtype == np.float32 and split.x_train.shape[1] == 64
    assert 0.0 <= split.x_train.min() and split.x_train.max() <= 1.0
    assert len(split.x_train) + len(split.x_test) == 1797
    assert np.array_equal(split.y_test, data.digits(seed=1).y_test)
    assert set(np.bincount(split.y_test)) <= set(range(50, 60))


def test_digits_split_cached_is_scikit_learns_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    fresh = data.digits(seed=3)
    assert len(list(tmp_path.glob("digits-split-*.safetensors"))) == 1
    cached = data.digits(seed=3)
    raw = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        (raw.data / 16.0).astype(np.float32), raw.target.astype(np.int64), test_size=0.3, random_state=3,
        stratify=raw.target)
    for split in (fresh, cached):
        assert np.array_equal(split.x_train, x_train) and np.array_equal(split.x_test, x_test)
        assert np.array_equal(split.y_train, y_train) and np.array_equal(split.y_test, y_test)
        assert split.x_train.dtype == np.float32 and split.y_train.dtype == np.int64
    assert not np.array_equal(data.digits(seed=4).y_test, cached.y_test)  # the seed is part of the key


def test_public_register_names_most_customers() -> None:
    customers = data.people(200, seed=2)
    register = data.public_register(customers, seed=2)
    assert 0.7 < len(register) / len(customers) < 0.9
    assert set(register["full_name"]) <= set(customers["full_name"])


# ----------------------------------------------------------------- cache and models


def test_cache_trains_once_and_moves_with_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "c"))
    calls = []

    def train() -> dict:
        calls.append(1)
        return {"w": torch.arange(4.0)}

    first = cache.cached_state_dict("toy", {"lr": 0.1}, train)
    second = cache.cached_state_dict("toy", {"lr": 0.1}, train)
    assert len(calls) == 1 and torch.equal(first["w"], second["w"])
    files = list((tmp_path / "c").glob("toy-*.safetensors"))
    assert len(files) == 1
    cache.cached_state_dict("toy", {"lr": 0.2}, train)  # another recipe trains again
    assert len(calls) == 2 and len(list((tmp_path / "c").glob("toy-*.safetensors"))) == 2


def test_digits_classifier_learns_and_reloads_identically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    split = data.digits(seed=0)
    model = models.digits_classifier(split.x_train, split.y_train, epochs=15, seed=0)
    assert models.accuracy(model, split.x_test, split.y_test) > 0.93
    again = models.digits_classifier(split.x_train, split.y_train, epochs=15, seed=0)
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k
    probs = models.predict_proba(model, split.x_test[:5])
    assert probs.shape == (5, 10) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_importing_aisec_has_no_side_effects(tmp_path: Path) -> None:
    code = (
        "import random, numpy as np, os\n"
        "before = (random.getstate(), np.random.get_state()[1].tolist())\n"
        "import aisec, aisec.data, aisec.cache, aisec.models, aisec.plots, aisec.check, aisec.seeding\n"
        "after = (random.getstate(), np.random.get_state()[1].tolist())\n"
        "print(before == after, sorted(os.listdir('.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True []"


# --------------------------------------------------------------------------- plots


def test_plots_demand_titles_and_axis_labels() -> None:
    import matplotlib

    matplotlib.use("Agg")
    ax = plots.curves([0, 1], {"clean": [1.0, 0.5]}, title="Accuracy", xlabel="epsilon", ylabel="accuracy")
    assert ax.get_title() == "Accuracy" and ax.get_xlabel() == "epsilon"
    with pytest.raises(ValueError, match="title"):
        plots.curves([0, 1], {"a": [0, 1]}, title="", xlabel="x", ylabel="y")
    fig = plots.image_grid(np.zeros((3, 64)), title="Digits", captions=["a", "b", "c"])
    assert fig._suptitle.get_text() == "Digits"


# ------------------------------------------------------------------- check and record


def test_check_reports_success_and_failure_with_hints(capsys: pytest.CaptureFixture[str]) -> None:
    def luhn_valid(number: str) -> bool:
        return sum(int(d) for d in number if d.isdigit()) % 10 == 0  # wrong on purpose

    with pytest.raises(CheckFailed):
        check("lab00.q1", luhn_valid)
    out = capsys.readouterr().out
    assert "✘" in out and "hint" in out

    def stub(number: str) -> bool:
        raise NotImplementedError()

    with pytest.raises(CheckFailed):
        check("lab00.q1", stub)
    assert "not answered yet" in capsys.readouterr().out


def test_check_result_is_not_a_number_for_nbgrader(capsys: pytest.CaptureFixture[str]) -> None:
    from aisec.lab00.checks import CHECKS

    def anonymity(df: pd.DataFrame, quasi: list[str], sensitive: str) -> tuple[int, int]:
        groups = df.groupby(quasi, dropna=False)
        return int(groups.size().min()), int(groups[sensitive].nunique(dropna=False).min())

    assert check("lab00.q6", anonymity) is None
    n = len(CHECKS["q6"])
    assert f"{n}/{n} visible checks passed" in capsys.readouterr().out


def test_check_explains_unknown_ids() -> None:
    with pytest.raises(ValueError, match="lab00.q1"):
        check("lab00", None)
    with pytest.raises(ValueError, match="questions are"):
        check("lab00.q99", None)


class SneakyInt(int):
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = int.__hash__


@pytest.mark.parametrize(
    "value, plain",
    [
        (True, True),
        (3, 3),
        (np.int64(3), 3),
        (np.float32(0.5), 0.5),
        (np.array([[1, 2], [3, 4]]), [[1, 2], [3, 4]]),
        (torch.tensor([1.5, 2.5]), [1.5, 2.5]),
        ((1, "a", None), [1, "a", None]),
        ({"k": [np.bool_(True)]}, {"k": [True]}),
        (float("nan"), "nan"),
    ],
)
def test_to_plain_makes_json_data(value: object, plain: object) -> None:
    # JSON text tells 1 from 1.0 from true, which == cannot (1 == 1.0 == True in Python).
    assert json.dumps(to_plain(value)) == json.dumps(plain)


@pytest.mark.parametrize("value, text", [(np.int64(1), "1"), (np.float32(1.0), "1.0"), (np.bool_(True), "true"),
                                         (np.array([1, 0], dtype=bool), "[true, false]"), (np.array([1.0]), "[1.0]")])
def test_to_plain_keeps_bool_int_and_float_apart(value: object, text: str) -> None:
    assert json.dumps(to_plain(value)) == text


@pytest.mark.parametrize("value", [SneakyInt(3), [SneakyInt(1)], {"a": object()}, {1: 2}, np.array(["x"])])
def test_to_plain_refuses_values_that_could_fake_equality(value: object) -> None:
    with pytest.raises(UngradableValue):
        to_plain(value)


def test_record_displays_plain_data_under_the_private_mime_type() -> None:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    captured = []
    shell.display_pub.publish = lambda data, metadata=None, **kw: captured.append(data)  # type: ignore[method-assign]
    try:
        from aisec.check import RECORD_MIME, record

        record("q1_test.x", np.arange(3), atol=0.1)
        record("q1_test.y", SneakyInt(2))
    finally:
        InteractiveShell.clear_instance()
    first, second = captured[0][RECORD_MIME], captured[1][RECORD_MIME]
    assert first == {"key": "q1_test.x", "value": [0, 1, 2], "rule": {"atol": 0.1, "rtol": 0.0, "at_least": None, "at_most": None, "unordered": False, "score": None}}
    assert "invalid" in second and "value" not in second


def test_every_lab_has_visible_checks_for_its_check_calls() -> None:
    import importlib
    import re

    import nbformat

    for source in sorted((ROOT / "solutions").glob("*/*.ipynb")):
        nb = nbformat.read(source, as_version=4)
        for cell in nb.cells:
            for lab, q in re.findall(r"check\(\s*[\"'](lab\d\d)\.(\w+)[\"']", cell.source):
                module = importlib.import_module(f"aisec.{lab}.checks")
                assert q in module.CHECKS, f"{source.name}: check('{lab}.{q}') has no visible checks"
