"""Lab 0 — data minimisation: find, redact and generalise personal data before it reaches a model.

The lab's data are the course's seeded customer tables and support messages (:mod:`aisec.data`, shared
with later labs), so this folder holds only the visible checks:

:mod:`aisec.lab00.checks` — the visible checks of q1–q10 (Luhn, finders, redaction, k-anonymity with
    l-diversity, linkage, disguised secrets) and the authored hints of the hidden ones.

The grader's scorers are in :mod:`aisec.grading.scorers.lab00`. No graded answer lives here.
"""
