"""Visible checks of Lab 0 (data minimisation). Hidden tests use other seeds and data."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pandas as pd

from aisec.check import Check, expect_items, expect_type
from aisec.data import people

QUASI = ["age", "gender", "zip_code"]
DIRECT = ["full_name", "email", "phone", "national_id", "card_number"]

EXAMPLE = (
    "Mail jane.doe@example.org or call (555) 123-4567; SSN 123-45-6789. "
    "Key sk_live_abcdefghijklmnopqrstuvwx, card 4539 1488 0343 6467, order 4539148803436468."
)
EXAMPLE_FOUND = [
    ("email", "jane.doe@example.org"),
    ("phone", "(555) 123-4567"),
    ("national_id", "123-45-6789"),
    ("api_key", "sk_live_abcdefghijklmnopqrstuvwx"),
    ("card_number", "4539 1488 0343 6467"),
]


def _luhn_examples(f: Callable[[str], Any]) -> None:
    cases = {
        "4539148803436467": True,
        "4539 1488 0343 6467": True,
        "4539-1488-0343-6467": True,
        "4539148803436468": False,
        "1234567812345678": False,
        "12345": False,
        "4539x148803436467": False,
    }
    for number, expected in cases.items():
        got = f(number)
        expect_type(got, bool, f"luhn_valid({number!r})")
        if got != expected:
            raise AssertionError(
                f"luhn_valid({number!r}) returned {got}, expected {expected}. Double every second digit "
                "from the right (subtract 9 if the result is over 9) and check the sum is a multiple of 10."
            )


def _find_example(f: Callable[[str], Any]) -> None:
    got = f(EXAMPLE)
    expect_type(got, list, "find_secrets(...)")
    got = [tuple(x) for x in got]
    if ("card_number", "4539148803436468") in got:
        raise AssertionError("the order number 4539148803436468 fails the Luhn check: it is not a card number")
    if got != EXAMPLE_FOUND:
        raise AssertionError(f"on the example sentence expected {EXAMPLE_FOUND}, got {got}")


def _find_plain(f: Callable[[str], Any]) -> None:
    if f("Nothing to see here, version 2.14.1.") != []:
        raise AssertionError("a sentence without secrets should give an empty list")


def _redact_example(f: Callable[[str], Any]) -> None:
    got = f(EXAMPLE)
    expect_type(got, str, "redact(...)")
    expected = (
        "Mail [EMAIL] or call [PHONE]; SSN [NATIONAL_ID]. Key [API_KEY], card [CARD_NUMBER], order 4539148803436468."
    )
    if got != expected:
        raise AssertionError(f"expected {expected!r}, got {got!r}")


def _pii_columns(f: Callable[[pd.DataFrame], Any]) -> None:
    got = f(people(n=60, seed=0))
    expect_type(got, list, "pii_columns(...)")
    expect_items(got, DIRECT, "the direct identifiers of people(n=60, seed=0)")


def _pii_renamed(f: Callable[[pd.DataFrame], Any]) -> None:
    df = people(n=60, seed=0).rename(columns={"email": "contact", "full_name": "who"})
    got = f(df)
    if "contact" not in got or "who" not in got:
        raise AssertionError("decide by the values, not the column names: 'contact' holds emails, 'who' names")


def _pseudo_format(f: Callable[[pd.Series, bytes], Any]) -> None:
    values = pd.Series(["C100000", "C100001", "C100002"], index=[5, 6, 7])
    got = f(values, b"visible-key")
    expect_type(got, pd.Series, "pseudonymise(...)")
    if list(got.index) != [5, 6, 7]:
        raise AssertionError("keep the index of the input Series")
    for v in got:
        if not isinstance(v, str) or not re.fullmatch(r"p_[0-9a-f]{16}", v):
            raise AssertionError(f"each pseudonym looks like 'p_' + 16 lowercase hex digits, got {v!r}")
    if got.iloc[0] != "p_10ff7fbab4ae2aee":
        raise AssertionError("pseudonymise('C100000', key=b'visible-key') should be p_10ff7fbab4ae2aee: use "
                             "hmac.new(key, value.encode('utf-8'), hashlib.sha256).hexdigest()[:16]")


def _pseudo_keyed(f: Callable[[pd.Series, bytes], Any]) -> None:
    values = pd.Series(["C100000"])
    if f(values, b"a").iloc[0] == f(values, b"b").iloc[0]:
        raise AssertionError("two different keys must give different pseudonyms: the key must enter the hash")


def _k_small(f: Callable[[pd.DataFrame, list[str]], Any]) -> None:
    df = pd.DataFrame({"age": [30, 30, 30, 40, 40], "gender": ["F", "F", "F", "M", "M"], "zip_code": ["1"] * 5})
    got = f(df, QUASI)
    expect_type(got, int, "k_anonymity(...)")
    if got != 2:
        raise AssertionError(f"groups have sizes 3 and 2, so k is 2; got {got}")


def _generalise(f: Callable[..., Any]) -> None:
    df = people(n=400, seed=0)
    got = f(df, k=5)
    expect_type(got, pd.DataFrame, "generalise(...)")
    if list(got.columns) != list(df.columns):
        raise AssertionError("keep every column, in the same order")
    if not all(isinstance(a, str) and re.fullmatch(r"\d+-\d+", a) for a in got["age"]):
        raise AssertionError("ages become bands such as '30-39'")
    smallest = int(got.groupby(QUASI).size().min())
    if smallest < 5:
        raise AssertionError(f"the result is only {smallest}-anonymous")
    if len(got) < 0.9 * len(df):
        raise AssertionError(f"only {len(got)} of {len(df)} rows kept: suppress at most 5% per level")
    if list(got.index) != list(range(len(got))):
        raise AssertionError("return a fresh 0..n-1 index (reset_index(drop=True))")


def _minimise(f: Callable[..., Any]) -> None:
    df = people(n=200, seed=0)
    got = f(df, key=b"visible-key", k=5)
    expect_type(got, pd.DataFrame, "minimise(...)")
    left = [c for c in DIRECT if c in got.columns]
    if left:
        raise AssertionError(f"direct identifiers still present: {left}")
    if not got["customer_id"].str.fullmatch(r"p_[0-9a-f]{16}").all():
        raise AssertionError("customer_id must hold pseudonyms")
    if got["notes"].str.contains("@").any():
        raise AssertionError("an email address is still in the notes: redact them")
    if int(got.groupby(QUASI).size().min()) < 5:
        raise AssertionError("the result must be 5-anonymous on age, gender, zip_code")


CHECKS: dict[str, list[Check]] = {
    "q1": [Check("luhn_valid accepts valid numbers, rejects invalid ones, returns bool", _luhn_examples)],
    "q2": [
        Check("find_secrets finds the five kinds in the example, in order, and skips the order number", _find_example),
        Check("find_secrets returns [] for harmless text", _find_plain),
    ],
    "q3": [Check("redact replaces each finding with [KIND]", _redact_example)],
    "q4": [
        Check("pii_columns finds the five direct identifiers", _pii_columns),
        Check("pii_columns decides by content, not by column name", _pii_renamed),
    ],
    "q5": [
        Check("pseudonymise gives 'p_' + 16 hex digits of HMAC-SHA256, index kept", _pseudo_format),
        Check("pseudonymise depends on the key", _pseudo_keyed),
    ],
    "q6": [Check("k_anonymity returns the smallest group size as an int", _k_small)],
    "q7": [Check("generalise makes people(400) 5-anonymous with age bands, keeping >= 90% of rows", _generalise)],
    "q8": [Check("minimise drops identifiers, pseudonymises, redacts and generalises", _minimise)],
}
