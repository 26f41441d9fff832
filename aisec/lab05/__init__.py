"""Lab 5 — LLM applications and agents, on a real instruction-tuned model (SmolLM2-135M-Instruct).

One module per part of the lab; the model itself lives in :mod:`aisec.llm` (shared):

* :mod:`aisec.lab05.tasks` — the benign task set that measures utility (extract, classify, summarise);
* :mod:`aisec.lab05.secrets` — system prompts holding a secret, the attack families, leak measurement;
* :mod:`aisec.lab05.mail` — an e-mail assistant and agent with tools, injected e-mails, provenance labels;
* :mod:`aisec.lab05.rag` — a retrieval corpus with provenance, TF-IDF retrieval, poisoned documents.

Visible checks are in :mod:`aisec.lab05.checks`. No graded answer lives here.
"""
