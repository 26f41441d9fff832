"""Lab 1 — what models leak: memorised secrets, membership, and an assistant that exfiltrates a chat.

:mod:`aisec.lab01.leakage` — a character-level GPT-2 built from a ``transformers`` config and trained on a
    seeded ticket log with planted canaries (Carlini et al. 2019), its scoring functions, and the overfit
    clinic classifier that membership inference attacks.
:mod:`aisec.lab01.assistant` — a local retrieval-augmented assistant app with a deterministic stand-in
    model, markdown rendering and the browser's automatic fetches; seeded injection variants, rephrased
    injections, benign pages, and the detectors of other teams (of the kind the lab builds) that the adaptive
    attack meets.
:mod:`aisec.lab01.checks` — the visible checks and the authored hints of the hidden ones.

The grader's scorers are in :mod:`aisec.grading.scorers.lab01`. No graded answer lives here.
"""
