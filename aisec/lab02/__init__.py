"""Lab 2 — model inversion and attribute inference (Fredrikson et al. 2014, 2015).

:mod:`aisec.lab02.inversion` — the prediction API (confidences, rounding, noise, top-1 label, query budget),
    the seeded clinic table with its sensitive genotype column, and the models attacked and measured with.
:mod:`aisec.lab02.checks` — the visible checks and the authored hints of the hidden ones.

The digits and the classifiers are shared pieces (:mod:`aisec.data`, :mod:`aisec.models`); the grader's
scorers are in :mod:`aisec.grading.scorers.lab02`. No graded answer lives here.
"""
