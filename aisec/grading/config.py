"""Configuration: the course's nbgrader configuration and the sandbox limits it sets.

Limits have one home: their defaults are the fields of :class:`aisec.grading.sandbox.Limits`;
``grader/nbgrader_config.py`` overrides them for the course (``GradingPipeline.limits``) and per
lab (``GradingPipeline.lab_limits``).
"""

from __future__ import annotations

import os
from pathlib import Path

from traitlets import Dict
from traitlets.config import Config, Configurable
from traitlets.config.loader import PyFileConfigLoader

from aisec.grading.common import course_root
from aisec.grading.sandbox import Limits


class GradingPipeline(Configurable):
    """Per-course and per-lab settings of the pipeline (set in grader/nbgrader_config.py)."""

    limits = Dict({}, help="Overrides of the sandbox limits for every lab (see aisec.grading.sandbox.Limits)").tag(config=True)
    lab_limits = Dict({}, help="{lab: {limit: value}}: per-lab overrides of the sandbox limits").tag(config=True)

    def limits_for(self, lab: str) -> Limits:
        return Limits().merged(self.limits).merged(self.lab_limits.get(lab))


def load_config(ws: Path | None = None, db_url: str | None = None) -> Config:
    """The course's nbgrader configuration, optionally pointed at another workspace/gradebook."""
    root = course_root()
    previous = {k: os.environ.get(k) for k in ("AISEC_WORKSPACE", "AISEC_GRADEBOOK_URL")}
    try:
        if ws is not None:
            os.environ["AISEC_WORKSPACE"] = str(ws)
        if db_url is not None:
            os.environ["AISEC_GRADEBOOK_URL"] = db_url
        cfg = PyFileConfigLoader("nbgrader_config.py", path=str(root / "grader")).load_config()
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return cfg


def workspace_of(cfg: Config) -> Path:
    """The workspace a loaded configuration points at (the parent of its submitted folder)."""
    return Path(cfg.CourseDirectory.submitted_directory).parent
