"""Lab 3 — adversarial examples on images and text.

:mod:`aisec.lab03.adversarial` — the seeded spam corpus, its locally trained WordPiece tokenizer and tiny
    BERT-shaped filter, the homoglyph table, distance helpers and the ε explorer widget.
:mod:`aisec.lab03.checks` — the visible checks and the authored hints of the hidden ones.

The digits classifier is a shared piece (:mod:`aisec.models`); the grader's scorers are in
:mod:`aisec.grading.scorers.lab03`. No graded answer lives here.
"""
