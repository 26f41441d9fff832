"""Visible checks of lab 6 (federated learning). They run on the visible seed only; hidden tests call
the same functions on other seeds. The checks test properties of the answers, never a copy of the
solution."""

from __future__ import annotations

from typing import Any

import numpy as np

from aisec.check import Check, expect_type


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# -------------------------------------------------------------------------------- q1 fedavg


def _q1_weighted(answer: Any) -> None:
    r = _rng()
    updates = [r.normal(size=12) for _ in range(5)]
    n = [3, 10, 1, 6, 30]
    before = [u.copy() for u in updates]
    out = answer(updates, n)
    expect_type(out, np.ndarray, "fedavg_aggregate(...)")
    assert out.shape == (12,) and out.dtype == np.float64, f"expected a float64 vector of shape (12,), got {out.dtype} {out.shape}"
    assert all(np.array_equal(a, b) for a, b in zip(updates, before)), "fedavg_aggregate modified its inputs"
    expected = sum(k * u for k, u in zip(n, updates)) / sum(n)
    assert np.allclose(out, expected), "the result is not the n_samples-weighted average of the updates"


def _q1_limits(answer: Any) -> None:
    r = _rng(1)
    updates = [r.normal(size=6) for _ in range(4)]
    assert np.allclose(answer(updates, [7, 7, 7, 7]), np.mean(updates, axis=0)), "equal sizes should give the plain mean"
    assert np.allclose(answer(updates, [0, 0, 9, 0]), updates[2]), "a client with all the samples should decide alone"


# -------------------------------------------------------------------------------- q2 labels


def _q2_single(answer: Any) -> None:
    from aisec.lab06 import fedavg, leakage

    v = fedavg.initial_vector(0)
    for s in range(8):
        vic = leakage.victims(0, 1, draw=s)
        labels = answer(leakage.shared_update(v, vic.x, vic.y), 1)
        expect_type(labels, list, "infer_labels(...)")
        assert all(type(c) is int for c in labels), "labels should be Python ints"
        assert labels == [int(vic.y[0])], "for one image the label is the only negative entry of the output-bias gradient"


def _q2_batch(answer: Any) -> None:
    from aisec.lab06 import fedavg, leakage

    v = fedavg.initial_vector(0)
    vic = leakage.victims(0, 3)
    labels = answer(leakage.shared_update(v, vic.x, vic.y, lr=0.1), 3)
    assert len(labels) == 3 and labels == sorted(labels), "return batch_size labels, sorted"
    assert labels == sorted(int(c) for c in vic.y), "on this batch the three most negative entries are the true labels"


# -------------------------------------------------------------------------------- q3 DLG


def _q3_shape(answer: Any) -> None:
    from aisec.lab06 import fedavg, leakage

    v = fedavg.initial_vector(0)
    vic = leakage.victims(0, 2)
    rec = answer(v, leakage.shared_update(v, vic.x, vic.y), [int(c) for c in vic.y], iterations=5)
    expect_type(rec, np.ndarray, "dlg_reconstruct(...)")
    assert rec.shape == (2, 64), f"expected one 64-pixel image per label: shape (2, 64), got {rec.shape}"
    assert rec.min() >= 0.0 and rec.max() <= 1.0, "clip the reconstruction to [0, 1]"


def _q3_quality(answer: Any) -> None:
    from aisec.lab06 import fedavg, leakage

    v = fedavg.initial_vector(0)
    vic = leakage.victims(0, 1)
    rec = answer(v, leakage.shared_update(v, vic.x, vic.y, lr=0.5), [int(vic.y[0])], lr=0.5)
    mse, ssim = leakage.batch_quality(rec, vic.x)
    assert ssim >= 0.9 and mse <= 0.01, (
        f"SSIM {ssim:.3f} (want >= 0.9), MSE {mse:.4f} (want <= 0.01): match the gradient -shared/lr, with "
        "create_graph=True, in float64, and minimise with L-BFGS (the distance's gradient with respect to the dummy)")


# -------------------------------------------------------------------------------- q4 masks


def _q4_cancel(answer: Any) -> None:
    from aisec.lab06 import secagg

    n = 4
    seeds = secagg.pairwise_seeds(n, seed=0)
    r = _rng(2)
    enc = [secagg.encode(r.normal(size=30)) for _ in range(n)]
    before = [e.copy() for e in enc]
    masked = [answer(k, e, seeds, n) for k, e in enumerate(enc)]
    for m in masked:
        expect_type(m, np.ndarray, "mask_update(...)")
    assert all(np.array_equal(a, b) for a, b in zip(enc, before)), "mask_update modified its input"
    assert all(m.shape == (30,) for m in masked), "a masked vector has the length of the update"
    assert all(np.all(np.asarray(m, dtype=np.float64) < secagg.MODULUS) and np.all(np.asarray(m, dtype=np.float64) >= 0) for m in masked), (
        "masked values live in [0, MODULUS): reduce modulo secagg.MODULUS")
    total = np.sum(np.asarray(masked, dtype=np.uint64), axis=0) % np.uint64(secagg.MODULUS)
    expected = np.sum(np.asarray(enc, dtype=np.uint64), axis=0) % np.uint64(secagg.MODULUS)
    assert np.array_equal(total, expected), "the masked vectors must sum (mod MODULUS) exactly to the encoded updates' sum"


def _q4_hides(answer: Any) -> None:
    from aisec.lab06 import secagg

    seeds = secagg.pairwise_seeds(3, seed=0)
    enc = secagg.encode(np.zeros(1000))
    masked = np.asarray(answer(1, enc, seeds, 3), dtype=np.float64)
    assert not np.array_equal(masked, enc.astype(np.float64)), "the masked vector equals the update: no mask was added"
    assert 0.4 < masked.mean() / secagg.MODULUS < 0.6, "a masked vector should look uniform on [0, MODULUS)"
    two = secagg.pairwise_seeds(2, seed=0)
    first = np.asarray(answer(0, enc[:10], two, 2), dtype=np.uint64)
    assert np.array_equal(first, secagg.prg(two[(0, 1)], 10)), "client 0 of two adds PRG(s_01) (a plus sign for j > i)"


# -------------------------------------------------------------------------------- q5 dropout


def _q5(answer: Any) -> None:
    from aisec.lab06 import secagg

    n = 4
    seeds = secagg.pairwise_seeds(n, seed=0)
    r = _rng(3)
    ups = [r.normal(scale=0.1, size=20) for _ in range(n)]

    def mask(k: int, e: np.ndarray) -> np.ndarray:
        m = e.copy()
        for j in range(n):
            if j != k:
                p = secagg.prg(seeds[(min(k, j), max(k, j))], len(e))
                m = (m + (p if j > k else np.uint64(secagg.MODULUS) - p)) % np.uint64(secagg.MODULUS)
        return m

    masked = {k: mask(k, secagg.encode(u)) for k, u in enumerate(ups)}
    out = answer(dict(masked), seeds, n)
    expect_type(out, np.ndarray, "unmask_sum(...)")
    assert np.allclose(out, np.sum(ups, axis=0), atol=1e-3), "with nobody dropped, the result is the decoded sum of all updates"
    survivors = {k: m for k, m in masked.items() if k != 2}
    assert np.allclose(answer(survivors, seeds, n), np.sum([u for k, u in enumerate(ups) if k != 2], axis=0), atol=1e-3), (
        "with client 2 dropped, remove each survivor's mask shared with client 2 (mind the sign: + for j > i)")


# -------------------------------------------------------------------------------- q6 DP-FedAvg


def _clients(n: int = 20) -> list[tuple[np.ndarray, np.ndarray]]:
    from aisec.lab06.fedavg import make_clients

    return make_clients(0, n_clients=n, alpha=1.0, min_size=5)


def _q6_no_noise(answer: Any) -> None:
    from aisec.lab06 import fedavg, robust

    cl = _clients()[:4]
    v = fedavg.initial_vector(0)
    before = v.copy()
    out = answer(v, cl, clip=0.5, noise_multiplier=0.0, sample_rate=1.0, seed=3, local_epochs=1)
    expect_type(out, np.ndarray, "dp_fedavg_round(...)")
    assert np.array_equal(v, before), "dp_fedavg_round modified the global vector"
    ups = [robust.clip_to_norm(fedavg.local_update(v, x, y, epochs=1, lr=1.0, seed=3 * 1000 + k), 0.5) for k, (x, y) in enumerate(cl)]
    assert np.allclose(out, v + np.mean(ups, axis=0)), (
        "with sample_rate 1 and no noise the round adds the mean of the clipped updates (client seeds seed * 1000 + k)")


def _q6_noise(answer: Any) -> None:
    from aisec.lab06 import fedavg

    cl = _clients()
    v = fedavg.initial_vector(0)
    a = answer(v, cl, clip=1.0, noise_multiplier=1.0, sample_rate=0.3, seed=5, local_epochs=1)
    b = answer(v, cl, clip=1.0, noise_multiplier=1.0, sample_rate=0.3, seed=5, local_epochs=1)
    assert np.array_equal(a, b), "the round must be reproducible for a seed (draw everything from default_rng(seed))"
    step = (a - v) * 0.3 * len(cl)  # the sum of the clipped updates plus the noise
    assert 0.8 < float(np.std(step)) < 1.3, (
        "the noise's standard deviation should be noise_multiplier * clip, before dividing by sample_rate * n")


# -------------------------------------------------------------------------------- q7 noise search


def _q7(answer: Any) -> None:
    from aisec.lab06 import dp

    z = answer(4.0, 0.3, 20, 1e-3)
    assert type(z) is float, f"return a Python float, got {type(z).__name__}"
    assert abs(z * 20 - round(z * 20)) < 1e-9 and 0.05 <= z <= 10.0, "z is a multiple of 0.05 in [0.05, 10]"
    assert dp.rdp_epsilon(z, 0.3, 20, 1e-3) <= 4.0, "the returned z does not meet the target epsilon"
    assert z == 0.05 or dp.rdp_epsilon(round(z - 0.05, 2), 0.3, 20, 1e-3) > 4.0, "a smaller z on the grid also meets the target"
    assert answer(1e-4, 1.0, 1000, 1e-6) is None, "return None when even z = 10 is not enough"


# -------------------------------------------------------------------------------- q8 replacement


def _q8(answer: Any) -> None:
    r = _rng(4)
    g, x = r.normal(size=10), r.normal(size=10)
    for n, eta in ((10, 1.0), (4, 0.5)):
        delta = answer(g, x, n, eta)
        expect_type(delta, np.ndarray, "model_replacement(...)")
        honest = [np.zeros(10)] * (n - 1)
        assert np.allclose(g + eta * np.mean([delta] + honest, axis=0), x), (
            "with zero honest updates, averaging the boosted update over n clients (times server_lr) must land on the backdoored model")


# -------------------------------------------------------------------------------- q9 adaptive


def _q9(answer: Any) -> None:
    from aisec.lab06 import fedavg, poisoning

    g = fedavg.pretrained_global(0)
    x, y = fedavg.make_clients(0)[0]
    attack = answer(3.0, 10)
    assert callable(attack), "adaptive_attacker(...) should return a function (round, global, x, y) -> update"
    update = attack(0, g.copy(), x, y)
    expect_type(update, np.ndarray, "the attacker's update")
    norm = float(np.linalg.norm(update))
    assert 0.95 * 3.0 <= norm <= 0.99 * 3.0 + 1e-9, f"the update's norm {norm:.3f} should be margin * bound = 2.97"
    boosted = 10 * (poisoning.train_backdoored(g, x, y, epochs=5, seed=0) - g)
    cosine = float(update @ boosted / (np.linalg.norm(update) * np.linalg.norm(boosted)))
    assert cosine > 0.999, "the update should point where the boosted backdoor update points (train with seed=round)"
    small = answer(1e6, 10)(0, g.copy(), x, y)
    assert np.allclose(small, boosted), "an update already under the bound is sent unchanged"


CHECKS = {
    "q1": [Check("weighted by the clients' sample counts, float64, inputs untouched", _q1_weighted),
           Check("equal sizes give the mean; one client with all samples decides", _q1_limits)],
    "q2": [Check("one image: the label of the only negative output-bias gradient", _q2_single),
           Check("a batch: batch_size sorted labels", _q2_batch)],
    "q3": [Check("one image in [0, 1] per label", _q3_shape),
           Check("a single image reconstructed with SSIM >= 0.9", _q3_quality)],
    "q4": [Check("masks cancel exactly in the sum; values in [0, MODULUS); input untouched", _q4_cancel),
           Check("a masked vector looks uniform; the sign convention", _q4_hides)],
    "q5": [Check("recovers the survivors' sum with and without a dropped client", _q5)],
    "q6": [Check("no noise, everyone sampled: the mean of the clipped updates", _q6_no_noise),
           Check("reproducible for a seed, noise of the right scale", _q6_noise)],
    "q7": [Check("the smallest grid z that meets the target; None when impossible", _q7)],
    "q8": [Check("averaging the boosted update lands on the backdoored model", _q8)],
    "q9": [Check("the boosted backdoor direction, scaled to margin x bound", _q9)],
}


#: An authored hint for every hidden record of the lab (by key): the property it tests, never a value.
#: Hidden tests run the same functions on another seed: other clients, victims, keys and federations.
HIDDEN_HINTS: dict[str, str] = {
    "q1_fedavg_test.weighted_average": "the n_samples-weighted mean of other updates",
    "q1_fedavg_test.one_client_only": "clients with zero samples carry zero weight",
    "q1_fedavg_test.federated_model_accuracy": "FedAvg with your rule trains another federation to a good test accuracy",
    "q2_labels_test.labels": "the labels read from the output-bias gradient of other victims, single images and batches",
    "q2_labels_test.label_accuracy": "the inferred labels are the victims' true labels",
    "q3_dlg_test.single_image_ssim": "DLG reconstructs other single images with a high structural similarity",
    "q3_dlg_test.single_image_mse": "DLG reconstructs other single images with a small pixel error",
    "q3_dlg_test.batch_of_three_ssim": "DLG reconstructs a batch of three images given their labels",
    "q4_mask_test.masked_vectors": "the masked vectors of six clients with other keys, sign convention included",
    "q4_mask_test.masks_cancel_exactly": "the masked vectors sum exactly to the encoded updates' sum",
    "q4_mask_test.server_view_leaks_nothing": "the grader's own attack on a masked update recovers nothing",
    "q5_dropout_test.recovered_sums": "the survivors' sum after zero, one, two and three dropouts",
    "q5_dropout_test.sums_match_the_plain_sums": "each recovered sum equals the plain sum of the survivors' updates",
    "q6_dpfedavg_test.one_round": "one DP-FedAvg round exactly as specified: sampling, seeds, clipping, noise, divisor",
    "q6_dpfedavg_test.input_untouched": "the global vector passed in is not modified",
    "q6_dpfedavg_test.private_model_accuracy": "fifteen private rounds still train a useful model",
    "q6_dpfedavg_test.clipping_alone_leaks": "without noise, a lone client's clipped update still gives its image away",
    "q6_dpfedavg_test.noise_stops_the_leak": "with noise, the grader's attack on a lone client's round recovers nothing",
    "q7_noise_test.types": "a Python float or None",
    "q7_noise_test.noise_multipliers": "the smallest grid noise for other targets, sampling rates and round counts",
    "q8_replace_test.boosted_update": "the boost n / server_lr applied to the difference of the models",
    "q8_replace_test.backdoor_after_one_round": "one replacement round plants the backdoor in another federation",
    "q9_adaptive_test.update_norm_just_under_the_bound": "the sent update uses almost all of the clipping budget",
    "q9_adaptive_test.update_norm_within_the_bound": "the sent update never exceeds the clipping bound",
    "q9_adaptive_test.backdoor_through_clipping": "twenty rounds under norm clipping plant the backdoor in another federation",
    "q9_adaptive_test.clean_accuracy_kept": "the backdoored federation keeps its clean accuracy",
}
