"""Unit tests of aisec.lab02.inversion (lab 02's API wrapper, data set and measuring helpers) and of
the lab's visible checks on unanswered stubs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from aisec.lab02 import inversion
from aisec.check import CheckFailed, check
from aisec.models import MLP, predict_proba


@pytest.fixture
def tiny_model() -> MLP:
    torch.manual_seed(0)
    return MLP(8, (16,), 3).eval()


@pytest.fixture
def rows() -> np.ndarray:
    return np.random.default_rng(0).random((50, 8)).astype(np.float32)


# ------------------------------------------------------------------------ medical records


def test_medical_records_are_seeded_and_well_formed() -> None:
    a, b, c = inversion.medical_records(300, seed=3), inversion.medical_records(300, seed=3), inversion.medical_records(300, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    assert list(a.columns) == [
        "patient_id", "age", "sex", "weight_kg", "smoker", "amiodarone", "genotype", "weekly_dose_mg", "dose_band",
    ]
    assert a["patient_id"].is_unique
    assert set(a["genotype"]) <= set(inversion.GENOTYPES)
    assert set(a["dose_band"]) == set(inversion.DOSE_BANDS)
    assert a["age"].between(20, 90).all() and a["sex"].isin(["F", "M"]).all()
    with pytest.raises(ValueError):
        inversion.medical_records(5)


def test_genotype_follows_its_prior_and_drives_the_dose() -> None:
    df = inversion.medical_records(6000, seed=1)
    freq = df["genotype"].value_counts(normalize=True)
    for g, p in inversion.GENOTYPE_PRIOR.items():
        assert abs(freq[g] - p) < 0.03, (g, freq[g], p)
    dose = df.groupby("genotype")["weekly_dose_mg"].mean()
    assert dose["AA"] < dose["AG"] < dose["GG"], "the sensitive attribute must matter to the label"
    bands = df.groupby("genotype")["dose_band"].agg(lambda s: s.value_counts().idxmax())
    assert bands["AA"] == "low" and bands["GG"] == "high"


def test_encode_records_and_labels() -> None:
    df = inversion.medical_records(40, seed=0)
    x = inversion.encode_records(df)
    assert x.dtype == np.float32 and x.shape == (40, len(inversion.FEATURES))
    onehot = x[:, -3:]
    assert np.array_equal(onehot.sum(axis=1), np.ones(40, dtype=np.float32))
    assert np.array_equal(np.array(inversion.GENOTYPES)[onehot.argmax(axis=1)], df["genotype"].to_numpy())
    assert np.allclose(x[:, 0], df["age"] / 100) and np.array_equal(x[:, 1], (df["sex"] == "M").astype(np.float32))
    changed = inversion.encode_records(df.assign(genotype="AA"))
    assert np.array_equal(changed[:, :5], x[:, :5]) and (changed[:, -1] == 1).all()
    y = inversion.dose_labels(df)
    assert y.dtype == np.int64 and np.array_equal(np.array(inversion.DOSE_BANDS)[y], df["dose_band"].to_numpy())
    with pytest.raises(ValueError, match="unknown genotype"):
        inversion.encode_records(df.assign(genotype="XX"))


# -------------------------------------------------------------------------------- the API


def test_api_without_defence_returns_the_softmax_and_counts_rows(tiny_model: MLP, rows: np.ndarray) -> None:
    api = inversion.ConfidenceAPI(tiny_model)
    p = api.query(rows)
    assert p.dtype == np.float64 and p.shape == (50, 3)
    assert np.allclose(p, predict_proba(tiny_model, rows), atol=1e-6)
    assert api.n_queries == 50
    one = api.query(rows[0])
    assert one.shape == (3,) and np.allclose(one, p[0])
    assert api.n_queries == 51 and api.n_classes == 3
    api.reset()
    assert api.n_queries == 0
    with pytest.raises(ValueError):
        api.query(np.zeros((2, 2, 8)))


def test_rounding_keeps_the_label_and_quantises(tiny_model: MLP, rows: np.ndarray) -> None:
    exact = inversion.ConfidenceAPI(tiny_model).query(rows)
    rounded = inversion.ConfidenceAPI(tiny_model, decimals=1).query(rows)
    assert np.allclose(rounded * 10, np.round(rounded * 10))
    assert np.abs(rounded - exact).max() <= 0.05 + 1e-9
    two = inversion.ConfidenceAPI(tiny_model, decimals=2).query(rows)
    assert np.abs(two - exact).max() <= 0.005 + 1e-9 and not np.allclose(two, rounded)


def test_top1_only_returns_one_hot_labels(tiny_model: MLP, rows: np.ndarray) -> None:
    exact = inversion.ConfidenceAPI(tiny_model).query(rows)
    top1 = inversion.ConfidenceAPI(tiny_model, top1_only=True).query(rows)
    assert set(np.unique(top1)) == {0.0, 1.0} and np.array_equal(top1.sum(axis=1), np.ones(50))
    assert np.array_equal(top1.argmax(axis=1), exact.argmax(axis=1))


def test_noise_is_fresh_seeded_and_stays_a_distribution(tiny_model: MLP, rows: np.ndarray) -> None:
    api = inversion.ConfidenceAPI(tiny_model, noise_std=0.05, seed=7)
    first, second = api.query(rows), api.query(rows)
    assert not np.allclose(first, second), "noise must be drawn afresh on every query"
    assert (first >= 0).all() and np.allclose(first.sum(axis=1), 1.0)
    again = inversion.ConfidenceAPI(tiny_model, noise_std=0.05, seed=7).query(rows)
    assert np.array_equal(first, again)
    exact = inversion.ConfidenceAPI(tiny_model).query(rows)
    assert 0.005 < np.abs(first - exact).mean() < 0.1


def test_query_budget_is_enforced_before_answering(tiny_model: MLP, rows: np.ndarray) -> None:
    api = inversion.ConfidenceAPI(tiny_model, max_queries=60)
    api.query(rows)
    with pytest.raises(inversion.QueryBudgetExceeded):
        api.query(rows[:11])
    assert api.n_queries == 50, "a refused query is not charged"
    api.query(rows[:10])
    assert api.n_queries == 60


def test_api_rejects_bad_options(tiny_model: MLP) -> None:
    with pytest.raises(ValueError):
        inversion.ConfidenceAPI(tiny_model, decimals=-1)
    with pytest.raises(ValueError):
        inversion.ConfidenceAPI(tiny_model, noise_std=-0.1)


# ----------------------------------------------------------------- models and measures


def test_records_classifier_learns_and_is_cached(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("AISEC_CACHE", str(tmp_path))
    torch.set_num_threads(1)
    df = inversion.medical_records(500, seed=2)
    model = inversion.records_classifier(df.iloc[:400], epochs=15, seed=2)
    files = list(tmp_path.glob("records-mlp-*.safetensors"))
    assert len(files) == 1
    x, y = inversion.encode_records(df.iloc[400:]), inversion.dose_labels(df.iloc[400:])
    acc = float(np.mean(predict_proba(model, x).argmax(axis=1) == y))
    majority = float(np.bincount(y).max() / len(y))
    assert acc > majority + 0.1, (acc, majority)
    again = inversion.records_classifier(df.iloc[:400], epochs=15, seed=2)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    assert len(list(tmp_path.glob("records-mlp-*.safetensors"))) == 1
    inversion.records_classifier(df.iloc[:400], epochs=15, seed=2, weight_decay=0.1)
    assert len(list(tmp_path.glob("records-mlp-*.safetensors"))) == 2, "another recipe trains another model"


def test_independent_judge_and_class_means() -> None:
    from aisec.data import digits

    from threadpoolctl import threadpool_limits

    split = digits(seed=0)
    with threadpool_limits(1):  # BLAS threads fighting over a small shared CPU are slower than one
        judge = inversion.independent_digit_classifier(split.x_test, split.y_test, seed=0)
    assert judge.score(split.x_train, split.y_train) > 0.9
    means = inversion.class_means(split.x_train, split.y_train)
    assert means.shape == (10, 64)
    assert np.allclose(means[3], split.x_train[split.y_train == 3].mean(axis=0), atol=1e-6)
    # the mean of a class is recognised as that class: the yardstick of an inversion
    assert (judge.predict(means) == np.arange(10)).mean() >= 0.9


def test_import_has_no_side_effects() -> None:
    import subprocess
    import sys

    code = "import random, numpy as np; s = np.random.get_state()[1][0]; import aisec.lab02.inversion, aisec.lab02.checks; print(np.random.get_state()[1][0] == s)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "True"


# ------------------------------------------------------------------------- visible checks


def _stub(*args, **kwargs):
    raise NotImplementedError()


@pytest.mark.parametrize("question", ["q1", "q2", "q3", "q4", "q5", "q6", "q7"])
def test_visible_checks_fail_on_the_untouched_stub(question: str) -> None:
    with pytest.raises(CheckFailed):
        check(f"lab02.{question}", _stub, quiet=True)


def test_visible_checks_catch_wrong_answers() -> None:
    with pytest.raises(CheckFailed):
        check("lab02.q1", lambda images: torch.zeros(images.shape[0]), quiet=True)  # no variation counted
    with pytest.raises(CheckFailed):  # vertical neighbours only
        check("lab02.q1", lambda im: (im.reshape(-1, 8, 8).diff(dim=1)).abs().sum(dim=(1, 2)), quiet=True)
    with pytest.raises(CheckFailed):  # returns the start unchanged
        check("lab02.q2", lambda model, targets, x0, steps=100, lr=0.05, tv_weight=0.0: np.tile(x0, (len(targets), 1)), quiet=True)
    with pytest.raises(CheckFailed):  # guesses the most common genotype without querying
        check("lab02.q4", lambda api, people, prior: ["AG"] * len(people), quiet=True)


def _surrogate_attack(api, targets, public_x, x0, invert, epochs=200, lr=0.05, seed=0):
    """Q6 as its docstring states it: one query, argmax labels, a linear surrogate, then invert."""
    labels = torch.as_tensor(api.query(public_x).argmax(axis=1), dtype=torch.long)
    x = torch.as_tensor(np.asarray(public_x, dtype=np.float32))
    torch.manual_seed(seed)
    surrogate = torch.nn.Linear(x.shape[1], api.n_classes)
    opt = torch.optim.Adam(surrogate.parameters(), lr=lr)
    for _ in range(epochs):
        loss = torch.nn.functional.cross_entropy(surrogate(x), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return invert(surrogate, list(targets), x0)


def test_q6_checks_accept_the_stated_attack_and_refuse_shortcuts() -> None:
    check("lab02.q6", _surrogate_attack, quiet=True)
    with pytest.raises(CheckFailed):  # trains on the API's rounded confidences' argmax for too few steps: an untrained surrogate
        check("lab02.q6", lambda *a, **k: _surrogate_attack(*a, **{**k, "epochs": 0}), quiet=True)
    with pytest.raises(CheckFailed):  # queries the API once per image
        check("lab02.q6", lambda api, targets, public_x, x0, invert, **k: [api.query(r) for r in public_x] and
              _surrogate_attack(api, targets, public_x, x0, invert, **k), quiet=True)
    with pytest.raises(CheckFailed):  # never calls invert
        check("lab02.q6", lambda api, targets, public_x, x0, invert, **k: np.tile(x0, (len(targets), 1)), quiet=True)


class _Guard:
    """Q7 as its docstrings state it; the flags below break one rule each."""

    def __init__(self, model, radius=0.45, memory=256, *, label_all=False, detect=True, remember=True,
                 forget=True, copies_are_probes=False, is_probe_remembers=False):
        self.api = inversion.ConfidenceAPI(model)
        self.radius, self.memory = radius, memory
        self.history = np.zeros((0, 64))
        self.rules = dict(label_all=label_all, detect=detect, remember=remember, forget=forget,
                          copies_are_probes=copies_are_probes, is_probe_remembers=is_probe_remembers)

    def is_probe(self, rows):
        pool = np.concatenate([self.history, rows])
        distance = np.sqrt(np.clip((rows**2).sum(1)[:, None] + (pool**2).sum(1)[None] - 2 * rows @ pool.T, 0, None))
        low = -1.0 if self.rules["copies_are_probes"] else 1e-6
        near = (distance > low) & (distance < self.radius)
        if self.rules["copies_are_probes"]:
            near[np.arange(len(rows)), len(self.history) + np.arange(len(rows))] = False  # not itself
        if self.rules["is_probe_remembers"]:
            self.history = pool
        return near.any(axis=1)

    def query(self, rows):
        batch = np.asarray(rows, dtype=np.float64)
        single = batch.ndim == 1
        batch = batch.reshape(-1, 64)
        probes = self.is_probe(batch) if self.rules["detect"] else np.zeros(len(batch), dtype=bool)
        if self.rules["label_all"]:
            probes[:] = True
        if self.rules["remember"]:
            history = np.concatenate([self.history, batch])
            self.history = history[max(0, len(history) - self.memory):] if self.rules["forget"] else history
        answers = self.api.query(batch)
        answers[probes] = np.eye(10)[answers[probes].argmax(axis=1)]
        return answers[0] if single else answers


def test_q7_checks_accept_the_stated_guard_and_refuse_each_broken_rule() -> None:
    check("lab02.q7", _Guard, quiet=True)
    for broken in ("label_all", "copies_are_probes", "is_probe_remembers"):
        with pytest.raises(CheckFailed):
            check("lab02.q7", lambda model, radius=0.45, memory=256, b=broken: _Guard(model, radius, memory, **{b: True}),
                  quiet=True)
    for broken in ("detect", "remember", "forget"):
        with pytest.raises(CheckFailed):
            check("lab02.q7", lambda model, radius=0.45, memory=256, b=broken: _Guard(model, radius, memory, **{b: False}),
                  quiet=True)
    with pytest.raises(CheckFailed):  # the lab's earlier answer: labels only, for everyone
        check("lab02.q7", lambda model, radius=0.45, memory=256: inversion.ConfidenceAPI(model, top1_only=True), quiet=True)


def test_q7_hidden_thresholds_separate_the_guard_from_label_only_and_undefended_apis() -> None:
    """On the hidden seed: the guard keeps benign users' confidences (a label-only API does not), and its
    probes' answers stop the finite-difference attack at every width (the undefended API's do not)."""
    from aisec.data import digits
    from aisec.grading.scorers import SCORERS
    from aisec.models import digits_classifier

    seed = 1
    split = digits(seed)
    model = digits_classifier(split.x_train, split.y_train, seed=seed)
    x0 = split.x_test.mean(axis=0)
    order = list(range(len(split.x_test))) + list(range(20))

    def served(api) -> float:
        out = np.concatenate([np.asarray(api.query(split.x_test[:270])).reshape(-1, 10)]
                             + [np.asarray(api.query(split.x_test[i])).reshape(-1, 10) for i in order[270:]])
        value = {"seed": seed, "indices": order, "outputs": np.round(out, 4).tolist()}
        assert SCORERS["lab02.top1_agreement"](value, value) == 1.0
        return SCORERS["lab02.served_in_full"](value, value)

    assert served(_Guard(model)) >= 0.95 > served(inversion.ConfidenceAPI(model, top1_only=True))

    def attacked(api, h) -> float:
        images = np.stack([_finite_differences(api, c, x0, steps=5, h=h, lr=0.05) for c in range(10)])
        value = {"seed": seed, "targets": list(range(10)), "images": np.round(images, 4).tolist()}
        return SCORERS["lab02.judge_rate"](value, value)

    for h in (0.01, 0.1, 0.3):
        assert attacked(_Guard(model), h) <= 0.3 < attacked(inversion.ConfidenceAPI(model), h)


# --------------------------------------------------------- the adapted attack and defence (Q6, Q7)


def _whitebox(model, targets, x0, steps=100, lr=0.05):
    t = torch.as_tensor(list(targets), dtype=torch.long)
    x = torch.tensor(np.tile(np.asarray(x0, dtype=np.float32), (len(t), 1)), requires_grad=True)
    opt = torch.optim.Adam([x], lr=lr)
    for _ in range(steps):
        loss = -torch.log_softmax(model(x), dim=1)[torch.arange(len(t)), t].sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0.0, 1.0)
    return x.detach().numpy()


def _finite_differences(api, target, x0, steps=20, h=0.01, lr=0.02):
    x = np.asarray(x0, dtype=np.float64).copy()
    eye = np.eye(x.size)
    for _ in range(steps):
        p = api.query(np.clip(np.concatenate([x + h * eye, x - h * eye]), 0.0, 1.0))[:, target]
        x = np.clip(x + lr * np.sign(p[: x.size] - p[x.size:]), 0.0, 1.0)
    return x


def test_on_the_hidden_seed_only_the_adapted_attack_beats_rounding_and_only_labels_beat_wide_probes() -> None:
    """Q6's threshold separates the surrogate attack from the unadapted one (narrow or wide probes) through
    the rounding API; Q7's separates a label-only API from rounding (wide probes get through rounding)."""
    from aisec.data import digits
    from aisec.grading.scorers import SCORERS
    from aisec.models import digits_classifier

    seed = 1  # the hidden tests' seed
    split = digits(seed)
    model = digits_classifier(split.x_train, split.y_train, seed=seed)
    x0 = split.x_test.mean(axis=0)

    def rate(images: np.ndarray) -> float:
        value = {"seed": seed, "targets": list(range(10)), "images": np.round(images, 4).tolist()}
        return SCORERS["lab02.judge_rate"](value, value)

    rounding = inversion.ConfidenceAPI(model, decimals=1)
    adapted = _surrogate_attack(rounding, range(10), split.x_test, x0, _whitebox, seed=seed)
    assert rate(np.clip(adapted, 0, 1)) >= 0.8  # Q6's threshold
    for h, lr in ((0.01, 0.02), (0.3, 0.05)):
        unadapted = np.stack([_finite_differences(rounding, c, x0, h=h, lr=lr) for c in range(10)])
        assert rate(unadapted) < 0.8
    wide = {"rounding": rounding, "labels": inversion.ConfidenceAPI(model, top1_only=True)}
    rates = {k: rate(np.stack([_finite_differences(api, c, x0, h=0.3, lr=0.05) for c in range(10)]))
             for k, api in wide.items()}
    assert rates["labels"] <= 0.3 < rates["rounding"]  # Q7's threshold
