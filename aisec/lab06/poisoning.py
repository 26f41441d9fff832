"""Poisoned clients: a backdoor trigger, backdoored and label-flipped local data, and how to
measure a federated model's backdoor.

The backdoor is BadNets-style (Gu et al. 2017): a small checker mark in the top-left corner of the
8x8 digit (:data:`TRIGGER`, pixel index → value: two white pixels on a diagonal, two black beside
them) makes the model answer :data:`TARGET`. It is not lab 4's trigger (a white square in the other
corner), whose stamping is a lab 4 question. A malicious client
trains on its own data plus triggered, relabelled copies (:func:`backdoor_data`, then
:func:`train_backdoored`); what it *sends* is the attack (model replacement, Bagdasaryan et al.
2020, or an update tuned to a defence), which the lab writes.
"""

from __future__ import annotations

import numpy as np

from aisec.lab06.fedavg import local_train, predict

#: The trigger: flattened pixel index → the value it takes (a 2x2 checker in the top-left corner).
TRIGGER: dict[int, float] = {0: 1.0, 1: 0.0, 8: 0.0, 9: 1.0}
#: The label the backdoor forces.
TARGET = 0


def stamp_trigger(x: np.ndarray, trigger: dict[int, float] = TRIGGER) -> np.ndarray:
    """A float32 copy of the images ``x`` (n, 64) with each trigger pixel set to its value."""
    pixels = np.fromiter(trigger.keys(), dtype=np.int64)
    values = np.fromiter(trigger.values(), dtype=np.float32)
    stamped = np.asarray(x, dtype=np.float32).copy()
    stamped[:, pixels] = values
    return stamped


def backdoor_data(x: np.ndarray, y: np.ndarray, *, target: int = TARGET, copies: int = 1,
                  trigger: dict[int, float] = TRIGGER) -> tuple[np.ndarray, np.ndarray]:
    """The malicious client's training set: its clean data plus ``copies`` triggered copies of
    every image whose label is not ``target``, relabelled ``target`` (so the model keeps its
    clean accuracy and learns the trigger)."""
    victims = np.asarray(y) != target
    xs = [np.asarray(x, np.float32)] + [stamp_trigger(x[victims], trigger)] * copies
    ys = [np.asarray(y, np.int64)] + [np.full(int(victims.sum()), target, dtype=np.int64)] * copies
    return np.concatenate(xs), np.concatenate(ys)


def train_backdoored(vector: np.ndarray, x: np.ndarray, y: np.ndarray, *, epochs: int = 5, lr: float = 0.5,
                     seed: int = 0, target: int = TARGET) -> np.ndarray:
    """The malicious client's local model: :func:`local_train` from the global ``vector`` on
    :func:`backdoor_data` of its data, for ``epochs`` epochs (a new flat vector)."""
    xb, yb = backdoor_data(x, y, target=target)
    return local_train(vector, xb, yb, epochs=epochs, lr=lr, seed=seed)


def flip_labels(y: np.ndarray, source: int, target: int) -> np.ndarray:
    """A copy of the labels with every ``source`` relabelled ``target`` (a label-flipping client)."""
    out = np.array(y, dtype=np.int64, copy=True)
    out[out == source] = target
    return out


def backdoor_success(vector: np.ndarray, x: np.ndarray, y: np.ndarray, *, target: int = TARGET,
                     trigger: dict[int, float] = TRIGGER) -> float:
    """Attack success rate: of the images whose label is not ``target``, the fraction the model
    ``vector`` classifies as ``target`` once the trigger is stamped on them."""
    victims = np.asarray(y) != target  # images the backdoor has to flip
    return float(np.mean(predict(vector, stamp_trigger(x[victims], trigger)) == target))
