"""The course's grading pipeline, built on nbgrader (instructor side)."""
