"""Seeded synthetic data sets, and the small data sets that scikit-learn ships.

Every generator takes ``seed: int`` and returns the same data for the same seed, on any
machine, with no download. Personal data here is fake (Faker), made to look real enough
that detecting and removing it is a real exercise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # only the functions that build a DataFrame load pandas (its cost: benchmarks/lab_times.py)
    import pandas as pd

# ------------------------------------------------------------------------------ helpers


def luhn_checksum_digit(partial: str) -> str:
    """The digit that makes ``partial + digit`` pass the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:  # these positions are doubled once the check digit is appended
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return str((10 - total % 10) % 10)


def card_number(rng: np.random.Generator, valid: bool = True) -> str:
    """A 16-digit card-like number; it passes the Luhn check iff ``valid``."""
    prefix = rng.choice(["4", "51", "52", "37"])
    body = prefix + "".join(str(d) for d in rng.integers(0, 10, size=15 - len(prefix)))
    check = luhn_checksum_digit(body)
    if not valid:
        check = str((int(check) + 1 + int(rng.integers(0, 8))) % 10)
    return body + check


def _api_key(rng: np.random.Generator) -> str:
    alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"))
    kind = rng.integers(0, 2)
    if kind == 0:
        return "sk_live_" + "".join(rng.choice(alphabet, size=24))
    upper = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"))
    return "AKIA" + "".join(rng.choice(upper, size=16))


def _faker(seed: int):
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(seed)  # per-instance: seeding Faker's class would leak into other code
    return fake


# ------------------------------------------------------------------------------ people

PEOPLE_DIRECT_IDENTIFIERS = ("full_name", "email", "phone", "national_id", "card_number")
PEOPLE_QUASI_IDENTIFIERS = ("age", "zip_code", "gender")


def people(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """A customer table of a fictional retailer, with direct identifiers, quasi-identifiers,
    a free-text notes column that sometimes contains contact details, and useful columns.

    The quasi-identifiers are drawn from a small population (a few towns, a few ages per
    decade) so that generalising them to k-anonymity is possible without destroying them.
    """
    if n < 20:
        raise ValueError("people() needs n >= 20 so that k-anonymity exercises make sense")
    rng = np.random.default_rng(seed)
    fake = _faker(seed)
    zip_prefixes = rng.choice(np.arange(100, 990), size=4, replace=False)
    rows = []
    for i in range(n):
        first, last = fake.first_name(), fake.last_name()
        email = f"{first}.{last}{int(rng.integers(1, 99))}@{fake.free_email_domain()}".lower()
        phone = f"({int(rng.integers(201, 989))}) {int(rng.integers(200, 999))}-{int(rng.integers(0, 10000)):04d}"
        zip_code = f"{int(rng.choice(zip_prefixes))}{int(rng.integers(0, 100)):02d}"
        age = int(np.clip(rng.normal(42, 13), 18, 90))
        spend = float(np.round(rng.gamma(2.0, 350.0) * (1 + age / 100), 2))
        note_kind = rng.integers(0, 4)
        if note_kind == 0:
            note = f"Prefers contact by email at {email}."
        elif note_kind == 1:
            note = f"Asked us to call back on {phone} after 5pm."
        elif note_kind == 2:
            note = "Loyal customer; interested in the spring catalogue."
        else:
            note = "Returned an item; refund issued."
        rows.append(
            {
                "customer_id": f"C{100000 + i}",
                "full_name": f"{first} {last}",
                "email": email,
                "phone": phone,
                "national_id": f"{int(rng.integers(100, 900)):03d}-{int(rng.integers(10, 100)):02d}-{int(rng.integers(1000, 10000)):04d}",
                "card_number": card_number(rng),
                "age": age,
                "gender": str(rng.choice(["F", "M", "X"], p=[0.49, 0.49, 0.02])),
                "zip_code": zip_code,
                "annual_spend": spend,
                "visits": int(rng.poisson(6 + spend / 400)),
                "notes": note,
            }
        )
    import pandas as pd

    df = pd.DataFrame(rows)
    churn_logit = (
        1.8 - 0.0012 * df["annual_spend"] - 0.12 * df["visits"] - 0.06 * (df["age"] - 42) + rng.normal(0, 0.6, size=n)
    )
    df["churned"] = (churn_logit > 0).astype(int)
    return df


def public_register(customers: pd.DataFrame, seed: int = 0, fraction: float = 0.8) -> pd.DataFrame:
    """A public list (think voter roll or club directory) naming most of the customers with
    their age, gender and zip code: the auxiliary data of a linkage attack (Sweeney 2002)."""
    rng = np.random.default_rng(seed)
    keep = rng.random(len(customers)) < fraction
    register = customers.loc[keep, ["full_name", "age", "gender", "zip_code"]]
    return register.sample(frac=1.0, random_state=int(rng.integers(0, 2**31))).reset_index(drop=True)


# ------------------------------------------------------------------------- chat transcript


@dataclass(frozen=True)
class Secret:
    """A piece of sensitive text planted in a transcript, with its kind."""

    kind: str  # "email" | "phone" | "national_id" | "api_key" | "card_number"
    text: str


@dataclass(frozen=True)
class Transcript:
    """A chat an employee is about to paste into an AI tool, with its ground truth."""

    messages: tuple[str, ...]
    secrets: tuple[Secret, ...]
    decoys: tuple[str, ...]  # look like secrets, are not (e.g. 16-digit order numbers failing Luhn)


def chat_transcript(seed: int = 0, n_messages: int = 14) -> Transcript:
    """A support-desk chat that mixes harmless text with PII and credentials.

    Decoys are planted too: order numbers of 16 digits that fail the Luhn check, and
    version strings, so that a detector that flags every long number is caught out.
    """
    rng = np.random.default_rng(seed)
    fake = _faker(seed + 7919)
    secrets: list[Secret] = []
    decoys: list[str] = []
    messages: list[str] = []
    templates = [
        "email",
        "phone",
        "national_id",
        "api_key",
        "card_number",
        "decoy_order",
        "plain",
        "plain",
    ]
    for _ in range(n_messages):
        kind = str(rng.choice(templates))
        name = fake.first_name()
        if kind == "email":
            value = f"{name.lower()}.{fake.last_name().lower()}@{fake.free_email_domain()}"
            messages.append(f"Customer {name} says the invoice never arrived, please resend to {value} today.")
        elif kind == "phone":
            value = f"({int(rng.integers(201, 989))}) {int(rng.integers(200, 999))}-{int(rng.integers(0, 10000)):04d}"
            messages.append(f"{name} wants a callback on {value}, the line was busy earlier.")
        elif kind == "national_id":
            value = f"{int(rng.integers(100, 900)):03d}-{int(rng.integers(10, 100)):02d}-{int(rng.integers(1000, 10000)):04d}"
            messages.append(f"To verify identity {name} gave SSN {value} over chat, is that allowed?")
        elif kind == "api_key":
            value = _api_key(rng)
            messages.append(f"The export script fails with key {value}, can the AI fix the script?")
        elif kind == "card_number":
            raw = card_number(rng)
            value = " ".join(raw[i : i + 4] for i in range(0, 16, 4)) if rng.integers(0, 2) else raw
            messages.append(f"{name} paid with card {value} but the charge shows twice.")
        elif kind == "decoy_order":
            value = card_number(rng, valid=False)
            decoys.append(value)
            messages.append(f"Order {value} shipped with version 2.14.1 of the app; tracking not updated.")
            continue
        else:
            messages.append(f"{name} asks whether the {fake.color_name().lower()} model comes in a larger size.")
            continue
        secrets.append(Secret(kind, value))
    return Transcript(tuple(messages), tuple(secrets), tuple(decoys))


# ------------------------------------------------------------------------------ digits


@dataclass(frozen=True)
class Split:
    """Train/test arrays of a classification data set (features scaled to [0, 1])."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def digits(seed: int = 0, test_size: float = 0.3) -> Split:
    """scikit-learn's bundled 8x8 digits (1,797 images, no download), pixels in [0, 1],
    split with a seeded, stratified shuffle. Images are flattened to 64 float32 features.

    The split is cached like a model (keyed by seed, test size and scikit-learn's version):
    importing scikit-learn costs a kernel 1-2 s, which a warm lab run should not pay."""
    from importlib.metadata import version

    from aisec.cache import cached_state_dict

    def split() -> dict[str, Any]:
        import torch
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        data = load_digits()
        x = (data.data / 16.0).astype(np.float32)
        y = data.target.astype(np.int64)
        parts = train_test_split(x, y, test_size=test_size, random_state=seed, stratify=y)
        return {name: torch.from_numpy(part) for name, part in zip(("x_train", "x_test", "y_train", "y_test"), parts)}

    recipe = {"seed": seed, "test_size": test_size, "scikit-learn": version("scikit-learn")}
    arrays = cached_state_dict("digits-split", recipe, split)
    return Split(*(arrays[name].numpy() for name in ("x_train", "y_train", "x_test", "y_test")))


# ------------------------------------------------------------------------- loyalty-app leak


def loyalty_leak(customers: pd.DataFrame, seed: int = 0, fraction: float = 0.5) -> pd.DataFrame:
    """A leaked loyalty-app export naming about ``fraction`` of the customers, with their exact age,
    gender and zip code, their store visits this year and their spending rounded to the nearest
    100 (``spend_100``): auxiliary data richer than a public register, for a linkage attack on a
    release that keeps such columns exact."""
    rng = np.random.default_rng(seed)
    keep = rng.random(len(customers)) < fraction
    leak = customers.loc[keep, ["full_name", "age", "gender", "zip_code", "visits"]].copy()
    leak["spend_100"] = (customers.loc[keep, "annual_spend"] / 100).round().astype(int) * 100
    return leak.sample(frac=1.0, random_state=int(rng.integers(0, 2**31))).reset_index(drop=True)
