"""Lab 4 — the insider: audit logs, least privilege, poisoned models and malicious model files.

:mod:`aisec.lab04.insider` — the seeded audit log with its ground truth and alert scoring, the team's
    resources and duties, the pickle corpus and the corpus of real framework files (torch, scikit-learn,
    numpy, pandas) with harmless malicious look-alikes; the insider's view of the log, planned egress
    merged into it, and other teams' per-user baseline detectors (the defence Q15 attacks).
:mod:`aisec.lab04.checks` — the visible checks and the authored hints of the hidden ones.

The grader's scorers are in :mod:`aisec.grading.scorers.lab04`. No graded answer lives here.
"""
