"""Lab 00 (data minimisation): rates the grader computes itself from a submission's raw outputs.

The hidden tests record raw outputs (the secrets a detector found, the generalised rows, the
minimised table as strings, the links of a linkage attack) with what names the truth: the planted
secrets and decoys, every customer's pseudonym and name, or the ``n`` and ``seed`` of the hidden
input table, which the scorer rebuilds with ``aisec.data.people`` (seeded, cached) to get its rows
and direct identifiers. The scorers read the truth from the
*reference* run's value only and the raw outputs from the student's, so nothing the student's
kernel claims about the truth is believed.

Rows are checked to be generalisations of the hidden input rows (an age band containing the true
age, the same gender, a zip code with digits masked by ``*``, the same id when there is one), in
their original order, so a table of invented rows cannot be scored.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from aisec.grading.scorers.common import Malformed

MAX_ROWS = 5_000
MAX_CELLS = 100_000
MAX_TEXT = 2_000
MAX_FOUND = 5_000
_BAND = re.compile(r"(\d{1,3})-(\d{1,3})")


def _dict(value: Any, fields: tuple[str, ...], who: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(type(value.get(f)) is list for f in fields):
        if who == "reference":
            raise Malformed("the reference records no truth (an authoring error: tell your instructor)")
        raise Malformed("should be a dict with the lists the hidden test records")
    return value


def _strings(items: Any, limit: int, what: str) -> list[str]:
    if type(items) is not list or len(items) > limit or not all(type(s) is str and len(s) <= MAX_TEXT for s in items):
        raise Malformed(f"{what} should be a list of short strings")
    return items


# ------------------------------------------------------------------------ Q2: found secrets


def _found(reference: Any, student: Any) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Reference ``{"secrets": [[kind, text], ...], "decoys": [text, ...], "found": ...}``;
    student ``{"found": [[kind, text], ...]}`` (what the detector returned)."""
    ref = _dict(reference, ("secrets", "decoys"), "reference")
    found = _dict(student, ("found",), "student")["found"]
    if len(found) > MAX_FOUND or not all(
        type(f) is list and len(f) == 2 and all(type(s) is str and len(s) <= MAX_TEXT for s in f) for f in found
    ):
        raise Malformed("found should be a list of [kind, text] pairs of strings")
    return ref, [(f[0], f[1]) for f in found]


def secret_recall(reference: Any, student: Any) -> float:
    """The fraction of the reference's planted secrets ``[kind, text]`` the student found exactly."""
    ref, found = _found(reference, student)
    secrets = ref["secrets"]
    if not secrets:
        raise Malformed("the reference plants no secret (an authoring error: tell your instructor)")
    got = set(found)
    return sum((s[0], s[1]) in got for s in secrets) / len(secrets)


def decoys_flagged(reference: Any, student: Any) -> float:
    """How many of the reference's decoys (look-alikes that are not secrets) occur in a found text."""
    ref, found = _found(reference, student)
    texts = [t for _, t in found]
    return float(sum(any(d in t for t in texts) for d in ref["decoys"]))


# ------------------------------------------------------------- Q7/Q8: generalised rows


def _generalises(row: list[Any], original: list[Any]) -> bool:
    """``row`` = [age, gender, zip, *rest] is ``original`` = [age (int), gender, zip, *rest] generalised."""
    age, gender, zip_code, *rest = row
    true_age, true_gender, true_zip, *true_rest = original
    if type(age) is int:
        age_ok = age == true_age
    elif type(age) is str:
        band = _BAND.fullmatch(age)
        age_ok = (band is not None and int(band[1]) <= true_age <= int(band[2])) or (age != "" and set(age) == {"*"})
    else:
        age_ok = False
    zip_ok = (
        type(zip_code) is str
        and len(zip_code) == len(true_zip)
        and all(c == t or c == "*" for c, t in zip(zip_code, true_zip))
    )
    return age_ok and zip_ok and gender == true_gender and rest == true_rest


IDENTIFIER_COLUMNS = ("email", "phone", "national_id", "card_number", "full_name")
QUASI_IDENTIFIERS = ("age", "gender", "zip_code")


@lru_cache(maxsize=8)
def _people(n: int, seed: int) -> tuple[list[list[Any]], list[str]]:
    """The hidden input table ``people(n, seed)``: its rows [age, gender, zip, customer_id] and
    its direct-identifier values, rebuilt with the lab's own seeded generator."""
    from aisec.data import people

    table = people(n=n, seed=seed)
    rows = [[int(a), str(g), str(z), str(c)] for a, g, z, c in
            zip(table["age"], table["gender"], table["zip_code"], table["customer_id"])]
    return rows, [str(v) for col in IDENTIFIER_COLUMNS for v in table[col]]


def _inputs(reference: Any) -> tuple[list[list[Any]], list[str]]:
    """``people(n, seed)`` for the reference's ``n`` and ``seed``."""
    n, seed = (reference.get("n"), reference.get("seed")) if isinstance(reference, dict) else (None, None)
    if type(n) is not int or type(seed) is not int or not 20 <= n <= MAX_ROWS or not 0 <= seed < 2**31:
        raise Malformed("the reference records no hidden input (an authoring error: tell your instructor)")
    return _people(n, seed)


def _check_rows(rows: Any, original: list[list[Any]]) -> list[list[Any]]:
    """Rows of the original width whose cells are str/int, each generalising a hidden input row, in order."""
    width = len(original[0])
    if type(rows) is not list or len(rows) > MAX_ROWS or not all(
        type(r) is list and len(r) == width and all(type(c) in (str, int) for c in r) for r in rows
    ):
        raise Malformed("the rows should be a list of rows of the quasi-identifier columns")
    if any(type(c) is str and len(c) > MAX_TEXT for r in rows for c in r):
        raise Malformed("the rows hold over-long values")
    # Greedy in-order matching decides whether the rows are a subsequence of generalised inputs.
    position = 0
    for row in rows:
        while position < len(original) and not _generalises(row, original[position]):
            position += 1
        if position == len(original):
            raise Malformed("the rows are not generalisations of the hidden input rows, in their original order")
        position += 1
    return rows


def _min_group(rows: list[list[Any]]) -> float:
    """The size of the smallest group of rows sharing (age, gender, zip); 0 for no rows."""
    groups = Counter((type(r[0]).__name__, r[0], r[1], r[2]) for r in rows)
    return float(min(groups.values())) if groups else 0.0


def k_of_rows(reference: Any, student: Any) -> float:
    """Reference ``{"n": int, "seed": int, ...}`` names the hidden input ``people(n, seed)``; student
    ``{"rows": [[age, gender, zip, customer_id], ...]}``: the k-anonymity of the generalised rows."""
    original, _ = _inputs(reference)
    return _min_group(_check_rows(_dict(student, ("rows",), "student")["rows"], original))


# ----------------------------------------------------------------- Q8: the minimised table


def _table(reference: Any, student: Any) -> tuple[list[str], list[list[Any]], list[list[str]], list[list[Any]]]:
    """Reference ``{"n": int, "seed": int, ...}`` names the hidden input ``people(n, seed)``; student
    ``{"columns": [str], "rows": [[str, ...], ...]}`` (the minimised table, every cell as str).
    Returns the input's identifiers and rows, the student's rows and their (age, gender, zip)
    columns, checked to generalise the input rows in order."""
    original, identifiers = _inputs(reference)
    original = [r[:3] for r in original]
    stu = _dict(student, ("columns", "rows"), "student")
    columns = _strings(stu["columns"], 100, "the columns")
    rows = stu["rows"]
    if len(rows) > MAX_ROWS or len(rows) * max(len(columns), 1) > MAX_CELLS:
        raise Malformed("the table is too large")
    if not all(type(r) is list and len(r) == len(columns) and all(type(c) is str and len(c) <= MAX_TEXT for c in r) for r in rows):
        raise Malformed("each row should hold one string per column")
    if any(columns.count(c) != 1 for c in ("age", "gender", "zip_code")):
        raise Malformed("the table should have the columns age, gender and zip_code once each")
    at = [columns.index(c) for c in ("age", "gender", "zip_code")]
    quasi = _check_rows([[r[i] for i in at] for r in rows], original)
    return identifiers, original, rows, quasi


def table_leaks(reference: Any, student: Any) -> float:
    """How many of the reference's direct-identifier values occur in the student's table text (all
    cells joined by spaces)."""
    identifiers, _, rows, _ = _table(reference, student)
    text = " ".join(c for r in rows for c in r)
    return float(sum(v in text for v in identifiers))


def table_k(reference: Any, student: Any) -> float:
    """The k-anonymity of the student's table on (age, gender, zip_code)."""
    _, _, _, quasi = _table(reference, student)
    return _min_group(quasi)


def table_kept(reference: Any, student: Any) -> float:
    """The fraction of the reference's input rows the student's table keeps."""
    _, original, rows, _ = _table(reference, student)
    return len(rows) / len(original)


# ------------------------------------------------------- Q9: links of a linkage attack


def _pairs(items: Any, what: str) -> list[tuple[str, str]]:
    if type(items) is not list or len(items) > MAX_ROWS or not all(
        type(p) is list and len(p) == 2 and all(type(s) is str and len(s) <= MAX_TEXT for s in p) for p in items
    ):
        raise Malformed(f"{what} should be a list of [pseudonym, name] pairs of strings")
    return [(p[0], p[1]) for p in items]


def _links(reference: Any, student: Any) -> tuple[set[tuple[str, str]], int, list[tuple[str, str]]]:
    """Reference ``{"truth": [[pseudonym, name], ...] (every customer), "leaked": int, ...}``; student
    ``{"links": [[pseudonym, name], ...]}`` (what the attack returned, one link per pseudonym)."""
    ref = _dict(reference, ("truth",), "reference")
    leaked = ref.get("leaked")
    if type(leaked) is not int or leaked < 1:
        raise Malformed("the reference records no truth (an authoring error: tell your instructor)")
    truth = set(_pairs(ref["truth"], "the truth"))
    links = _pairs(_dict(student, ("links",), "student")["links"], "the links")
    if len({p for p, _ in links}) != len(links):
        raise Malformed("the links should name each pseudonym once")
    return truth, leaked, links


def linked(reference: Any, student: Any) -> float:
    """The fraction of the leaked customers that the student's links name correctly (pseudonym and
    name as in the reference's truth)."""
    truth, leaked, links = _links(reference, student)
    return sum(link in truth for link in links) / leaked


def links_wrong(reference: Any, student: Any) -> float:
    """How many of the student's links pair a pseudonym with a name that is not its customer's."""
    truth, _, links = _links(reference, student)
    return float(sum(link not in truth for link in links))


SCORERS: dict[str, Callable[[Any, Any], float]] = {
    "lab00.secret_recall": secret_recall,
    "lab00.decoys_flagged": decoys_flagged,
    "lab00.k_anonymity": k_of_rows,
    "lab00.table_leaks": table_leaks,
    "lab00.table_k": table_k,
    "lab00.table_kept": table_kept,
    "lab00.linked": linked,
    "lab00.links_wrong": links_wrong,
}
