"""A seeded synthetic "carloan" dataset with known shifts, for the demo and the tests.

Eight features of the kinds a credit model sees: two numeric amounts, a numeric
age and score, a boolean, two string categoricals and a low-cardinality integer.
A logistic ground truth decides ``repaid``; the "model" is a fixed logistic
score of the same features, so its predictions are right most of the time.

The monitoring stream has ``WINDOWS`` windows of ``window_rows`` rows each; the
truth of what changed where is :data:`SHIFTS` (drifted (feature, window) cells),
:data:`MISSING_SHIFT` (a feature whose missing rate doubles), :data:`NEW_CATEGORY`
(a category never seen in the reference) and :data:`CONCEPT_SHIFT_WINDOW` (labels
change their relation to the features: performance drops without data drift).
Windows are numbered from 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "CONCEPT_SHIFT_WINDOW",
    "FEATURES",
    "MISSING_SHIFT",
    "NEW_CATEGORY",
    "SHIFTS",
    "WINDOWS",
    "ExampleData",
    "ExampleFiles",
    "generate",
    "repaid_logit",
    "sample_features",
    "write_example",
]

FEATURES = (
    "car_value",
    "salary_range",
    "repaid_loan_on_prev_car",
    "size_of_downpayment",
    "age",
    "credit_score",
    "loan_duration_months",
    "num_prev_loans",
)
WINDOWS = 6
SALARY = ("0 - 20K €", "20K - 40K €", "40K - 60K €", "60K+ €")
DOWNPAYMENT = ("0%", "10%", "20%", "30%")
DURATIONS = (12, 24, 36, 48, 60)

# (feature, window) cells whose distribution is shifted on purpose
SHIFTS: frozenset[tuple[str, int]] = frozenset({
    ("car_value", 3), ("credit_score", 3), ("salary_range", 3),
    ("car_value", 5), ("age", 5), ("size_of_downpayment", 5),
    ("loan_duration_months", 5), ("repaid_loan_on_prev_car", 5),
})
# feature -> (window, reference missing rate, window missing rate)
MISSING_SHIFT = ("salary_range", 2, 0.15, 0.30)
# feature, window, the new category and its share of the window (small: a quality
# finding, not a distribution shift)
NEW_CATEGORY = ("size_of_downpayment", 4, "50%", 0.004)
CONCEPT_SHIFT_WINDOW = 6


@dataclass(frozen=True)
class ExampleData:
    reference: pd.DataFrame  # features, request_id, timestamp, prediction, score, repaid
    current: pd.DataFrame  # features, request_id, timestamp, prediction, score (no labels)
    labels: pd.DataFrame  # request_id, repaid (a subset of the current rows, shuffled)
    window_rows: int


@dataclass(frozen=True)
class ExampleFiles:
    reference: Path
    current: Path
    labels: Path
    window_rows: int


def sample_features(rng: np.random.Generator, n: int, window: int) -> pd.DataFrame:
    """``n`` rows of the eight features as window ``window`` has them (0: the reference;
    the shifted cells of :data:`SHIFTS` and the quality findings apply by window)."""
    shifted = {feature for feature, w in SHIFTS if w == window}
    car_value = rng.lognormal(np.log(14000.0), 0.45, n)
    if "car_value" in shifted:
        car_value *= 1.35 if window == 3 else 0.7
    salary_p = np.array([0.3, 0.35, 0.22, 0.13])
    if "salary_range" in shifted:
        salary_p = np.array([0.1, 0.25, 0.35, 0.30])
    salary = rng.choice(np.array(SALARY, dtype=object), n, p=salary_p)
    missing_rate = MISSING_SHIFT[3] if window == MISSING_SHIFT[1] else MISSING_SHIFT[2]
    salary[rng.random(n) < missing_rate] = None
    repaid_prev = rng.random(n) < (0.45 if "repaid_loan_on_prev_car" in shifted else 0.7)
    down_p = np.array([0.2, 0.35, 0.3, 0.15])
    if "size_of_downpayment" in shifted:
        down_p = np.array([0.45, 0.35, 0.15, 0.05])
    downpayment = rng.choice(np.array(DOWNPAYMENT, dtype=object), n, p=down_p)
    if window == NEW_CATEGORY[1]:
        downpayment[rng.random(n) < NEW_CATEGORY[3]] = NEW_CATEGORY[2]
    age = np.clip(rng.normal(41.0, 11.0, n), 18, 85).round()
    if "age" in shifted:
        age = np.clip(rng.normal(29.0, 7.0, n), 18, 85).round()
    credit = rng.normal(650.0, 60.0, n)
    if "credit_score" in shifted:
        credit = credit - 55.0
    dur_p = np.array([0.1, 0.25, 0.35, 0.2, 0.1])
    if "loan_duration_months" in shifted:
        dur_p = np.array([0.02, 0.08, 0.2, 0.3, 0.4])
    duration = rng.choice(np.array(DURATIONS), n, p=dur_p)
    prev_loans = rng.poisson(1.2, n).clip(0, 6)
    return pd.DataFrame({
        "car_value": car_value.round(2),
        "salary_range": salary,
        "repaid_loan_on_prev_car": repaid_prev,
        "size_of_downpayment": downpayment,
        "age": age.astype(np.int64),
        "credit_score": credit.round(1),
        "loan_duration_months": duration.astype(np.int64),
        "num_prev_loans": prev_loans.astype(np.int64),
    })


def repaid_logit(frame: pd.DataFrame) -> np.ndarray:
    """The ground truth's log-odds of ``repaid`` (before the noise of the draw); the
    example's "model" scores the same expression."""
    salary_level = frame["salary_range"].map({s: i for i, s in enumerate(SALARY)}).fillna(1.0)
    down_level = frame["size_of_downpayment"].map(
        {d: i for i, d in enumerate(DOWNPAYMENT)}).fillna(3.0)
    return np.asarray(
        -0.2
        + 0.025 * (frame["credit_score"] - 650.0)
        - 1.2 * (np.log(frame["car_value"]) - np.log(14000.0))
        + 0.45 * salary_level
        + 0.6 * down_level
        + 0.8 * frame["repaid_loan_on_prev_car"].astype(float)
        - 0.012 * (frame["loan_duration_months"] - 36)
        - 0.15 * frame["num_prev_loans"],
        dtype=np.float64,
    )


def _with_model(rng: np.random.Generator, frame: pd.DataFrame, concept_shift: bool) -> pd.DataFrame:
    logit = repaid_logit(frame)
    score = 1.0 / (1.0 + np.exp(-logit))
    # a concept shift: the same customers repay less often than the model believes
    truth_logit = logit - 2.5 if concept_shift else logit
    repaid = (rng.random(len(frame)) < 1.0 / (1.0 + np.exp(-1.6 * truth_logit))).astype(np.int64)
    frame = frame.copy()
    frame["prediction"] = (score >= 0.5).astype(np.int64)
    frame["score"] = score.round(4)
    frame["repaid"] = repaid
    return frame


def generate(seed: int = 7, reference_rows: int = 20_000, window_rows: int = 5_000) -> ExampleData:
    """The reference frame, the monitoring frame (``WINDOWS`` windows) and its labels."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2019-01-01T00:00:00Z")
    reference = _with_model(rng, sample_features(rng, reference_rows, 0), concept_shift=False)
    reference.insert(0, "request_id", np.arange(reference_rows, dtype=np.int64))
    reference.insert(1, "timestamp", pd.date_range(start, periods=reference_rows, freq="2min"))
    windows = []
    for window in range(1, WINDOWS + 1):
        part = _with_model(rng, sample_features(rng, window_rows, window),
                           concept_shift=window == CONCEPT_SHIFT_WINDOW)
        windows.append(part)
    current = pd.concat(windows, ignore_index=True)
    n = len(current)
    current.insert(0, "request_id", np.arange(1_000_000, 1_000_000 + n, dtype=np.int64))
    current_start = pd.Timestamp("2019-06-01T00:00:00Z")
    current.insert(1, "timestamp", pd.date_range(current_start, periods=n, freq="1min"))
    # labels arrive for most rows, in another order than the predictions
    labeled = current.loc[rng.random(n) < 0.8, ["request_id", "repaid"]]
    labels = labeled.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return ExampleData(
        reference=reference,
        current=current.drop(columns=["repaid"]),
        labels=labels,
        window_rows=window_rows,
    )


def write_example(directory: str | Path, seed: int = 7, reference_rows: int = 20_000,
                  window_rows: int = 5_000) -> ExampleFiles:
    """Write ``reference.csv``, ``current.csv`` and ``labels.csv`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data = generate(seed, reference_rows, window_rows)
    files = ExampleFiles(
        reference=directory / "reference.csv",
        current=directory / "current.csv",
        labels=directory / "labels.csv",
        window_rows=window_rows,
    )
    time_format = "%Y-%m-%dT%H:%M:%SZ"
    data.reference.to_csv(files.reference, index=False, date_format=time_format)
    data.current.to_csv(files.current, index=False, date_format=time_format)
    data.labels.to_csv(files.labels, index=False)
    return files
