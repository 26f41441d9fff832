"""Poisoned clients: a backdoor trigger, backdoored and label-flipped local data, and how to
measure a federated model's backdoor.

The backdoor is BadNets-style (Gu et al. 2017), as in lab 4: a 2x2 white square in the bottom-right
corner of the 8x8 digit (:data:`TRIGGER`) makes the model answer :data:`TARGET`. A malicious client
trains on its own data plus triggered, relabelled copies (:func:`backdoor_data`, then
:func:`train_backdoored`); what it *sends* is the attack (model replacement, Bagdasaryan et al.
2020, or an update tuned to a defence), which the lab writes.
"""

from __future__ import annotations

import numpy as np

from aisec.lab06.fedavg import local_train, predict

#: Flattened pixel indices of the trigger (a 2x2 square in the bottom-right corner).
TRIGGER: tuple[int, ...] = (54, 55, 62, 63)
#: The label the backdoor forces.
TARGET = 0


def stamp_trigger(x: np.ndarray, trigger: tuple[int, ...] = TRIGGER) -> np.ndarray:
    """A float32 copy of the images ``x`` (n, 64) with the trigger pixels set to 1.0."""
    out = np.array(x, dtype=np.float32, copy=True)
    out[:, list(trigger)] = 1.0
    return out


def backdoor_data(x: np.ndarray, y: np.ndarray, *, target: int = TARGET, copies: int = 1,
                  trigger: tuple[int, ...] = TRIGGER) -> tuple[np.ndarray, np.ndarray]:
    """The malicious client's training set: its clean data plus ``copies`` triggered copies of
    every image whose label is not ``target``, relabelled ``target`` (so the model keeps its
    clean accuracy and learns the trigger)."""
    keep = np.asarray(y) != target
    xs = [np.asarray(x, np.float32)] + [stamp_trigger(x[keep], trigger)] * copies
    ys = [np.asarray(y, np.int64)] + [np.full(int(keep.sum()), target, dtype=np.int64)] * copies
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
                     trigger: tuple[int, ...] = TRIGGER) -> float:
    """Attack success rate: of the images whose label is not ``target``, the fraction the model
    ``vector`` classifies as ``target`` once the trigger is stamped on them."""
    keep = np.asarray(y) != target
    return float(np.mean(predict(vector, stamp_trigger(x[keep], trigger)) == target))
