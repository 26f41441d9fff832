"""Lab 6 — federated learning: FedAvg, gradient leakage, secure aggregation, DP-FedAvg, poisoned
clients and robust aggregation, on the course's 8x8 digits with a 2,410-parameter MLP.

Pure, seeded functions (``seed: int``), flat float64 parameter vectors between clients and server,
no heavy import at import time (torch, scipy, opacus and cryptography load inside functions).
No graded answer lives here: the lab writes FedAvg's aggregation, iDLG and DLG, the secure
aggregation masks and their dropout recovery, the DP-FedAvg round, the noise for a target ε, model
replacement and the adaptive attacker; this package is the scenario and the yardsticks they are measured with.

:mod:`aisec.lab06.fedavg` — model, clients, local training, the federated loop
    ``make_model(seed)`` (torch: Linear(64, 32) -> Sigmoid -> Linear(32, 10)), ``N_PARAMS``,
    ``initial_vector(seed)``, ``get_vector(model)``, ``set_vector(model, vector)``,
    ``model_from_vector(vector)``, ``predict(vector, x)``, ``accuracy(vector, x, y)``,
    ``partition_dirichlet(y, n_clients, alpha, seed)``, ``partition_shards(y, n_clients, classes_per_client, seed)``,
    ``loss_gradient(vector, x, y)`` (numpy backprop: what a FedSGD client shares),
    ``local_train(vector, x, y, *, epochs, lr, batch_size, seed)`` -> local model,
    ``local_update(vector, x, y, **train)`` -> local model - vector,
    ``train_centralised(x, y, *, epochs, seed)`` (cached baseline),
    ``make_clients(seed, n_clients=10, alpha=0.5)`` (the lab's federation: list of (x, y)),
    ``pretrained_global(seed)`` (20 honest FedAvg rounds, cached: where the poisoning starts),
    ``run_federated(clients, aggregate, *, rounds, seed, start=None, local_epochs=1, lr=0.5,
    batch_size=16, server_lr=1.0, attackers=None, eval_data=None, progress=False)`` -> ``FedResult(vector, accuracy)``.
    An aggregate is ``f(updates, n_samples) -> update``; an attacker is ``f(round, global_vector, x, y) -> update``.
:mod:`aisec.lab06.leakage` — victims and the measurement of a reconstruction
    ``victims(seed, batch_size, distinct_labels=True, draw=0)`` -> ``Victim(x, y, indices)`` (from ``digits(seed).x_test``),
    ``shared_update(vector, x, y, *, steps=1, lr=1.0)`` (steps=1, lr=1: minus the gradient),
    ``analytic_reconstruction(shared)`` (first-layer inversion, Phong et al. 2018: the grader's
    yardstick attack), ``mse(a, b)``, ``ssim(a, b)`` (Wang et al. 2004, 3x3 windows),
    ``match_batch(reconstructed, truth)``, ``batch_quality(reconstructed, truth)`` -> (MSE, SSIM).
:mod:`aisec.lab06.secagg` — secure aggregation's building blocks (Bonawitz et al. 2017)
    ``MODULUS`` (2**32), ``SCALE`` (2**16), ``encode(vector)``, ``decode(values)``,
    ``client_private_keys(n_clients, seed)``, ``agree(private_key, peer_public_key, i, j)``,
    ``pairwise_seeds(n_clients, seed)`` -> ``{(i, j): 32 bytes}`` (X25519 + HKDF-SHA256, real
    key agreement with ``cryptography``), ``prg(seed_bytes, size)`` (ChaCha20 keystream).
:mod:`aisec.lab06.dp` — ``rdp_epsilon(noise_multiplier, sample_rate, rounds, delta)`` (opacus' RDP analysis,
    loaded without importing opacus' engine: 0.3 s instead of 20 s), ``ORDERS``.
:mod:`aisec.lab06.robust` — aggregation rules ``mean``, ``coordinate_median``, ``trimmed_mean(beta)``,
    ``krum(f, multi=1)``, ``krum_scores(updates, f)``, ``clip_to_norm(vector, bound)``, ``norm_clip_mean(bound)``;
    its docstring says why they are not Flower's (import 2.4 s, 68 MB RSS, 152 MB and 25 dependencies).
:mod:`aisec.lab06.poisoning` — ``TRIGGER``, ``TARGET``, ``stamp_trigger(x)``, ``backdoor_data(x, y)``,
    ``train_backdoored(vector, x, y, *, epochs, seed)``, ``flip_labels(y, source, target)``,
    ``backdoor_success(vector, x, y)``.

Visible checks are in :mod:`aisec.lab06.checks`, the grader's scorers in
:mod:`aisec.grading.scorers.lab06`.
"""
