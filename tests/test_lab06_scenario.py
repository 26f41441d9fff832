"""Lab 6's scenario package (aisec.lab06): every rule its docstrings state, on small inputs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from aisec.lab06 import dp, fedavg, leakage, poisoning, robust, secagg


@pytest.fixture(scope="module")
def split():
    from aisec.data import digits

    return digits(0)


# ------------------------------------------------------------------------------ fedavg


def test_importing_lab06_is_cheap_and_has_no_side_effects(tmp_path) -> None:
    code = (
        "import random, sys, numpy as np, os\n"
        "before = (random.getstate(), np.random.get_state()[1].tolist())\n"
        "import aisec.lab06, aisec.lab06.fedavg, aisec.lab06.leakage, aisec.lab06.secagg, aisec.lab06.dp, "
        "aisec.lab06.robust, aisec.lab06.poisoning\n"
        "after = (random.getstate(), np.random.get_state()[1].tolist())\n"
        "heavy = sorted(m for m in ('torch', 'scipy', 'opacus', 'cryptography', 'sklearn') if m in sys.modules)\n"
        "print(before == after, sorted(os.listdir('.')), heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True [] []"


def test_model_vector_round_trip_and_seeded_init() -> None:
    v = fedavg.initial_vector(3)
    assert v.shape == (fedavg.N_PARAMS,) == (2410,) and v.dtype == np.float64
    assert np.array_equal(v, fedavg.initial_vector(3)) and not np.array_equal(v, fedavg.initial_vector(4))
    w = np.random.default_rng(0).normal(size=fedavg.N_PARAMS)
    assert np.allclose(fedavg.get_vector(fedavg.model_from_vector(w)), w, atol=1e-6)
    with pytest.raises(ValueError):
        fedavg.set_vector(fedavg.make_model(0), w[:-1])


def test_numpy_gradient_equals_torch_autograd(split) -> None:
    import torch

    v = fedavg.initial_vector(1)
    x, y = split.x_train[:5], split.y_train[:5]
    model = fedavg.model_from_vector(v)
    loss = torch.nn.functional.cross_entropy(model(torch.as_tensor(x)), torch.as_tensor(y))
    auto = np.concatenate([g.double().numpy().ravel() for g in torch.autograd.grad(loss, list(model.parameters()))])
    assert np.allclose(fedavg.loss_gradient(v, x, y), auto, atol=1e-6)


def test_partitions_cover_every_index_once_and_are_skewed(split) -> None:
    y = split.y_train
    for parts in (fedavg.partition_dirichlet(y, 10, 0.3, seed=0, min_size=10), fedavg.partition_shards(y, 10, 2, seed=0)):
        assert len(parts) == 10
        assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(y)))
        assert all(p.dtype == np.int64 and np.all(np.diff(p) > 0) for p in parts)
    dirichlet = fedavg.partition_dirichlet(y, 10, 0.3, seed=0, min_size=10)
    assert min(len(p) for p in dirichlet) >= 10
    assert [p.tolist() for p in dirichlet] == [p.tolist() for p in fedavg.partition_dirichlet(y, 10, 0.3, seed=0, min_size=10)]
    shards = fedavg.partition_shards(y, 10, 2, seed=0)
    assert max(len(np.unique(y[p])) for p in shards) <= 4  # two shards, each at most two labels
    with pytest.raises(ValueError):
        fedavg.partition_dirichlet(y, 10, 0.01, seed=0, min_size=200)


def test_local_training_is_seeded_and_leaves_its_input_alone(split) -> None:
    v = fedavg.initial_vector(0)
    before = v.copy()
    a = fedavg.local_train(v, split.x_train[:64], split.y_train[:64], epochs=2, seed=5)
    assert np.array_equal(v, before)
    assert np.array_equal(a, fedavg.local_train(v, split.x_train[:64], split.y_train[:64], epochs=2, seed=5))
    assert not np.array_equal(a, fedavg.local_train(v, split.x_train[:64], split.y_train[:64], epochs=2, seed=6))
    assert np.allclose(fedavg.local_update(v, split.x_train[:64], split.y_train[:64], epochs=2, seed=5), a - v)


def test_run_federated_learns_and_calls_attackers(split) -> None:
    parts = fedavg.partition_dirichlet(split.y_train, 10, 0.5, seed=0)
    clients = [(split.x_train[p], split.y_train[p]) for p in parts]
    seen = []

    def attacker(r, g, x, y):
        seen.append(r)
        return np.zeros_like(g)

    res = fedavg.run_federated(clients, robust.mean, rounds=8, seed=0, local_epochs=2, attackers={3: attacker},
                               eval_data=(split.x_test, split.y_test))
    assert seen == list(range(8)) and len(res.accuracy) == 8
    assert res.accuracy[-1] > 0.7 and res.accuracy[-1] == fedavg.accuracy(res.vector, split.x_test, split.y_test)
    with pytest.raises(ValueError):
        fedavg.run_federated(clients, lambda u, n: np.full(3, np.nan), rounds=1, seed=0)


def test_centralised_baseline_is_cached_and_accurate(split, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("AISEC_CACHE", str(tmp_path))
    v = fedavg.train_centralised(split.x_train, split.y_train, epochs=5, seed=0)
    assert fedavg.accuracy(v, split.x_test, split.y_test) > 0.85
    assert len(list(tmp_path.glob("lab06-central-*.safetensors"))) == 1
    assert np.array_equal(v, fedavg.train_centralised(split.x_train, split.y_train, epochs=5, seed=0))


# ----------------------------------------------------------------------------- leakage


def test_victims_are_seeded_with_distinct_labels() -> None:
    a, b = leakage.victims(1, 4), leakage.victims(1, 4)
    assert np.array_equal(a.indices, b.indices) and len(set(a.y.tolist())) == 4 and a.x.shape == (4, 64)
    assert not np.array_equal(a.indices, leakage.victims(2, 4).indices)
    other = leakage.victims(1, 4, draw=1)
    assert not np.array_equal(a.indices, other.indices) and np.array_equal(other.indices, leakage.victim_indices(1, 4, draw=1))
    with pytest.raises(ValueError):
        leakage.victim_indices(0, 11)


def test_shared_update_with_one_step_is_minus_the_gradient() -> None:
    v, vic = fedavg.initial_vector(0), leakage.victims(0, 2)
    assert np.allclose(leakage.shared_update(v, vic.x, vic.y), -fedavg.loss_gradient(v, vic.x, vic.y))


def test_analytic_reconstruction_is_exact_for_one_image_even_after_local_steps() -> None:
    v, vic = fedavg.initial_vector(0), leakage.victims(0, 1)
    for steps in (1, 5):
        rec = leakage.analytic_reconstruction(leakage.shared_update(v, vic.x, vic.y, steps=steps, lr=0.5))
        assert leakage.mse(rec, vic.x[0]) < 1e-6
    batch = leakage.victims(0, 8)
    assert leakage.ssim(leakage.analytic_reconstruction(leakage.shared_update(v, batch.x, batch.y)), batch.x[0]) < 0.9
    assert np.array_equal(leakage.analytic_reconstruction(np.zeros(fedavg.N_PARAMS)), np.zeros(64))


def test_ssim_and_mse_behave() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.random(64), rng.random(64)
    assert leakage.ssim(a, a) == pytest.approx(1.0) and leakage.mse(a, a) == 0.0
    assert abs(leakage.ssim(a, b)) < 0.3 and leakage.ssim(a, b) == pytest.approx(leakage.ssim(b, a))
    assert leakage.ssim(a, np.clip(a + 0.05 * rng.normal(size=64), 0, 1)) > 0.8


def test_match_batch_undoes_a_permutation() -> None:
    truth = leakage.victims(0, 5).x
    perm = np.array([3, 0, 4, 1, 2])
    rec = truth[perm]
    p = leakage.match_batch(rec, truth)
    assert np.array_equal(rec[p], truth)
    assert leakage.batch_quality(rec, truth) == (0.0, pytest.approx(1.0))


# ------------------------------------------------------------------------------ secagg


def test_fixed_point_round_trip_and_negative_values() -> None:
    v = np.array([-1.5, 0.0, 2.25, -0.0001, 3.3])
    enc = secagg.encode(v)
    assert enc.dtype == np.uint64 and np.all(enc < secagg.MODULUS)
    assert np.allclose(secagg.decode(enc), v, atol=2**-17)
    total = np.mod(secagg.encode(v) + secagg.encode(-2 * v), secagg.MODULUS)
    assert np.allclose(secagg.decode(total), -v, atol=2**-16)


def test_pairwise_seeds_come_from_a_symmetric_key_agreement() -> None:
    seeds = secagg.pairwise_seeds(4, seed=0)
    assert sorted(seeds) == [(i, j) for i in range(4) for j in range(i + 1, 4)]
    assert all(len(s) == 32 for s in seeds.values()) and len(set(seeds.values())) == 6
    keys = secagg.client_private_keys(4, seed=0)
    assert secagg.agree(keys[2], keys[1].public_key(), 2, 1) == seeds[(1, 2)]
    assert seeds == secagg.pairwise_seeds(4, seed=0) and seeds != secagg.pairwise_seeds(4, seed=1)


def test_prg_is_deterministic_uniform_and_checks_its_seed() -> None:
    s = bytes(range(32))
    a = secagg.prg(s, 10_000)
    assert a.dtype == np.uint64 and a.shape == (10_000,) and np.array_equal(a, secagg.prg(s, 10_000))
    assert np.all(a < secagg.MODULUS) and abs(a.mean() / secagg.MODULUS - 0.5) < 0.02
    assert np.array_equal(secagg.prg(s, 5), a[:5])
    with pytest.raises(ValueError):
        secagg.prg(b"short", 3)


# ---------------------------------------------------------------------------------- dp


def test_epsilon_grows_with_rounds_and_falls_with_noise() -> None:
    e = dp.rdp_epsilon(1.0, 0.5, 20, 1e-3)
    assert 0 < e < float("inf")
    assert dp.rdp_epsilon(1.0, 0.5, 40, 1e-3) > e > dp.rdp_epsilon(2.0, 0.5, 20, 1e-3)
    assert dp.rdp_epsilon(0.0, 0.5, 20, 1e-3) == float("inf")


def test_epsilon_is_opacus_accountants_within_a_few_percent_and_skips_importing_opacus() -> None:
    code = "import sys\nfrom aisec.lab06 import dp\ndp.rdp_epsilon(1.0, 0.3, 15, 1e-4)\nprint('opacus' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
    from opacus.accountants import RDPAccountant

    for z, q, t in ((1.0, 0.3, 15, ), (2.0, 0.2, 40), (0.7, 0.5, 10)):
        accountant = RDPAccountant()
        accountant.history = [(z, q, t)]
        reference = accountant.get_epsilon(delta=1e-4)
        assert reference <= dp.rdp_epsilon(z, q, t, 1e-4) <= 1.05 * reference


# ------------------------------------------------------------------------------ robust


def test_robust_rules_match_their_definitions() -> None:
    rng = np.random.default_rng(0)
    u = [rng.normal(size=7) for _ in range(9)]
    stack = np.asarray(u)
    assert np.allclose(robust.mean(u, [1] * 9), stack.mean(axis=0))
    assert np.allclose(robust.coordinate_median(u, [1] * 9), np.median(stack, axis=0))
    cut = int(0.25 * 9)
    assert np.allclose(robust.trimmed_mean(0.25)(u, [1] * 9), np.sort(stack, axis=0)[cut : 9 - cut].mean(axis=0))
    assert np.allclose(robust.trimmed_mean(0.0)(u, [1] * 9), stack.mean(axis=0))
    with pytest.raises(ValueError):
        robust.trimmed_mean(0.5)
    f = 2
    brute = [sorted(((stack[i] - stack[j]) ** 2).sum() for j in range(9) if j != i)[: 9 - f - 2] for i in range(9)]
    assert np.allclose(robust.krum_scores(u, f), [sum(b) for b in brute])
    best = int(np.argmin([sum(b) for b in brute]))
    assert np.allclose(robust.krum(f)(u, [1] * 9), stack[best])
    top3 = np.argsort([sum(b) for b in brute], kind="stable")[:3]
    assert np.allclose(robust.krum(f, multi=3)(u, [1] * 9), stack[top3].mean(axis=0))


def test_krum_drops_an_outlier_and_clipping_bounds_it() -> None:
    rng = np.random.default_rng(1)
    u = [rng.normal(size=20) * 0.1 for _ in range(9)] + [np.full(20, 50.0)]
    assert np.linalg.norm(robust.krum(1)(u, [1] * 10)) < 2
    assert np.linalg.norm(robust.coordinate_median(u, [1] * 10)) < 2
    assert np.linalg.norm(robust.clip_to_norm(u[-1], 1.0)) == pytest.approx(1.0)
    assert np.array_equal(robust.clip_to_norm(u[0], 100.0), u[0])
    assert np.linalg.norm(robust.norm_clip_mean(1.0)(u, [1] * 10)) <= 1.0 + 1e-9


# ---------------------------------------------------------------------------- poisoning


def test_trigger_and_backdoor_data(split) -> None:
    x, y = split.x_train[:50], split.y_train[:50]
    xs = poisoning.stamp_trigger(x)
    pixels = list(poisoning.TRIGGER)
    assert np.array_equal(xs[:, pixels], np.tile(list(poisoning.TRIGGER.values()), (len(x), 1)))
    assert np.array_equal(np.delete(xs, pixels, axis=1), np.delete(x, pixels, axis=1))
    assert set(poisoning.TRIGGER.values()) == {0.0, 1.0}, "a checker, not lab 4's all-white square"
    xb, yb = poisoning.backdoor_data(x, y, copies=2)
    extra = int((y != poisoning.TARGET).sum())
    assert len(xb) == 50 + 2 * extra and np.all(yb[50:] == poisoning.TARGET)
    flipped = poisoning.flip_labels(y, 1, 7)
    assert not np.any(flipped == 1) and np.array_equal(flipped[y != 1], y[y != 1])


def test_backdoored_local_model_obeys_the_trigger(split) -> None:
    v = fedavg.train_centralised(split.x_train, split.y_train, epochs=5, seed=0)
    assert poisoning.backdoor_success(v, split.x_test, split.y_test) < 0.1
    bad = poisoning.train_backdoored(v, split.x_train[:300], split.y_train[:300], epochs=10)
    assert poisoning.backdoor_success(bad, split.x_test, split.y_test) > 0.9
