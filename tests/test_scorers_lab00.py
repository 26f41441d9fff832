"""Unit tests of lab 00's scorers (aisec.grading.scorers.lab00): no notebook, no sandbox."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from aisec.data import people
from aisec.grading.judge import compare
from aisec.grading.scorers import SCORERS, Malformed

def rule(score: str, at_least: float | None = None, at_most: float | None = None) -> dict:
    return {"atol": 0.0, "rtol": 0.0, "at_least": at_least, "at_most": at_most, "unordered": False, "score": score}


def secrets_value(found: list) -> dict:
    return {"secrets": [["email", "a.b@x.com"], ["card_number", "4539 1488 0343 6467"]],
            "decoys": ["1234567812345678"], "found": found}


def test_secret_recall_and_decoys_use_the_reference_truth() -> None:
    ref = secrets_value([])
    good = {"found": [["email", "a.b@x.com"], ["card_number", "4539 1488 0343 6467"]]}
    assert SCORERS["lab00.secret_recall"](ref, good) == 1.0
    assert SCORERS["lab00.decoys_flagged"](ref, good) == 0.0
    half = {"found": [["email", "a.b@x.com"], ["card_number", "1234567812345678"]]}
    assert SCORERS["lab00.secret_recall"](ref, half) == 0.5
    assert SCORERS["lab00.decoys_flagged"](ref, half) == 1.0
    # The student's own truth fields are ignored: claiming no secrets does not help.
    forged = {"secrets": [], "decoys": [], "found": []}
    assert SCORERS["lab00.secret_recall"](ref, forged) == 0.0
    assert compare({"rule": rule("lab00.secret_recall", at_least=1.0), "value": ref}, {"value": forged}) is not None
    assert compare({"rule": rule("lab00.secret_recall", at_least=1.0), "value": ref}, {"value": good}) is None


def test_secret_recall_rejects_malformed_findings() -> None:
    ref = secrets_value([])
    for bad in ([["email", "a.b@x.com"]], {"found": [("email", 3)]}, {"found": [["email"]]}, {"found": "a.b@x.com"},
                {"found": [["email", "x" * 10_000]]}):
        with pytest.raises(Malformed):
            SCORERS["lab00.secret_recall"](ref, bad)


N, SEED = 40, 3


@pytest.fixture(scope="module")
def inputs() -> pd.DataFrame:
    return people(n=N, seed=SEED)


def generalised(table: pd.DataFrame, width: int = 20, zip_digits: int = 0) -> list[list]:
    """The rows [age band, gender, zip, customer_id] of ``table``, generalised."""
    low = table["age"] // width * width
    ages = [f"{a}-{a + width - 1}" for a in low]
    zips = [z[:zip_digits] + "*" * (5 - zip_digits) for z in table["zip_code"]]
    return [list(r) for r in zip(ages, table["gender"], zips, table["customer_id"])]


def k_value(rows: object) -> dict:
    return {"n": N, "seed": SEED, "rows": rows}


def test_k_of_generalised_rows(inputs: pd.DataFrame) -> None:
    rows = generalised(inputs)
    counts = Counter((r[0], r[1], r[2]) for r in rows)
    assert SCORERS["lab00.k_anonymity"](k_value([]), {"rows": rows}) == min(counts.values())
    kept = [r for r in rows if counts[(r[0], r[1], r[2])] >= 3]
    assert SCORERS["lab00.k_anonymity"](k_value([]), {"rows": kept}) >= 3
    assert compare({"rule": rule("lab00.k_anonymity", at_least=3), "value": k_value(kept)}, {"value": k_value(kept)}) is None
    assert SCORERS["lab00.k_anonymity"](k_value([]), {"rows": []}) == 0.0
    exact = [[int(a), g, z, c] for a, g, z, c in inputs[["age", "gender", "zip_code", "customer_id"]].values.tolist()]
    assert SCORERS["lab00.k_anonymity"](k_value([]), {"rows": exact}) >= 1.0  # ungeneralised rows are inputs too


def test_k_refuses_rows_that_are_not_generalised_inputs(inputs: pd.DataFrame) -> None:
    rows = generalised(inputs)
    first = rows[0]
    other_gender = "F" if first[1] == "M" else "M"
    wrong_band = f"{int(first[0].split('-')[1]) + 1}-{int(first[0].split('-')[1]) + 20}"
    bad_rows = [
        [["*", first[1], "*****", "C9"]] * 5,  # invented ids
        [[wrong_band] + first[1:]],  # the band does not contain the age
        [[first[0], other_gender] + first[2:]],  # another gender
        [[first[0], first[1], "9" + first[2][1:], first[3]]],  # another zip code
        [rows[1], rows[0]],  # out of order
        [rows[0], rows[0]],  # a row used twice
        [first[:3]],  # a column missing
        [[float(inputs["age"].iloc[0])] + first[1:]],  # a float age
        "rows",
    ]
    for bad in bad_rows:
        with pytest.raises(Malformed):
            SCORERS["lab00.k_anonymity"](k_value([]), {"rows": bad})
    with pytest.raises(Malformed):  # the student's own n and seed are ignored
        SCORERS["lab00.k_anonymity"](k_value([]), {"n": 20, "seed": 99, "rows": generalised(people(n=20, seed=99))})


def table_value(inputs: pd.DataFrame, notes: list[str] | None = None, drop: int = 0) -> dict:
    rows = generalised(inputs, zip_digits=3)
    cells = [[f"p_{i}", r[0], r[1], r[2], notes[i] if notes else "ok"] for i, r in enumerate(rows)][drop:]
    return {"n": N, "seed": SEED, "columns": ["customer_id", "age", "gender", "zip_code", "notes"], "rows": cells}


def test_table_scorers_measure_leaks_k_and_kept(inputs: pd.DataFrame) -> None:
    ref = table_value(inputs)
    clean = table_value(inputs, drop=4)
    assert SCORERS["lab00.table_leaks"](ref, clean) == 0.0
    assert SCORERS["lab00.table_kept"](ref, clean) == pytest.approx((N - 4) / N)
    rows = generalised(inputs, zip_digits=3)[4:]
    assert SCORERS["lab00.table_k"](ref, clean) == min(Counter((r[0], r[1], r[2]) for r in rows).values())
    notes = ["ok"] * N
    notes[10] = f"call {inputs['phone'].iloc[10]} or mail {inputs['email'].iloc[3]}"
    leaky = table_value(inputs, notes)
    assert SCORERS["lab00.table_leaks"](ref, leaky) == 2.0
    assert compare({"rule": rule("lab00.table_leaks", at_most=0), "value": ref}, {"value": leaky}) is not None
    assert compare({"rule": rule("lab00.table_leaks", at_most=0), "value": ref}, {"value": clean}) is None
    # The student's n and seed are ignored: the kept fraction is of the reference's input.
    assert SCORERS["lab00.table_kept"](ref, dict(clean, n=N - 4)) == pytest.approx((N - 4) / N)


def test_table_scorers_refuse_invented_or_malformed_tables(inputs: pd.DataFrame) -> None:
    ref = table_value(inputs)
    good = table_value(inputs)
    invented = dict(good, rows=[["p", "*", "F", "*****", ""]] * (N + 1))
    short = dict(good, rows=[r[:4] for r in good["rows"]])
    non_str = dict(good, rows=[r[:4] + [3] for r in good["rows"]])
    renamed = dict(good, columns=["customer_id", "age", "gender", "zip", "notes"])
    for bad in (invented, short, non_str, renamed, {"columns": ["age"], "rows": "x"}, "table"):
        for name in ("lab00.table_leaks", "lab00.table_k", "lab00.table_kept"):
            with pytest.raises(Malformed):
                SCORERS[name](ref, bad)


def test_a_reference_without_truth_is_an_authoring_error(inputs: pd.DataFrame) -> None:
    with pytest.raises(Malformed, match="authoring error"):
        SCORERS["lab00.table_k"]({"rows": []}, table_value(inputs))
    with pytest.raises(Malformed, match="authoring error"):
        SCORERS["lab00.k_anonymity"]({"n": True, "seed": 1, "rows": []}, {"rows": []})
    with pytest.raises(Malformed, match="authoring error"):
        SCORERS["lab00.secret_recall"]({"found": []}, {"found": []})


def test_records_read_back_from_a_notebook_are_scored(inputs: pd.DataFrame) -> None:
    """The grader reads records out of executed notebooks: dicts arrive as nbformat's NotebookNode."""
    from nbformat import from_dict

    ref = from_dict(table_value(inputs))
    assert SCORERS["lab00.table_kept"](ref, from_dict(table_value(inputs, drop=4))) == pytest.approx((N - 4) / N)
    found = from_dict(secrets_value([["email", "a.b@x.com"]]))
    assert SCORERS["lab00.secret_recall"](found, found) == 0.5
    assert SCORERS["lab00.k_anonymity"](from_dict(k_value([])), from_dict(k_value(generalised(inputs)))) >= 1.0


def links_value(links: object) -> dict:
    truth = [["p_1", "Ann Lee"], ["p_2", "Bo Chan"], ["p_3", "Cy Diaz"], ["p_4", "Di Roe"], ["p_5", "Ed Fox"]]
    return {"truth": truth, "leaked": 4, "links": links}


def test_linkage_scorers_count_right_and_wrong_links_against_the_reference_truth() -> None:
    ref = links_value([])
    good = {"links": [["p_1", "Ann Lee"], ["p_3", "Cy Diaz"], ["p_4", "Di Roe"]]}
    assert SCORERS["lab00.linked"](ref, good) == 0.75  # of the 4 leaked customers
    assert SCORERS["lab00.links_wrong"](ref, good) == 0.0
    mixed = {"links": [["p_1", "Ann Lee"], ["p_2", "Cy Diaz"], ["p_9", "Di Roe"]]}
    assert SCORERS["lab00.linked"](ref, mixed) == 0.25
    assert SCORERS["lab00.links_wrong"](ref, mixed) == 2.0
    assert SCORERS["lab00.linked"](ref, {"links": []}) == 0.0
    assert compare({"rule": rule("lab00.links_wrong", at_most=0), "value": ref}, {"value": mixed}) is not None
    assert compare({"rule": rule("lab00.linked", at_least=0.5), "value": ref}, {"value": good}) is None
    # The student's own truth and leaked count are ignored: claiming the guesses are the truth does not help.
    forged = {"truth": mixed["links"], "leaked": 1, "links": mixed["links"]}
    assert SCORERS["lab00.linked"](ref, forged) == 0.25
    assert SCORERS["lab00.links_wrong"](ref, forged) == 2.0


def test_linkage_scorers_refuse_malformed_links_and_a_reference_without_truth() -> None:
    ref = links_value([])
    for bad in ({"links": [["p_1", "Ann Lee"], ["p_1", "Bo Chan"]]},  # one pseudonym linked twice
                {"links": [["p_1"]]}, {"links": [["p_1", 3]]}, {"links": "p_1"}, [["p_1", "Ann Lee"]],
                {"links": [["p_1", "x" * 10_000]]}):
        for name in ("lab00.linked", "lab00.links_wrong"):
            with pytest.raises(Malformed):
                SCORERS[name](ref, bad)
    for no_truth in ({"links": []}, {"truth": [], "leaked": 0, "links": []}, {"truth": [], "leaked": True}):
        with pytest.raises(Malformed, match="authoring error"):
            SCORERS["lab00.linked"](no_truth, {"links": []})
