"""Rates and scores the grader computes itself, outside the student's process, from raw outputs.

A hidden test records raw outputs with ``record(key, value, score="<name>", at_least=...)``; the
judge calls ``SCORERS[name](reference_value, student_value)`` and applies the threshold to the
number *it* computed. One module per lab (plus ``common``); each defines ``SCORERS``. Modules
import their heavy dependencies inside the scorer, so importing the registry is cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

from aisec.grading.scorers.common import Malformed

MODULES = ("common", "lab00", "lab01", "lab02", "lab03", "lab04", "lab05", "lab06", "lab07_supply", "lab07_served")


def _registry() -> dict[str, Callable[[Any, Any], float]]:
    merged: dict[str, Callable[[Any, Any], float]] = {}
    for name in MODULES:
        try:
            module = import_module(f"aisec.grading.scorers.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"aisec.grading.scorers.{name}":
                raise
            continue  # a lab without scorers of its own
        for key, fn in module.SCORERS.items():
            if key in merged:
                raise RuntimeError(f"scorer {key!r} is defined twice (aisec.grading.scorers.{name})")
            merged[key] = fn
    return merged


SCORERS: dict[str, Callable[[Any, Any], float]] = _registry()

__all__ = ["SCORERS", "Malformed", "MODULES"]
