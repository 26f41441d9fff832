"""MITRE ATLAS names as ATLAS 5.6.0 spells them.

The 2025 releases renamed techniques and mitigations from "ML …" to "AI …" (``AML.T0015`` Evade ML Model became
Evade AI Model) and retitled a few outright (``AML.T0018`` Backdoor ML Model became Manipulate AI Model, with
Poison AI Model as ``.000``; ``AML.T0053`` LLM Plugin Compromise became AI Agent Tool Invocation). A course that
names its edition must not mix in the old names.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TSV = ROOT / "tests" / "data" / "atlas-5.6.0.tsv"
# Retitled outright (not a plain "ML" -> "AI" rename): the name before 2025, and its 5.6.0 id.
RETITLED = {"Backdoor ML Model": "AML.T0018", "LLM Plugin Compromise": "AML.T0053"}


def atlas_names() -> dict[str, str]:
    rows = (line.split("\t") for line in TSV.read_text().splitlines() if line.startswith("AML."))
    return {atlas_id: name for atlas_id, name in rows}


def retired_names() -> dict[str, str]:
    """The pre-2025 spelling of every 5.6.0 name with "AI" as a word, plus the retitled ones."""
    retired = {re.sub(r"\bAI\b", "ML", name): atlas_id for atlas_id, name in atlas_names().items()
               if re.search(r"\bAI\b", name)}
    retired.update(RETITLED)
    return retired


def course_texts() -> list[Path]:
    paths = [*sorted((ROOT / "course").glob("*.ipynb")), *sorted((ROOT / "solutions").glob("*/*.ipynb")),
             ROOT / "course" / "syllabus.md", ROOT / "README.md"]
    return [p for p in paths if p.exists()]


def test_the_retired_name_list_knows_the_renames() -> None:
    retired = retired_names()
    assert retired["Evade ML Model"] == "AML.T0015"
    assert retired["Exfiltration via ML Inference API"] == "AML.T0024"
    assert "Craft Adversarial Data" not in retired  # unchanged names are not retired


def test_no_course_text_uses_a_pre_2025_atlas_name() -> None:
    patterns = {name: re.compile(r"\b" + re.escape(name) + r"\b") for name in retired_names()}  # names are Title Case
    found = sorted(f"{path.relative_to(ROOT)}: {name!r} (5.6.0: {atlas_names()[atlas_id]!r})"
                   for path in course_texts() for name, atlas_id in retired_names().items()
                   if patterns[name].search(path.read_text()))
    assert not found, "pre-2025 ATLAS names in a course that cites ATLAS 5.6.0:\n" + "\n".join(found)


def test_every_course_text_that_cites_atlas_names_its_release() -> None:
    cites = re.compile(r"\bAML\.(?:TA|T|M)\d{4}\b")
    unnamed = [str(p.relative_to(ROOT)) for p in course_texts() if cites.search(p.read_text()) and "5.6.0" not in p.read_text()]
    assert not unnamed, f"these cite ATLAS ids without naming the release (5.6.0): {unnamed}"
