"""Differential privacy for federated averaging: the privacy accountant.

DP-FedAvg (McMahan, Ramage, Talwar and Zhang 2018, *Learning Differentially Private Recurrent
Language Models*, ICLR) samples each client with probability ``q`` per round, clips every
client's update to L2 norm ``C``, sums them, adds Gaussian noise ``N(0, (z C)^2)`` and divides by
the expected number of clients ``q n``. This is *user-level* DP: the guarantee covers everything
one client contributes. Its privacy loss over ``T`` rounds is the sampled Gaussian mechanism's,
accounted here with Rényi DP through opacus' accountant (Mironov 2017; Mironov, Talwar and Zhang
2019), the same accountant opacus uses for DP-SGD.
"""

from __future__ import annotations


def rdp_epsilon(noise_multiplier: float, sample_rate: float, rounds: int, delta: float) -> float:
    """ε of ``rounds`` rounds of the sampled Gaussian mechanism with noise multiplier ``z`` and
    client sampling rate ``q``, at ``delta``, from ``opacus.accountants.RDPAccountant``.
    ``inf`` when ``noise_multiplier`` is 0 (no noise, no privacy)."""
    if noise_multiplier <= 0:
        return float("inf")
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = [(float(noise_multiplier), float(sample_rate), int(rounds))]
    return float(accountant.get_epsilon(delta=delta))
