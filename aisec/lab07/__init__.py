"""Lab 7 — the AI supply chain and the served model.

The scenario and its yardsticks; no graded answer lives here (the lab writes the OSV matcher, the minimal
upgrade plan, the SBOM diff, the hash pins, the signed-model triage, the verifying TLS client, the extraction
attacks, the query monitor and the ownership test). Pure, seeded functions; heavy imports (torch, pip-audit,
cyclonedx, model-signing, cryptography) load inside them.

Part A — dependencies and artefacts (q1–q5)

:mod:`aisec.lab07.advisories` — the offline advisory snapshot (``osv/``: real PyPA OSV records of torch,
    transformers, onnx and mlflow, with ``osv/SOURCES.tsv``), dated feeds, seeded AI stacks and requirements
    files, and pip-audit's ``OsvService`` answering from the snapshot.
:mod:`aisec.lab07.sbom` — a tiny real environment, its CycloneDX SBOM from ``cyclonedx-py environment``, and a
    seeded requirements change with a planted typosquat.
:mod:`aisec.lab07.wheels` — byte-reproducible wheels, a tampered rebuild, and ``pip install --require-hashes``
    run offline against them.
:mod:`aisec.lab07.signing` — a checkpoint folder signed with OpenSSF model-signing (key-based), and the ways an
    attacker changes it afterwards.
:mod:`aisec.lab07.checks_supply` — the visible checks of q1–q5.

Part B — the served model (q6–q10)

:mod:`aisec.lab07.serving` — the prediction API (keys, budgets, per-key logs, output coarsening), its loopback
    HTTP/HTTPS server and an on-path proxy; every server stops by itself.
:mod:`aisec.lab07.tls` — the course CA made with ``cryptography``, server and client certificates, and the
    attacker's CA.
:mod:`aisec.lab07.extraction` — the victim, the attacker's pool, the fidelity yardstick and the query streams a
    monitor sees.
:mod:`aisec.lab07.watermark` — the owner's trigger set (Adi et al. 2018) and the suspect models.
:mod:`aisec.lab07.checks_served` — the visible checks of q6–q10.

``aisec.lab07.checks`` merges the two checks modules for ``check("lab07.qN", ...)``; the grader's scorers are in
``aisec.grading.scorers.lab07_supply`` and ``lab07_served``.
"""
