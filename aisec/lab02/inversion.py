"""Model inversion and attribute inference (Fredrikson et al. 2014, 2015): the scenario's parts.

* :class:`ConfidenceAPI` serves a trained classifier the way a prediction API does: rows in,
  confidence scores out. It counts the queries (and can enforce a budget) and carries the
  output-side defences as options: rounding the confidences, adding noise, returning the
  top-1 label only.
* :func:`medical_records` is a seeded, fake clinic table in the style of the warfarin-dosing
  study that Fredrikson et al. (2014) attacked: a sensitive genotype column, ordinary
  demographics, and the dose band a model predicts from all of them.
* :func:`encode_records`, :func:`records_classifier` and :func:`independent_digit_classifier`
  build the models that the lesson and the lab attack and measure with.

The attacks themselves (gradient ascent, query-based inversion, the MAP attribute estimator)
are not here: students write them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch and pandas load inside the functions that use them: importing this module stays cheap
    import pandas as pd
    from torch import nn

    from aisec.models import MLP

# ----------------------------------------------------------------------------- the API


class QueryBudgetExceeded(RuntimeError):
    """Raised by :meth:`ConfidenceAPI.query` when a query would exceed ``max_queries``."""


class ConfidenceAPI:
    """A classifier behind a prediction API that returns one confidence vector per row.

    Defences, applied in this order to the softmax output ``p`` (shape ``(n, n_classes)``):

    * ``noise_std > 0``: add Gaussian noise of that standard deviation, clip at 0 and
      renormalise each row to sum to 1 (fresh noise on every query, seeded by ``seed``);
    * ``decimals``: round every confidence to that many decimals (``1`` gives 0.0, 0.1, ...);
    * ``top1_only``: return a one-hot vector of the predicted label instead of scores.

    ``n_queries`` counts rows answered (a batch of 50 rows costs 50 queries). With
    ``max_queries`` set, a query that would go past the budget raises
    :class:`QueryBudgetExceeded` and is not answered.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        decimals: int | None = None,
        noise_std: float = 0.0,
        top1_only: bool = False,
        max_queries: int | None = None,
        seed: int = 0,
    ) -> None:
        if decimals is not None and decimals < 0:
            raise ValueError("decimals must be >= 0 or None")
        if noise_std < 0:
            raise ValueError("noise_std must be >= 0")
        self._model = model
        self.decimals = decimals
        self.noise_std = float(noise_std)
        self.top1_only = bool(top1_only)
        self.max_queries = max_queries
        self.n_queries = 0
        self._rng = np.random.default_rng(seed)

    def __repr__(self) -> str:
        return (
            f"ConfidenceAPI(decimals={self.decimals}, noise_std={self.noise_std}, "
            f"top1_only={self.top1_only}, n_queries={self.n_queries}, max_queries={self.max_queries})"
        )

    @property
    def n_classes(self) -> int:
        from torch import nn

        head = getattr(self._model, "head", None)
        if isinstance(head, nn.Linear):
            return int(head.out_features)
        raise AttributeError("the wrapped model does not expose its number of classes")

    def reset(self) -> None:
        """Set the query counter back to zero."""
        self.n_queries = 0

    def query(self, x: np.ndarray) -> np.ndarray:
        """Confidence scores for the rows of ``x`` (shape ``(n, d)`` or ``(d,)``).

        Returns a float64 array of shape ``(n, n_classes)`` (``(n_classes,)`` for one row).
        """
        arr = np.asarray(x, dtype=np.float32)
        single = arr.ndim == 1
        if single:
            arr = arr[None, :]
        if arr.ndim != 2:
            raise ValueError(f"query() takes rows of features, got an array of shape {np.shape(x)}")
        n = arr.shape[0]
        if self.max_queries is not None and self.n_queries + n > self.max_queries:
            raise QueryBudgetExceeded(
                f"this query of {n} rows would exceed the budget of {self.max_queries} "
                f"({self.n_queries} already used)"
            )
        self.n_queries += n
        from aisec.models import predict_proba

        p = predict_proba(self._model, arr).astype(np.float64)
        if self.noise_std > 0:
            p = np.clip(p + self._rng.normal(0.0, self.noise_std, size=p.shape), 0.0, None)
            total = p.sum(axis=1, keepdims=True)
            p = np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / p.shape[1])
        if self.decimals is not None:
            p = np.round(p, self.decimals)
        if self.top1_only:
            p = np.eye(p.shape[1])[p.argmax(axis=1)]
        return p[0] if single else p


# ------------------------------------------------------------------------ medical records

#: The sensitive attribute's values (a VKORC1-like genotype), and their population frequencies.
GENOTYPES: tuple[str, ...] = ("GG", "AG", "AA")
GENOTYPE_PRIOR: dict[str, float] = {"GG": 0.40, "AG": 0.42, "AA": 0.18}
#: The label the clinic's model predicts.
DOSE_BANDS: tuple[str, ...] = ("low", "medium", "high")
#: Feature columns of :func:`encode_records`, in order.
FEATURES: tuple[str, ...] = (
    "age",
    "male",
    "weight",
    "smoker",
    "amiodarone",
    "genotype_GG",
    "genotype_AG",
    "genotype_AA",
)


def medical_records(n: int = 1200, seed: int = 0) -> pd.DataFrame:
    """A fake clinic's anticoagulant records, one patient a row.

    Columns: ``patient_id`` (str), ``age`` (int, years), ``sex`` ("F"/"M"), ``weight_kg``
    (float), ``smoker`` (bool), ``amiodarone`` (bool, an interacting drug), ``genotype``
    (the sensitive attribute, one of :data:`GENOTYPES`, drawn from :data:`GENOTYPE_PRIOR`),
    ``weekly_dose_mg`` (float) and ``dose_band`` (one of :data:`DOSE_BANDS`). The dose depends
    strongly on the genotype, as warfarin's does on VKORC1, so a model of the dose band
    carries information about the genotype.
    """
    if n < 10:
        raise ValueError("medical_records() needs n >= 10")
    rng = np.random.default_rng(seed)
    sex = rng.choice(np.array(["F", "M"]), size=n)
    age = np.clip(np.round(rng.normal(60, 13, size=n)), 20, 90).astype(int)
    weight = np.round(np.clip(rng.normal(np.where(sex == "M", 84.0, 70.0), 13.0), 40, 150), 1)
    smoker = rng.random(n) < 0.2
    amiodarone = rng.random(n) < 0.15
    genotype = rng.choice(np.array(GENOTYPES), size=n, p=[GENOTYPE_PRIOR[g] for g in GENOTYPES])
    factor = np.select([genotype == "GG", genotype == "AG"], [1.0, 0.72], default=0.45)
    dose = (
        38.0
        * factor
        * (1.0 - 0.007 * (age - 60))
        * np.sqrt(weight / 75.0)
        * np.where(amiodarone, 0.75, 1.0)
        * np.where(smoker, 1.12, 1.0)
        * rng.lognormal(0.0, 0.10, size=n)
    )
    band = np.select([dose < 22.0, dose < 32.0], ["low", "medium"], default="high")
    import pandas as pd

    return pd.DataFrame(
        {
            "patient_id": [f"P{10000 + i}" for i in range(n)],
            "age": age,
            "sex": sex,
            "weight_kg": weight,
            "smoker": smoker,
            "amiodarone": amiodarone,
            "genotype": genotype,
            "weekly_dose_mg": np.round(dose, 1),
            "dose_band": band,
        }
    )


def encode_records(df: pd.DataFrame) -> np.ndarray:
    """The model's input for each row of a :func:`medical_records` table.

    Returns float32 of shape ``(len(df), len(FEATURES))``: age/100, male, weight/100,
    smoker, amiodarone, then the genotype one-hot (GG, AG, AA).
    """
    geno = df["genotype"].to_numpy()
    unknown = set(np.unique(geno)) - set(GENOTYPES)
    if unknown:
        raise ValueError(f"unknown genotype values: {sorted(unknown)}")
    cols = [
        df["age"].to_numpy(dtype=np.float64) / 100.0,
        (df["sex"].to_numpy() == "M").astype(np.float64),
        df["weight_kg"].to_numpy(dtype=np.float64) / 100.0,
        df["smoker"].to_numpy(dtype=bool).astype(np.float64),
        df["amiodarone"].to_numpy(dtype=bool).astype(np.float64),
    ] + [(geno == g).astype(np.float64) for g in GENOTYPES]
    return np.stack(cols, axis=1).astype(np.float32)


def dose_labels(df: pd.DataFrame) -> np.ndarray:
    """The dose band of each row as an int64 index into :data:`DOSE_BANDS`."""
    index = {b: i for i, b in enumerate(DOSE_BANDS)}
    return np.array([index[b] for b in df["dose_band"]], dtype=np.int64)


def records_classifier(
    df: pd.DataFrame,
    *,
    hidden: Sequence[int] = (32,),
    epochs: int = 40,
    lr: float = 1e-2,
    weight_decay: float = 0.0,
    seed: int = 0,
) -> MLP:
    """The clinic's dose-band model: an MLP on :func:`encode_records`, trained and cached."""
    from aisec.models import cached_classifier

    return cached_classifier(
        encode_records(df), dose_labels(df), name="records-mlp", hidden=hidden, epochs=epochs, lr=lr,
        weight_decay=weight_decay, seed=seed, n_classes=len(DOSE_BANDS),
    )


# ------------------------------------------------------------------- measuring inversions


class LinearJudge:
    """A fitted multinomial logistic regression, held as its coefficients: the class scores are
    ``x @ coef.T + intercept``, exactly as scikit-learn's ``LogisticRegression`` computes them, so
    ``predict``, ``predict_proba`` and ``score`` give its answers without importing scikit-learn."""

    def __init__(self, coef: np.ndarray, intercept: np.ndarray, classes: np.ndarray):
        self.coef_, self.intercept_, self.classes_ = coef, intercept, classes

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) @ self.coef_.T + self.intercept_

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        scores = self.decision_function(x)
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        return scores / scores.sum(axis=1, keepdims=True)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.classes_[self.decision_function(x).argmax(axis=1)]

    def score(self, x: np.ndarray, y: np.ndarray) -> float:
        """Accuracy on ``(x, y)``."""
        return float(np.mean(self.predict(x) == np.asarray(y)))


def independent_digit_classifier(x: np.ndarray, y: np.ndarray, seed: int = 0) -> LinearJudge:
    """A judge of reconstructed digits, trained on data the target never saw: scikit-learn's
    ``LogisticRegression(C=1.0, max_iter=2000)``, fitted once per recipe (the data's fingerprint, the
    seed, the scikit-learn version) and cached, so that later runs load its coefficients instead of
    importing scikit-learn (about 2 s of CPU).

    Pass a split the attacked model was *not* trained on (e.g. ``digits(seed).x_test``).
    Returns a :class:`LinearJudge` (``predict``/``predict_proba``/``score`` on rows of 64 pixels).
    """
    import hashlib
    from importlib.metadata import version

    from aisec.cache import cached_state_dict

    xs, ys = np.ascontiguousarray(x, dtype=np.float64), np.ascontiguousarray(y)
    digest = hashlib.sha256()
    for a in (xs, ys):
        digest.update(f"{a.dtype}{a.shape}".encode() + a.tobytes())
    recipe = {"C": 1.0, "max_iter": 2000, "seed": seed, "data": digest.hexdigest()[:16],
              "sklearn": version("scikit-learn")}

    def fit() -> dict:
        import torch
        from sklearn.linear_model import LogisticRegression

        judge = LogisticRegression(C=1.0, max_iter=2000, random_state=seed).fit(xs, ys)
        return {name: torch.as_tensor(np.ascontiguousarray(value))
                for name, value in (("coef", judge.coef_), ("intercept", judge.intercept_), ("classes", judge.classes_))}

    state = cached_state_dict("digits-judge", recipe, fit)
    return LinearJudge(*(state[name].numpy() for name in ("coef", "intercept", "classes")))


def class_means(x: np.ndarray, y: np.ndarray, n_classes: int = 10) -> np.ndarray:
    """Mean input of each class, shape ``(n_classes, d)``: the 'typical member' an inversion
    is compared with."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    return np.stack([x[y == c].mean(axis=0) for c in range(n_classes)])
