"""Visible checks of Lab 7: the supply-chain half (q1–q5) and the served-model half (q6–q10)."""

from __future__ import annotations

from aisec.lab07.checks_served import CHECKS as _SERVED
from aisec.lab07.checks_served import HIDDEN_HINTS as _SERVED_HINTS
from aisec.lab07.checks_supply import CHECKS as _SUPPLY
from aisec.lab07.checks_supply import HIDDEN_HINTS as _SUPPLY_HINTS

CHECKS = {**_SUPPLY, **_SERVED}
HIDDEN_HINTS = {**_SUPPLY_HINTS, **_SERVED_HINTS}
