"""Visible checks of Lab 0 (data minimisation). Hidden tests use other seeds and data.

A question that builds on an earlier one (unmask, find_secrets and find_disguised on luhn_valid, redact on
find_secrets, minimise on everything) is checked with *stand-ins* for the earlier functions: small lookups that know the fixture's
answers, swapped in by name in the notebook for the duration of the check (:func:`aisec.check.stand_ins`). A bug in an earlier question
then costs points once, where it is; the hidden tests do the same with the reference answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pandas as pd

from aisec.check import Check, expect_items, expect_type, stand_ins
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


#: The example's valid card number in Arabic-Indic and in fullwidth digits: ``str.isdigit`` accepts both.
NON_ASCII_DIGITS = {
    "Arabic-Indic": "4539148803436467".translate(str.maketrans("0123456789", "\u0660\u0661\u0662\u0663\u0664"
                                                                              "\u0665\u0666\u0667\u0668\u0669")),
    "fullwidth": "4539148803436467".translate(str.maketrans("0123456789", "\uff10\uff11\uff12\uff13\uff14"
                                                                           "\uff15\uff16\uff17\uff18\uff19")),
}
#: Formats of the table in Q2 that the example sentence does not show, and secrets out of the table's order.
FORMATS = "Call 555-123-4567 or bill 4539-1488-0343-6467; not 4539-1488-0343-6468."
FORMATS_FOUND = [("phone", "555-123-4567"), ("card_number", "4539-1488-0343-6467")]
ORDER = "Card 4539148803436467, key AKIAABCDEFGHIJKLMNOP, ring (555) 123-4567, mail li.wu@example.net, SSN 987-65-4321."
ORDER_FOUND = [
    ("card_number", "4539148803436467"),
    ("api_key", "AKIAABCDEFGHIJKLMNOP"),
    ("phone", "(555) 123-4567"),
    ("email", "li.wu@example.net"),
    ("national_id", "987-65-4321"),
]
#: The Luhn-valid numbers of the examples above, digits only (what the luhn_valid stand-in accepts).
VALID_CARDS = frozenset({"4539148803436467"})


def _luhn_stand_in(number: str) -> bool:
    """luhn_valid for the check's fixtures only: the listed valid numbers, spaces and dashes ignored."""
    return re.sub(r"[ -]", "", number) in VALID_CARDS


def _finder(found: list[tuple[str, str]]) -> Callable[[str], list[tuple[str, str]]]:
    """find_secrets for the check's fixtures only: where the known findings occur in a text, in order."""
    def find_secrets(text: str) -> list[tuple[str, str]]:
        hits = [(m.start(), kind, value) for kind, value in found for m in re.finditer(re.escape(value), text)]
        return [(kind, value) for _, kind, value in sorted(hits)]

    return find_secrets


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


def _luhn_ascii_only(f: Callable[[str], Any]) -> None:
    for script, number in NON_ASCII_DIGITS.items():
        got = f(number)
        expect_type(got, bool, f"luhn_valid of the {script} digits")
        if got:
            raise AssertionError(
                f"the example's card number written in {script} digits was accepted: only the ASCII digits 0-9 count. "
                "str.isdigit() (and int()) also accept other scripts' digits; test the characters against '0123456789' "
                "(or re.fullmatch(r'[0-9]+', ...)) instead"
            )


#: Masked numbers and their Luhn-valid completions, written out (the luhn_valid stand-in knows these only).
MASKED = {
    "4539 1488 0343 64*7": ["4539 1488 0343 6467"],
    "4539148803436467": ["4539148803436467"],
    "4539148803436468": [],
    "45*9-1488-0343-6467": ["4539-1488-0343-6467"],
    "4539 1488 0343 6**7": ["4539 1488 0343 6087", "4539 1488 0343 6137", "4539 1488 0343 6277", "4539 1488 0343 6327",
                            "4539 1488 0343 6467", "4539 1488 0343 6517", "4539 1488 0343 6657", "4539 1488 0343 6707",
                            "4539 1488 0343 6897", "4539 1488 0343 6947"],
}
#: The digits of every completion above that passes the Luhn check.
MASKED_VALID = frozenset(re.sub(r"[ -]", "", c) for completions in MASKED.values() for c in completions)


def _unmask_luhn_stand_in(number: str) -> bool:
    """luhn_valid for the unmask check's fixtures only."""
    return re.sub(r"[ -]", "", number) in MASKED_VALID


def _unmask(f: Callable[[str], Any]) -> None:
    for masked, expected in MASKED.items():
        with stand_ins(f, luhn_valid=_unmask_luhn_stand_in):
            got = f(masked)
        expect_type(got, list, f"unmask({masked!r})")
        if got != expected:
            raise AssertionError(f"unmask({masked!r}) returned {got}, expected {expected}: try every digit for each "
                                 "'*' (itertools.product), keep the separators, keep the completions luhn_valid (Q1, "
                                 "replaced here by a stand-in) accepts, in increasing order")


def _find_example(f: Callable[[str], Any]) -> None:
    with stand_ins(f, luhn_valid=_luhn_stand_in):
        got = f(EXAMPLE)
    expect_type(got, list, "find_secrets(...)")
    got = [tuple(x) for x in got]
    if ("card_number", "4539148803436468") in got:
        raise AssertionError("the order number 4539148803436468 fails the Luhn check: it is not a card number")
    if got != EXAMPLE_FOUND:
        raise AssertionError(f"on the example sentence expected {EXAMPLE_FOUND}, got {got}")


def _find_plain(f: Callable[[str], Any]) -> None:
    with stand_ins(f, luhn_valid=_luhn_stand_in):
        got = f("Nothing to see here, version 2.14.1.")
    if got != []:
        raise AssertionError("a sentence without secrets should give an empty list")


def _find_formats(f: Callable[[str], Any]) -> None:
    with stand_ins(f, luhn_valid=_luhn_stand_in):
        got = f(FORMATS)
    expect_type(got, list, "find_secrets(...)")
    got = [tuple(x) for x in got]
    for kind, text in FORMATS_FOUND:
        if (kind, text) not in got:
            raise AssertionError(f"{text!r} is a {kind} in a format of the table ({'555-123-4567' if kind == 'phone' else 'groups of four separated by dashes'}) "
                                 f"but was not found as ({kind!r}, {text!r}): write a pattern for every format of the table")
    if got != FORMATS_FOUND:
        raise AssertionError(f"on {FORMATS!r} expected {FORMATS_FOUND}, got {got}")


def _find_order(f: Callable[[str], Any]) -> None:
    with stand_ins(f, luhn_valid=_luhn_stand_in):
        got = f(ORDER)
    expect_type(got, list, "find_secrets(...)")
    got = [tuple(x) for x in got]
    if sorted(got) == sorted(ORDER_FOUND) and got != ORDER_FOUND:
        raise AssertionError("every secret was found, but not in order of appearance: sort the findings by their "
                             "position in the text (match.start()), not by kind")
    if got != ORDER_FOUND:
        raise AssertionError(f"on {ORDER!r} expected {ORDER_FOUND}, got {got}")


def _redact_example(f: Callable[[str], Any]) -> None:
    # A stand-in find_secrets (Q2) knows the example's findings: a bug in Q2 is not counted again here.
    with stand_ins(f, find_secrets=_finder(EXAMPLE_FOUND), luhn_valid=_luhn_stand_in):
        got = f(EXAMPLE)
    expect_type(got, str, "redact(...)")
    expected = (
        "Mail [EMAIL_1] or call [PHONE_1]; SSN [NATIONAL_ID_1]. Key [API_KEY_1], card [CARD_NUMBER_1], order "
        "4539148803436468."
    )
    if got != expected:
        raise AssertionError(f"expected {expected!r}, got {got!r} (find_secrets, Q2, is replaced by a stand-in that "
                             "finds exactly the five secrets of the example here: call it by that name)")


#: Two cards (one of them twice) and two emails: placeholders number the different values of a kind.
REPEATS = "Card 4539148803436467 or 4716 0000 0000 0007? Mail b@x.org, a@x.org, then card 4539148803436467 again."
REPEATS_FOUND = [("card_number", "4539148803436467"), ("card_number", "4716 0000 0000 0007"), ("email", "b@x.org"),
                 ("email", "a@x.org"), ("card_number", "4539148803436467")]
REPEATS_REDACTED = ("Card [CARD_NUMBER_1] or [CARD_NUMBER_2]? Mail [EMAIL_1], [EMAIL_2], then card [CARD_NUMBER_1] "
                    "again.")


def _redact_numbered(f: Callable[[str], Any]) -> None:
    with stand_ins(f, find_secrets=_finder(REPEATS_FOUND[:4]), luhn_valid=_luhn_stand_in):
        got = f(REPEATS)
    expect_type(got, str, "redact(...)")
    if got != REPEATS_REDACTED:
        raise AssertionError(f"expected {REPEATS_REDACTED!r}, got {got!r}: number the different values of each kind "
                             "from 1 in order of first appearance, and give a repeated value its first number")


def _known_secrets(df: pd.DataFrame) -> Callable[[str], list[tuple[str, str]]]:
    """A find_secrets stand-in (Q2) that knows the secrets of a people() table: its identifier columns' values."""
    return _finder([(kind, str(v)) for kind in ("email", "phone", "national_id", "card_number") for v in df[kind]])


def _card_stand_in(df: pd.DataFrame) -> Callable[[str], bool]:
    cards = {re.sub(r"[ -]", "", str(v)) for v in df["card_number"]}
    return lambda number: re.sub(r"[ -]", "", number) in cards


def _pii_columns(f: Callable[[pd.DataFrame], Any]) -> None:
    df = people(n=60, seed=0)
    with stand_ins(f, find_secrets=_known_secrets(df), luhn_valid=_card_stand_in(df)):
        got = f(df)
    expect_type(got, list, "pii_columns(...)")
    expect_items(got, DIRECT, "the direct identifiers of people(n=60, seed=0)")


def _pii_renamed(f: Callable[[pd.DataFrame], Any]) -> None:
    base = people(n=60, seed=0)
    df = base.rename(columns={"email": "contact", "full_name": "who"})
    with stand_ins(f, find_secrets=_known_secrets(base), luhn_valid=_card_stand_in(base)):
        got = f(df)
    if "contact" not in got or "who" not in got:
        raise AssertionError("decide by the values, not the column names: 'contact' holds emails, 'who' names")


def _pii_in_full(f: Callable[[pd.DataFrame], Any]) -> None:
    base = people(n=60, seed=0)
    df = pd.DataFrame({
        "email": base["email"],
        "mail_note": "Prefers contact by email at " + base["email"] + ".",
        "call_note": "Call " + base["full_name"] + " back on " + base["phone"],
        "ssn_note": base["national_id"] + " was read out on the phone",
    })
    with stand_ins(f, find_secrets=_known_secrets(base), luhn_valid=_card_stand_in(base)):
        got = f(df)
    expect_type(got, list, "pii_columns(...)")
    partial = [c for c in ("mail_note", "call_note", "ssn_note") if c in got]
    if partial:
        raise AssertionError(f"{partial} flagged: their values only *contain* an identifier inside a sentence. A value "
                             "counts when it is, in full, an email, phone, id, card or name: compare the whole value "
                             "(re.fullmatch, or a finding equal to the value), not re.search")
    if got != ["email"]:
        raise AssertionError(f"expected ['email'], got {got}")


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


def _k_l_small(f: Callable[[pd.DataFrame, list[str], str], Any]) -> None:
    df = pd.DataFrame({"age": [30, 30, 30, 40, 40], "gender": ["F", "F", "F", "M", "M"], "zip_code": ["1"] * 5,
                       "churned": [1, 0, 1, 1, 1]})
    got = f(df, QUASI, "churned")
    expect_type(got, tuple, "anonymity(...)")
    if len(got) != 2:
        raise AssertionError("return a pair (k, l)")
    expect_type(got[0], int, "k")
    expect_type(got[1], int, "l")
    if got != (2, 1):
        raise AssertionError(f"groups have sizes 3 and 2 (k = 2); the second group churned only (l = 1); got {got}")


def _k_l_missing(f: Callable[[pd.DataFrame, list[str], str], Any]) -> None:
    df = pd.DataFrame({"age": [30, 30, 30, 30, 30], "gender": ["F", "F", "F", None, None],
                       "churned": [1.0, 0.0, 1.0, float("nan"), 0.0]})
    got = f(df, ["age", "gender"], "churned")
    if got != (2, 2):
        raise AssertionError(f"the groups are gender F (3 rows, churned 1 and 0: l = 2) and gender missing (2 rows, "
                             f"churned NaN and 0: l = 2), so (2, 2); got {got}. Count NaN as a value: "
                             "groupby(..., dropna=False) and nunique(dropna=False)")


def _smallest_group(df: pd.DataFrame, quasi_identifiers: list[str]) -> int:
    """The size of the smallest group: the check's own measure of k."""
    return int(df.groupby(list(quasi_identifiers), dropna=False).size().min())


def _anonymity_stand_in(df: pd.DataFrame, quasi_identifiers: list[str], sensitive: str) -> tuple[int, int]:
    """A stand-in for anonymity (Q6), in case generalise uses it: k measured by the check, l not needed there."""
    return _smallest_group(df, quasi_identifiers), 1


def _generalise(f: Callable[..., Any]) -> None:
    df = people(n=400, seed=0)
    with stand_ins(f, anonymity=_anonymity_stand_in):  # if generalise uses anonymity (Q6), a bug there is Q6's
        got = f(df, k=5)
    expect_type(got, pd.DataFrame, "generalise(...)")
    if list(got.columns) != list(df.columns):
        raise AssertionError("keep every column, in the same order")
    if not all(isinstance(a, str) and re.fullmatch(r"\d+-\d+", a) for a in got["age"]):
        raise AssertionError("ages become bands such as '30-39'")
    smallest = _smallest_group(got, QUASI)
    if smallest < 5:
        raise AssertionError(f"the result is only {smallest}-anonymous")
    if len(got) < 0.9 * len(df):
        raise AssertionError(f"only {len(got)} of {len(df)} rows kept: suppress at most 5% per level")
    if list(got.index) != list(range(len(got))):
        raise AssertionError("return a fresh 0..n-1 index (reset_index(drop=True))")


class _Pipeline:
    """Stand-ins for Q3-Q7 that mark what they did, so that minimise is checked on its own: which columns
    went to which step, with which key and k. They record their calls."""

    def __init__(self) -> None:
        self.generalise_k: list[Any] = []

    def pii_columns(self, df: pd.DataFrame) -> list[str]:
        return [c for c in DIRECT if c in df.columns]

    def pseudonymise(self, values: pd.Series, key: bytes) -> pd.Series:
        return values.map(lambda v: f"pseudonym({v}, {key!r})")

    def redact(self, text: str) -> str:
        return f"redacted({text})"

    def generalise(self, df: pd.DataFrame, k: int = 5, max_suppression: float = 0.05) -> pd.DataFrame:
        self.generalise_k.append(k)
        return df.iloc[::2].reset_index(drop=True)  # drops rows, as suppression does

    def run(self, f: Callable[..., Any], df: pd.DataFrame) -> Any:
        with stand_ins(f, pii_columns=self.pii_columns, pseudonymise=self.pseudonymise, redact=self.redact,
                       generalise=self.generalise):
            return f(df, key=b"visible-key", k=7)


def _minimise(f: Callable[..., Any]) -> None:
    df = people(n=40, seed=0)
    pipeline = _Pipeline()
    got = pipeline.run(f, df.copy(deep=True))  # the next check judges changes to the input
    expect_type(got, pd.DataFrame, "minimise(...)")
    left = [c for c in DIRECT if c in got.columns]
    if left:
        raise AssertionError(f"direct identifiers still present: {left}: drop the columns pii_columns (Q4) returns")
    if pipeline.generalise_k != [7]:
        raise AssertionError(f"generalise (Q7) was called with k = {pipeline.generalise_k} for minimise(..., k=7): call "
                             "it once, last, with the k you were given")
    kept = df.drop(columns=DIRECT)
    expected = pipeline.generalise(kept.assign(customer_id=pipeline.pseudonymise(kept["customer_id"], b"visible-key"),
                                               notes=kept["notes"].map(pipeline.redact)))
    if list(got.columns) != list(expected.columns):
        raise AssertionError(f"columns {list(got.columns)}; expected {list(expected.columns)} (the others, in order)")
    if list(got["customer_id"]) != list(expected["customer_id"]):
        raise AssertionError("customer_id must be replaced by pseudonymise(df['customer_id'], key) (Q5), before "
                             "generalising")
    if list(got["notes"]) != list(expected["notes"]):
        raise AssertionError("each note must be replaced by redact(note) (Q3), before generalising")
    if not got.equals(expected):
        raise AssertionError("the other columns must pass through unchanged, then through generalise (Q7)")


def _minimise_copy(f: Callable[..., Any]) -> None:
    df = people(n=40, seed=0)
    before = df.copy(deep=True)
    _Pipeline().run(f, df)
    if list(df.columns) != list(before.columns) or not df.equals(before):
        raise AssertionError("minimise changed the table it was given (dropped columns or rewrote values in place): "
                             "work on a copy (df.drop(columns=...) returns one; never inplace=True or df[col] = ... on "
                             "the input)")


#: A minimised release and a leak, written out: which leaked person is consistent with exactly one row.
LINK_RELEASE = pd.DataFrame({
    "customer_id": ["p_a", "p_b", "p_c", "p_d", "p_e"],
    "age": ["30-39", "30-39", "40-59", "20-39", "30-39"],
    "gender": ["F", "F", "M", "X", "F"],
    "zip_code": ["665**", "665**", "*****", "123**", "665**"],
    "annual_spend": [512.40, 498.00, 1234.56, 880.00, 2049.99],
    "visits": [7, 7, 12, 3, 7],
    "notes": ["ok"] * 5,
})
LINK_LEAK = pd.DataFrame({
    "full_name": ["Ann Lee", "Bo Chan", "Cy Diaz", "Di Roe", "Ed Fox", "Flo Gil", "Gus Hay"],
    "age": [34, 45, 25, 36, 41, 39, 60],
    "gender": ["F", "M", "X", "F", "F", "F", "M"],
    "zip_code": ["66512", "99001", "12345", "66598", "66512", "66401", "99001"],
    "visits": [7, 12, 3, 7, 7, 7, 12],
    "spend_100": [500, 1200, 900, 2000, 2000, 2000, 1200],
})
#: Ann Lee fits p_a and p_b (not unique); Ed Fox (41), Flo Gil (zip 664..) and Gus Hay (60) fit no row.
LINKS = {"p_c": "Bo Chan", "p_d": "Cy Diaz", "p_e": "Di Roe"}


def _link(f: Callable[[pd.DataFrame, pd.DataFrame], Any]) -> None:
    got = f(LINK_RELEASE.copy(), LINK_LEAK.copy())
    expect_type(got, dict, "link(...)")
    if "p_a" in got or "p_b" in got:
        raise AssertionError("Ann Lee is consistent with two rows (p_a and p_b): link a person only to the *only* row "
                             "consistent with them")
    wrong = sorted(name for name in got.values() if name in ("Ed Fox", "Flo Gil", "Gus Hay"))
    if wrong:
        raise AssertionError(f"{wrong} fit no row: the age must lie in the band (both ends included), the zip code "
                             "must equal the row's wherever the row has no '*', the gender and visits must be equal")
    if got != LINKS:
        raise AssertionError(f"expected {LINKS}, got {got}: the spending must round to spend_100 "
                             "(round(annual_spend / 100) * 100; 2049.99 rounds to 2000), the keys are the rows' "
                             "customer_id and the values the leak's full_name")


def _link_index(f: Callable[[pd.DataFrame, pd.DataFrame], Any]) -> None:
    release = LINK_RELEASE.iloc[::-1].set_axis([10, 20, 30, 40, 50])
    leak = LINK_LEAK.iloc[::-1].set_axis(range(100, 107))
    got = f(release, leak)
    if got != LINKS:
        raise AssertionError("with the rows in another order and another index the links should be the same: look "
                             "rows up by their values, not by position or index label")


#: Disguised secrets and harmless look-alikes, written out with the kinds expected in order.
DISGUISED = {
    "Card 4539.1488.0343.6467, please refund.": ["card_number"],
    "SSN 123 45 6789 was read out on the phone.": ["national_id"],
    "Mail jane.doe [at] example [dot] org about it.": ["email"],
    "Mail JANE.DOE (AT) example {Dot} org too.": ["email"],
    "Card \uff14\uff15\uff13\uff19\uff11\uff14\uff18\uff18\uff10\uff13\uff14\uff13\uff16\uff14\uff16\uff17 on file.": ["card_number"],
    "SSN 123-45-\u200b6789 (with an invisible character).": ["national_id"],
    "First li.wu\uff20example.net, then card 4539  1488 / 0343__6467 and id 987.65.4321.": ["email", "card_number",
                                                                                            "national_id"],
}
BENIGN = {
    "Order 4539 1488 0343 6468 shipped on 2024-05-17 with version 2.14.1.": [],
    "Ticket 1234-56789 and zip 12345-6789, priced at 3.50 each.": [],
    "Ping @northwind or support [at] the desk, due 17/05/2024.": [],
    "Batch 4539.1488.0343.6467.1 is a lot number, not a card.": [],
    "Rooms 4539 1488 0343    6467: four spaces end a digit run.": [],
}
#: The Luhn-valid numbers among the fixtures above, digits only (what the luhn_valid stand-in accepts).
DISGUISED_CARDS = frozenset({"4539148803436467"})


def _disguised_luhn_stand_in(number: str) -> bool:
    """luhn_valid for the find_disguised fixtures only; like luhn_valid, it ignores spaces and dashes only."""
    return re.sub(r"[ -]", "", number) in DISGUISED_CARDS


def _find_cases(f: Callable[[str], Any], cases: dict[str, list[str]], what: str) -> None:
    for text, expected in cases.items():
        with stand_ins(f, luhn_valid=_disguised_luhn_stand_in):
            got = f(text)
        expect_type(got, list, "find_disguised(...)")
        if got != expected:
            raise AssertionError(f"on {ascii(text)} expected {expected}, got {got} ({what})")


def _disguised(f: Callable[[str], Any]) -> None:
    _find_cases(f, DISGUISED, "normalise with NFKC, delete zero-width characters, read [at]/(at)/{at} and "
                              "[dot]/(dot)/{dot} in any case, let one to three of ' .-/_' separate digits; pass the "
                              "digits alone to luhn_valid (Q1, a stand-in here)")


def _benign(f: Callable[[str], Any]) -> None:
    _find_cases(f, BENIGN, "a 16-digit run must pass the Luhn check, a 9-digit run must be grouped 3-2-4, a run is "
                           "counted whole (17 digits are not a card), and an email needs a dot and a domain ending")


CHECKS: dict[str, list[Check]] = {
    "q1": [
        Check("luhn_valid accepts valid numbers, rejects invalid ones, returns bool", _luhn_examples),
        Check("luhn_valid counts only the ASCII digits 0-9", _luhn_ascii_only),
    ],
    "q1_unmask": [Check("unmask lists the Luhn-valid completions of a masked number, in order", _unmask)],
    "q2": [
        Check("find_secrets finds the five kinds in the example, in order, and skips the order number", _find_example),
        Check("find_secrets returns [] for harmless text", _find_plain),
        Check("find_secrets knows every format of the table (555-123-4567, dashed card numbers)", _find_formats),
        Check("find_secrets lists findings in order of appearance, whatever their kind", _find_order),
    ],
    "q3": [
        Check("redact replaces each finding of find_secrets with [KIND_1]", _redact_example),
        Check("redact numbers the different values of a kind and repeats the number of a repeated value", _redact_numbered),
    ],
    "q4": [
        Check("pii_columns finds the five direct identifiers", _pii_columns),
        Check("pii_columns decides by content, not by column name", _pii_renamed),
        Check("pii_columns counts a value only when it is an identifier in full", _pii_in_full),
    ],
    "q5": [
        Check("pseudonymise gives 'p_' + 16 hex digits of HMAC-SHA256, index kept", _pseudo_format),
        Check("pseudonymise depends on the key", _pseudo_keyed),
    ],
    "q6": [
        Check("anonymity returns (k, l): the smallest group size and the fewest sensitive values in a group", _k_l_small),
        Check("anonymity counts a missing value as a value", _k_l_missing),
    ],
    "q7": [Check("generalise makes people(400) 5-anonymous with age bands, keeping >= 90% of rows", _generalise)],
    "q8": [
        Check("minimise drops identifiers, pseudonymises, redacts and generalises (with stand-ins for Q3-Q7)", _minimise),
        Check("minimise leaves the table it was given unchanged", _minimise_copy),
    ],
    "q9": [
        Check("link names the leaked people consistent with exactly one released row", _link),
        Check("link does not depend on the order or index of the rows", _link_index),
    ],
    "q10": [
        Check("find_disguised finds disguised cards, national ids and emails, in order", _disguised),
        Check("find_disguised leaves order numbers, dates, versions, handles and other numbers alone", _benign),
    ],
}


#: An authored hint for every hidden record of the lab (by key): the property it tests, never a value.
#: Hidden tests run the same functions on other seeds; later questions run on the reference answers of earlier ones.
HIDDEN_HINTS: dict[str, str] = {
    "q1_luhn_test.verdicts": "the Luhn verdicts on other numbers: valid and invalid cards, separators, wrong lengths, "
                             "other characters, non-ASCII digits",
    "q2_find_secrets_test.found": "the findings, kinds and exact texts, in another chat transcript",
    "q2_find_secrets_test.recall": "every secret of another chat transcript is found",
    "q2_find_secrets_test.decoys_flagged": "no order number failing the Luhn check is reported as a card",
    "q2_find_secrets_test.formats_and_order": "every format of the table (dashed phones and cards included), several "
                                              "secrets per message, in order of appearance",
    "q1_luhn_test.unmasked": "the Luhn-valid completions of other masked numbers, grouped or not, with several or no "
                             "masked digits, in increasing order",
    "q3_redact_test.redacted": "other messages with each finding replaced by its numbered [KIND_N] and nothing else "
                               "changed",
    "q3_redact_test.numbered": "messages repeating secrets: different values of a kind get different numbers, a "
                               "repeated value keeps its number",
    "q4_pii_columns_test.columns": "the direct identifiers of another table with shuffled, renamed columns",
    "q4_pii_columns_test.values_in_full": "columns whose values only contain an identifier inside a sentence are not "
                                          "direct identifiers",
    "q5_pseudonymise_test.values": "the keyed pseudonyms of other ids under another key",
    "q5_pseudonymise_test.index": "the index of the input Series is kept",
    "q6_anonymity_test.k_l": "k and l of other tables, quasi-identifier sets and sensitive columns",
    "q6_anonymity_test.missing": "k and l when quasi-identifiers and the sensitive column have missing values",
    "q6_anonymity_test.types": "k and l are plain ints",
    "q7_generalise_test.rows_0": "the rows kept and their generalised values, level by level, for another table",
    "q7_generalise_test.k_0": "the generalised table is k-anonymous",
    "q7_generalise_test.rows_1": "the rows kept and their generalised values for another table and a larger k",
    "q7_generalise_test.k_1": "the generalised table is k-anonymous for a larger k",
    "q8_minimise_test.columns": "the columns of the minimised table, in their original order",
    "q8_minimise_test.notes": "the notes are redacted (and follow the generalised rows)",
    "q8_minimise_test.leaks": "no identifier of the input table is left in the minimised one",
    "q8_minimise_test.k": "the minimised table is k-anonymous",
    "q8_minimise_test.kept": "the minimised table keeps most rows",
    "q8_minimise_test.input_untouched": "the table passed in is not changed",
    "q9_link_test.links": "the links of the attack on another minimised release and another leak",
    "q9_link_test.named": "most leaked customers are named correctly",
    "q9_link_test.wrong": "no link names the wrong customer (link only when exactly one row is consistent)",
    "q10_find_disguised_test.kinds": "the kinds found in other messages, in order of appearance",
    "q10_find_disguised_test.recall": "almost every disguised secret of other messages is found",
    "q10_find_disguised_test.false_positives": "no harmless look-alike (order number, date, version, handle, other "
                                               "number) is flagged",
}
