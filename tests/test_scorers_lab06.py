"""Unit tests of lab 06's scorers (aisec.grading.scorers.lab06): no notebook, no sandbox. The scorers
rebuild the lab's seeded digits split and victims, and run their own analytic attack, as the grader does."""

from __future__ import annotations

import numpy as np
import pytest

from aisec.check import to_plain
from aisec.grading.scorers import SCORERS, Malformed
from aisec.lab06 import fedavg, leakage, poisoning, robust, secagg

SEED = 1


def plain(value: object) -> object:
    """What the judge sees: the record's JSON data."""
    return to_plain(value)


@pytest.fixture(scope="module")
def models() -> dict:
    glob = fedavg.pretrained_global(SEED)
    x, y = fedavg.make_clients(SEED)[0]
    backdoored = poisoning.train_backdoored(glob, x, y, epochs=10)
    return {"global": glob, "backdoored": backdoored, "random": fedavg.initial_vector(SEED)}


def model_value(vector: np.ndarray, **extra: object) -> object:
    return plain({"data_seed": SEED, "vector": vector, **extra})


def test_accuracy_and_backdoor_evaluate_the_recorded_vector(models: dict) -> None:
    ref = model_value(models["global"])
    assert SCORERS["lab06.global_accuracy"](ref, model_value(models["global"])) > 0.85
    assert SCORERS["lab06.global_accuracy"](ref, model_value(models["random"])) < 0.3
    assert SCORERS["lab06.backdoor_success"](ref, model_value(models["backdoored"])) > 0.9
    assert SCORERS["lab06.backdoor_success"](ref, model_value(models["global"])) < 0.1


def test_the_truth_comes_from_the_reference(models: dict) -> None:
    ref = model_value(models["global"])
    forged = model_value(models["random"], data_seed=0)  # the student's seed is ignored
    split = fedavg.make_clients  # noqa: F841 - documents that the scorer rebuilds digits(seed=reference's)
    from aisec.data import digits

    test = digits(SEED)
    expected = fedavg.accuracy(models["random"], test.x_test, test.y_test)
    assert SCORERS["lab06.global_accuracy"](ref, forged) == pytest.approx(expected)
    with pytest.raises(Malformed):
        SCORERS["lab06.global_accuracy"]({"vector": [0.0]}, model_value(models["global"]))


@pytest.mark.parametrize("bad", [1.0, {}, {"vector": [0.0] * 10}, {"vector": [float("nan")] * 2410},
                                 {"vector": [True] * 2410}, {"vector": "x" * 2410}])
def test_model_scorers_refuse_malformed_vectors(models: dict, bad: object) -> None:
    ref = model_value(models["global"])
    for name in ("lab06.global_accuracy", "lab06.backdoor_success"):
        with pytest.raises(Malformed):
            SCORERS[name](ref, bad)


def test_norm_over_bound() -> None:
    v = np.zeros(2410)
    v[0] = 2.97
    assert SCORERS["lab06.norm_over_bound"]({"bound": 3.0}, plain({"vector": v})) == pytest.approx(0.99)
    with pytest.raises(Malformed):
        SCORERS["lab06.norm_over_bound"]({"bound": 0.0}, plain({"vector": v}))
    with pytest.raises(Malformed):
        SCORERS["lab06.norm_over_bound"]({"bound": 3.0}, {"vector": [1.0]})


def test_label_accuracy_counts_true_labels_per_case() -> None:
    ref = {"labels": [[3], [1, 4], [0, 2, 9]]}
    assert SCORERS["lab06.label_accuracy"](ref, {"predicted": [[3], [1, 4], [0, 2, 9]]}) == 1.0
    assert SCORERS["lab06.label_accuracy"](ref, {"predicted": [[5], [1, 5], [0, 2, 9]]}) == pytest.approx((0 + 0.5 + 1) / 3)
    for bad in ({"predicted": [[3], [1, 4]]}, {"predicted": [[3], [1, 4, 5], [0, 2, 9]]}, {"predicted": [[True], [1, 4], [0, 2, 9]]}, 1.0):
        with pytest.raises(Malformed):
            SCORERS["lab06.label_accuracy"](ref, bad)


def victims_value(images: list[np.ndarray] | None = None, updates: list[np.ndarray] | None = None) -> tuple[dict, list]:
    cases = [leakage.victims(SEED, 1, draw=0), leakage.victims(SEED, 3, draw=1)]
    ref = {"data_seeds": [SEED, SEED], "cases": [[int(i) for i in c.indices] for c in cases]}
    return ref, cases


def test_reconstruction_scorers_pair_images_and_rebuild_the_truth() -> None:
    ref, cases = victims_value()
    exact = plain({"images": [c.x[::-1] for c in cases]})  # batch order does not matter
    assert SCORERS["lab06.reconstruction_ssim"](ref, exact) == pytest.approx(1.0)
    assert SCORERS["lab06.reconstruction_mse"](ref, exact) == pytest.approx(0.0, abs=1e-12)
    blank = plain({"images": [np.zeros_like(c.x) for c in cases]})
    assert SCORERS["lab06.reconstruction_ssim"](ref, blank) < 0.1
    assert SCORERS["lab06.reconstruction_mse"](ref, blank) > 0.1
    loud = plain({"images": [c.x * 100 for c in cases]})  # clipped to [0, 1] before scoring
    assert SCORERS["lab06.reconstruction_mse"](ref, loud) < SCORERS["lab06.reconstruction_mse"](ref, blank)
    for bad in ({"images": [cases[0].x]}, {"images": [cases[0].x, cases[0].x]}, {"images": [c.x[:, :10] for c in cases]}, 1.0):
        with pytest.raises(Malformed):
            SCORERS["lab06.reconstruction_ssim"](ref, plain(bad))
    with pytest.raises(Malformed):
        SCORERS["lab06.reconstruction_ssim"]({"data_seeds": [SEED], "cases": [[10_000]]}, exact)


def test_analytic_leakage_attacks_what_the_attacker_saw() -> None:
    ref, cases = victims_value()
    v = fedavg.initial_vector(SEED)
    plain_updates = [leakage.shared_update(v, c.x, c.y) for c in cases]
    assert SCORERS["lab06.analytic_leakage_ssim"](ref, plain({"updates": plain_updates})) > 0.8
    seeds = secagg.pairwise_seeds(2, seed=SEED)
    masked = [secagg.decode((secagg.encode(u) + secagg.prg(seeds[(0, 1)], len(u))) % np.uint64(secagg.MODULUS)) for u in plain_updates]
    assert SCORERS["lab06.analytic_leakage_ssim"](ref, plain({"updates": masked})) < 0.2
    noisy = [robust.clip_to_norm(u, 3.0) + np.random.default_rng(0).normal(0, 3.0, size=u.shape) for u in plain_updates]
    assert SCORERS["lab06.analytic_leakage_ssim"](ref, plain({"updates": noisy})) < 0.2
    for bad in ({"updates": plain_updates[:1]}, {"updates": [u[:-1] for u in plain_updates]}, {"images": plain_updates}):
        with pytest.raises(Malformed):
            SCORERS["lab06.analytic_leakage_ssim"](ref, plain(bad))


def test_every_lab06_scorer_is_registered_and_documented() -> None:
    from aisec.grading.scorers import lab06

    assert set(lab06.SCORERS) <= set(SCORERS)
    assert lab06.N_PARAMS == fedavg.N_PARAMS
    assert all(fn.__doc__ for fn in lab06.SCORERS.values())


def test_every_hidden_record_has_an_authored_hint_without_values() -> None:
    import re
    from pathlib import Path

    import nbformat

    from aisec.lab06.checks import HIDDEN_HINTS

    source = Path(__file__).resolve().parents[1] / "solutions" / "lab06_federated" / "lab06_federated.ipynb"
    keys = {k for cell in nbformat.read(source, as_version=4).cells
            for k in re.findall(r"""record\(\s*["']([\w.]+)""", cell.source)}
    assert keys == set(HIDDEN_HINTS)
    assert all(hint and not re.search(r"\d\.\d|\d{2,}", hint) for hint in HIDDEN_HINTS.values()), "hints name properties, not values"
