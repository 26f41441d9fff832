"""Deterministic seeding for numpy, random and torch, called explicitly by notebooks."""

from __future__ import annotations

import random

import numpy as np


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, numpy and torch; return a fresh numpy Generator for this seed."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import torch
    except ImportError:  # torch is optional for the tabular helpers
        pass
    else:
        # CPU kernels are deterministic for a fixed seed and thread count; no need for
        # use_deterministic_algorithms, which costs seconds of imports.
        torch.manual_seed(seed)
    return np.random.default_rng(seed)
