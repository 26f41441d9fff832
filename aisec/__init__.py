"""Helpers shared by the AI security course's lessons and labs.

Importing this package has no side effects: no seeding, no file writes, no network.
Graded answers never live here; the package holds data, models, plots and feedback only.
"""

__version__ = "0.1.0"
