"""The pipeline calibrated on a real lab (lab 0): honest work with warnings gets full marks, a
faked-equality answer loses exactly its question, a bug in an earlier question costs points there
only (later questions are graded on stand-ins and reference answers), and the feedback names the
property a failed hidden record tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest_grader import require_sandbox
from redteam.builders import insert_after, solved, submit, with_answer

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
LAB = "lab00_minimisation"
NB = f"{LAB}.ipynb"

WARNING_K = (
    "import warnings\n\n\n"
    "def anonymity(df, quasi_identifiers, sensitive):\n"
    "    warnings.warn('pandas-style FutureWarning: groupby default will change', FutureWarning)\n"
    "    groups = df.groupby(list(quasi_identifiers), dropna=False)[sensitive]\n"
    "    return int(groups.size().min()), int(groups.nunique(dropna=False).min())\n"
)
FAKE_K = (
    "class FakeInt(int):\n"
    "    def __eq__(self, other):\n        return True\n"
    "    __hash__ = int.__hash__\n\n\n"
    "def anonymity(df, quasi_identifiers, sensitive):\n"
    "    return FakeInt(1), FakeInt(1)\n"
)
#: Q3 with a bug (emails stay in the text): minimise (Q8) calls redact, yet only Q3 may lose points.
LEAKY_REDACT = (
    "def redact(text: str) -> str:\n"
    "    numbers = {}\n"
    "    for kind, match in find_secrets(text):\n"
    "        if kind != 'email':\n"
    "            numbers.setdefault((kind, match), f'[{kind.upper()}_{sum(k == kind for k, _ in numbers) + 1}]')\n"
    "    for (kind, match), placeholder in numbers.items():\n"
    "        text = text.replace(match, placeholder)\n"
    "    return text\n"
)


def test_lab00_honest_with_warnings_full_marks_and_fake_int_loses_its_question(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_sandbox()
    monkeypatch.setenv("AISEC_COURSE_ROOT", str(ROOT))
    monkeypatch.setenv("AISEC_WORKSPACE", str(tmp_path / "ws"))
    from aisec.grading.pipeline import Grader

    honest = solved(ROOT, LAB)
    submit(tmp_path / "ws" / "submitted", "honest_warnings", LAB, {NB: with_answer(honest, "q6_anonymity", WARNING_K)})
    submit(tmp_path / "ws" / "submitted", "fake_int", LAB, {NB: with_answer(honest, "q6_anonymity", FAKE_K)})
    submit(tmp_path / "ws" / "submitted", "leaky_redact", LAB, {NB: with_answer(honest, "q3_redact", LEAKY_REDACT)})
    submit(tmp_path / "ws" / "submitted", "env_probe", LAB, {NB: insert_after(
        honest, "setup", "import os\nprint('PROBE', os.path.exists(%r), 'NBGRADER_EXECUTION' in os.environ)\n" % str(ROOT / "solutions"))})
    summary = Grader(LAB, ws=tmp_path / "ws").grade_class(workers=2, progress=False)
    outcomes = {o.student: o for o in summary.outcomes}
    assert not summary.failed, summary.render()
    assert (outcomes["honest_warnings"].score, outcomes["honest_warnings"].max_score) == (25.0, 25.0)
    assert outcomes["env_probe"].score == 25.0
    fake = outcomes["fake_int"]
    assert fake.score == 24.0
    failed = [q for q in fake.questions if not q["passed"]]
    assert [q["grade_id"] for q in failed] == ["q6_anonymity_test"]
    # The visible check already refuses an int subclass (its hint says so); the hidden record
    # would refuse it too, outside the kernel.
    lines = failed[0]["feedback"]
    assert any("q6_anonymity_test.k_l" in line for line in lines), lines
    assert any(line.startswith("✘ visible check: ") for line in lines), lines
    leaky = outcomes["leaky_redact"]
    assert leaky.score == 23.0, "Q3's 2 points only: Q8 is graded with stand-ins and the reference redact"
    failed = [q for q in leaky.questions if not q["passed"]]
    assert [q["grade_id"] for q in failed] == ["q3_redact_test"]
    from aisec.lab00.checks import HIDDEN_HINTS

    hint = HIDDEN_HINTS["q3_redact_test.redacted"]
    assert any(line.startswith(f"✘ hidden check: q3_redact_test.redacted (tests: {hint}): ") for line in failed[0]["feedback"])
    # What the probe printed is in the instructor's run checkpoint (feedback shows only verdicts).
    run = (tmp_path / "ws" / "grading" / LAB / "runs" / LAB / "env_probe" / NB).with_suffix(".json").read_text()
    assert "PROBE False False" in run
