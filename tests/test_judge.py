"""Unit tests of the grader's trusted steps, without a sandbox or a notebook run: the comparison
rules, the verdict of a test cell, the feedback written from it, the released test sources shown in
feedback, and the time limits derived from the reference run."""

from __future__ import annotations

import json

import nbformat
import pytest

from aisec.check import RECORD_MIME, VISIBLE_MIME
from aisec.grading.feedback import AuthorFeedback, ReleasedTestSources, verdict_outputs
from aisec.grading.judge import compare, hidden_hints, judge_cell, run_notes
from aisec.grading.reference import Reference, cell_key, time_limits
from aisec.grading.sandbox import Limits
from aisec.grading.stage import _well_formed
from aisec.grading.verdicts import CellVerdict, CheckVerdict


def rule(**kw: object) -> dict:
    base = {"atol": 0.0, "rtol": 0.0, "at_least": None, "at_most": None, "unordered": False, "score": None}
    return {**base, **kw}


def ref(value: object, **kw: object) -> dict:
    return {"key": "q.k", "value": value, "rule": rule(**kw)}


def stu(value: object) -> dict:
    return {"key": "q.k", "value": value}


# ----------------------------------------------------------------------------- compare


@pytest.mark.parametrize("expected, value, reason", [
    (1, True, "should be an int"),
    (True, 1, "should be a bool"),
    (1.0, "1.0", "should be a number"),
    ([1, 2, 3], [1, 2], "has the wrong length"),
    ([1, 2, 3], [1, 2, 4], "an item is not within the tolerance of the expected value"),
    ({"a": 1}, {"b": 1}, "should be a dict with keys ['a']"),
    ({"a": [1, 2]}, {"a": [1, 9]}, "['a'], an item, is not within the tolerance of the expected value"),
    ("x", "y", "differs from the expected value"),
])
def test_compare_gives_fixed_reasons(expected: object, value: object, reason: str) -> None:
    assert compare(ref(expected), stu(value)) == reason


def test_a_reason_never_echoes_what_the_student_chose() -> None:
    """Lengths, indices and values of the student's record are channels out of the kernel."""
    for value in ([0] * 77, [1, 2, 3, 4321], {"secret": 5}, "leaked text 1234"):
        reason = compare(ref([1, 2, 3]), stu(value)) or ""
        assert not any(token in reason for token in ("77", "4321", "3]", "secret", "leaked", "1234")), reason
    assert compare(ref(1), {"key": "q.k", "invalid": "class SecretName cannot be graded"}) == "the value could not be graded"


def test_tolerance_and_unordered_rules() -> None:
    assert compare(ref(1.0, atol=0.1), stu(1.05)) is None
    assert compare(ref(1.0, rtol=0.01), stu(1.02)) is not None
    assert compare(ref([3, 1, 2], unordered=True), stu([1, 2, 3])) is None
    assert compare(ref(1.0, atol=1.0), stu(float("nan"))) is not None


def test_a_threshold_needs_a_scorer_and_is_applied_to_the_graders_number() -> None:
    assert "authoring error" in compare(ref(0.9, at_least=0.5), stu(0.99))
    reference = ref({"labels": [1, 0, 1, 1]}, score="accuracy", at_least=0.75)
    assert compare(reference, stu({"predictions": [1, 0, 1, 1]})) is None
    assert compare(reference, stu({"predictions": [1, 1, 0, 1]})) == \
        "(its accuracy, measured by the grader) is below the required threshold"
    assert compare(reference, stu(1.0)) == "should be a dict with a list 'predictions'"
    assert "unknown scorer" in compare(ref(1, score="nope", at_least=1), stu(1))


# -------------------------------------------------------------------------- judge_cell


def graded_cell(outputs: list, source: str = "check('lab00.q1', luhn_valid)\n") -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source, metadata={"nbgrader": {"grade": True, "grade_id": "q1_test", "points": 2}})
    cell.outputs = outputs
    return cell


def record_output(key: str, value: object) -> dict:
    return nbformat.v4.new_output("display_data", data={RECORD_MIME: {"key": key, "value": value}, "text/plain": ""})


def visible_output(question: str, status: list[str]) -> dict:
    return nbformat.v4.new_output("display_data", data={VISIBLE_MIME: {"question": question, "status": status}})


def catalogue(question: str = "lab00.q1") -> list[str]:
    from aisec.check import _load_checks

    return [c.description for c in _load_checks(question)]


def test_a_passing_cell_lists_every_check_passed() -> None:
    n = len(catalogue())
    verdict = judge_cell(graded_cell([visible_output("lab00.q1", ["passed"] * n), record_output("q1_test.v", 3)]),
                         {"q1_test.v": ref(3)})
    assert verdict.passed
    assert verdict.lines() == [f"✔ visible check: {d}" for d in catalogue()] + ["✔ hidden check: q1_test.v"]


def test_visible_failures_are_named_from_the_catalogue_not_from_printed_text() -> None:
    n = len(catalogue())
    printed = nbformat.v4.new_output("stream", name="stdout", text="✘ EXFIL-4f2a hint: leaked\n")
    error = nbformat.v4.new_output("error", ename="CheckFailed", evalue="EXFIL", traceback=["EXFIL"])
    verdict = judge_cell(graded_cell([printed, visible_output("lab00.q1", ["failed"] + ["passed"] * (n - 1)), error]),
                         {"q1_test.v": ref(3)})
    text = "\n".join(verdict.lines())
    assert not verdict.passed and "EXFIL" not in text
    assert f"✘ visible check: {catalogue()[0]}: failed: run this cell in your notebook to see the hint" in text
    assert "✘ hidden check: q1_test.v: not reached: the cell stopped before this check" in text


def test_a_forged_visible_report_of_the_wrong_shape_is_ignored() -> None:
    verdict = judge_cell(graded_cell([visible_output("lab00.q1", ["passed", "EXFIL"]), record_output("q1_test.v", 3)]),
                         {"q1_test.v": ref(3)})
    assert not verdict.passed
    assert any("not reported" in line for line in verdict.lines())


def test_exceptions_show_builtin_names_only() -> None:
    mine = nbformat.v4.new_output("error", ename="EXFIL_c2VjcmV0", evalue="EXFIL secret", traceback=["EXFIL"])
    builtin = nbformat.v4.new_output("error", ename="KeyError", evalue="'secret key'", traceback=[])
    verdict = judge_cell(graded_cell([mine, builtin], source="x = 1\n"), {"q1_test.v": ref(3)})
    text = "\n".join(verdict.lines())
    assert "raised KeyError" in text and "an exception of the student's own type" in text
    assert "EXFIL" not in text and "secret" not in text


def test_duplicates_missing_records_and_cells_without_records_fail() -> None:
    doubled = judge_cell(graded_cell([record_output("q1_test.v", 3), record_output("q1_test.v", 3)], "x\n"),
                         {"q1_test.v": ref(3)})
    assert "✘ hidden check: q1_test.v: was recorded more than once" in doubled.lines()
    missing = judge_cell(graded_cell([], "x\n"), {"q1_test.v": ref(3)})
    assert missing.lines() == ["✘ hidden check: q1_test.v: no value was recorded"]
    unjudgeable = judge_cell(graded_cell([], "x\n"), {})
    assert not unjudgeable.passed


def test_a_failed_hidden_record_shows_its_authored_hint_and_never_a_value() -> None:
    hints = {"q1_test.v": "the verdicts on other card numbers, non-ASCII digits included"}
    reference = {"q1_test.v": ref([["a", "b"], ["c", "SECRET"]])}
    failed = judge_cell(graded_cell([record_output("q1_test.v", [["a", "b"], ["c", "EXFIL"]])], "x\n"), reference, hints=hints)
    (line,) = failed.lines()
    assert line == ("✘ hidden check: q1_test.v (tests: the verdicts on other card numbers, non-ASCII digits included): "
                    "an item, an item, differs from the expected value")
    assert "EXFIL" not in line and "SECRET" not in line
    not_reached = judge_cell(graded_cell([nbformat.v4.new_output("error", ename="CheckFailed", evalue="", traceback=[])],
                                         "x\n"), reference, hints=hints)
    assert "(tests: the verdicts on other card numbers" in "\n".join(not_reached.lines())
    passed = judge_cell(graded_cell([record_output("q1_test.v", [["a", "b"], ["c", "SECRET"]])], "x\n"), reference,
                        hints=hints)
    assert passed.lines() == ["✔ hidden check: q1_test.v"], "a passed record needs no hint"
    assert CellVerdict.from_json(json.loads(json.dumps(failed.to_json()))) == failed
    (out,) = verdict_outputs(failed)
    assert out.traceback == ["ChecksFailed: 1 check failed", line]


def test_hidden_hints_come_from_the_labs_checks_module() -> None:
    from aisec.lab06 import checks as lab06

    assert hidden_hints("lab06_federated") == lab06.HIDDEN_HINTS == hidden_hints("lab06")
    assert hidden_hints("lab99_missing") == {} and hidden_hints("../etc") == {}


def test_run_notes_name_the_stopped_cell_and_the_ones_after() -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("a"), nbformat.v4.new_markdown_cell("m"),
                                         nbformat.v4.new_code_cell("b"), nbformat.v4.new_code_cell("c")])
    notes = run_notes({"status": "timeout", "executed": [0, 2]}, nb)
    assert notes == {2: "the grader stopped the notebook in this cell (a cell ran past its time limit)",
                     3: "not run: the grader stopped the notebook at an earlier cell (a cell ran past its time limit)"}
    assert run_notes({"status": "ok", "executed": [0, 2, 3]}, nb) == {}


# ----------------------------------------------------------------------------- feedback


def test_verdict_outputs_make_nbgrader_score_by_the_verdict() -> None:
    passed = CellVerdict("q", [CheckVerdict("hidden", "q.a", True)])
    failed = CellVerdict("q", [CheckVerdict("hidden", "q.a", True), CheckVerdict("hidden", "q.b", False, "differs")])
    (out,) = verdict_outputs(passed)
    assert out.output_type == "stream" and out.text == "✔ hidden check: q.a\n"
    (out,) = verdict_outputs(failed)
    assert out.output_type == "error" and out.traceback[1] == "✘ hidden check: q.b: differs"
    assert not CellVerdict("q").passed, "a cell with no check at all does not pass"
    assert CellVerdict.from_json(json.loads(json.dumps(failed.to_json()))) == failed


def test_author_feedback_leaves_only_verdicts(tmp_path) -> None:
    student_cell = nbformat.v4.new_code_cell("print(1)")
    student_cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="EXFIL\n")]
    test = graded_cell([nbformat.v4.new_output("stream", name="stdout", text="EXFIL\n")], "x\n")
    nb = nbformat.v4.new_notebook(cells=[student_cell, test])
    verdict = CellVerdict("q1_test", [CheckVerdict("hidden", "q1_test.v", True)])
    resources = {"nbgrader": {"student": "s", "assignment": "lab", "notebook": "nb"},
                 "aisec": {"verdicts": {"q1_test": verdict.to_json()}}}
    nb, _ = AuthorFeedback(verdicts_dir=str(tmp_path)).preprocess(nb, resources)
    assert nb.cells[0].outputs == [] and "EXFIL" not in json.dumps(nb.cells[1].outputs)
    assert json.loads((tmp_path / "s" / "lab" / "nb.json").read_text()) == {"q1_test": verdict.to_json()}


def test_feedback_sources_never_fail_on_a_students_marker_text(tmp_path) -> None:
    released = nbformat.v4.new_notebook(cells=[graded_cell([], "assert True  # the released test\n")])
    (tmp_path / "lab").mkdir()
    nbformat.write(released, tmp_path / "lab" / "nb.ipynb")
    graded = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("# ### BEGIN HIDDEN TESTS in a student's comment\nx = 1"),
        nbformat.v4.new_markdown_cell("### END HIDDEN TESTS\n### BEGIN HIDDEN TESTS"),
        graded_cell([], "assert True\n### BEGIN HIDDEN TESTS\nsecret_hidden_line()\n### END HIDDEN TESTS\n"),
    ])
    nb, _ = ReleasedTestSources(release_root=str(tmp_path)).preprocess(
        graded, {"nbgrader": {"assignment": "lab", "notebook": "nb"}})
    assert nb.cells[2].source == "assert True  # the released test\n"
    assert "BEGIN HIDDEN TESTS" in nb.cells[0].source, "the student's own text is left alone"


# ------------------------------------------------------------------------- time limits


def test_time_limits_follow_the_reference_run() -> None:
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("setup", metadata={"nbgrader": {"grade_id": "setup"}}),
        nbformat.v4.new_markdown_cell("text"),
        nbformat.v4.new_code_cell("slow", metadata={"nbgrader": {"grade_id": "train"}}),
        nbformat.v4.new_code_cell("a student's own cell"),
    ])
    reference = Reference({}, {"grade:setup": 2.0, "grade:train": 40.0}, 50.0)
    limits = Limits(cell_timeout=100, wall_seconds=900, time_factor=3, time_slack=10)
    per_cell, wall = time_limits(reference, nb, limits)
    assert per_cell == {0: 16, 2: 100, 3: 100}, "3 × reference + 10 s, capped; an added cell gets the slowest's"
    assert wall == 3 * 50 + 60
    assert cell_key(nb.cells[3], 3).startswith("id:")


@pytest.mark.parametrize("meta, ok", [
    ({"grade": True, "grade_id": "q1", "points": 2}, True),
    ("not a dict", False),
    ({"grade_id": 7}, False),
    ({"grade": "yes"}, False),
    ({"points": "many"}, False),
])
def test_staging_knows_malformed_nbgrader_metadata(meta: object, ok: bool) -> None:
    assert _well_formed(meta) is ok


def test_scorers_get_plain_data_when_records_are_read_back_from_a_notebook() -> None:
    """Records read from an executed notebook are nbformat nodes (dict subclasses); the judge hands scorers plain
    dicts, so a scorer's strict ``type(x) is dict`` checks accept the reference's own value."""
    import nbformat

    from aisec.lab07 import advisories

    plan = {"torch": "1.13.1", "transformers": "4.36.0", "onnx": "1.13.0", "mlflow": "2.9.2"}
    rec = nbformat.from_dict({"key": "q2_upgrade_test.plan_matches_pip_audit",
                              "value": {"pins": advisories.stack_pins(1), "as_of": "2024-01-01", "plan": plan},
                              "rule": {"atol": 0.0, "rtol": 0.0, "at_least": 1.0, "at_most": None, "unordered": False,
                                       "score": "lab07.plan_matches_pip_audit"}})
    assert type(rec["value"]) is not dict
    assert compare(rec, rec) is None
