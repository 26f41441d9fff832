"""Lab 7 — the AI supply chain and the served model.

The scenario and its yardsticks; no graded answer lives here. (The module list is completed when the lab is.)
"""
