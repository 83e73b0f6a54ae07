"""Training a "carloan" model version the way a training pipeline would for driftloop.

One recipe for the first model (trained in the demo's process) and for every
retrain (``python -m monitor.cli.demo.train``, launched by driftloop):

1. fit a scikit-learn pipeline (scaled numbers, one-hot categories with missing
   values as their own category, logistic regression) on the labeled rows;
2. score the baseline rows with it and build the driftloop baseline from them,
   with a seeded reference sample for the HTML drift reports;
3. in one MLflow run: log the baseline (``monitor.baseline.log_baseline``) first,
   then the model, registered under the model's name. The baseline is there
   before the version exists, so whoever sees the version can load it; the run's
   ``tags`` carry ``driftloop.idempotency_key`` for a retrain driftloop launched.

Only scikit-learn's own estimators are in the pipeline, so the registered model
loads anywhere scikit-learn does (``mlflow.sklearn.load_model``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from monitor.baseline import Baseline, build_baseline, log_baseline, reference_sample
from monitor.cli.demo.world import LABEL

__all__ = [
    "CATEGORICAL",
    "FLAGS",
    "NUMERIC",
    "TrainedVersion",
    "fit_model",
    "quiet_mlflow",
    "register_version",
    "scored",
]

NUMERIC = ("car_value", "age", "credit_score", "loan_duration_months", "num_prev_loans")
CATEGORICAL = ("salary_range", "size_of_downpayment")
FLAGS = ("repaid_loan_on_prev_car",)
SAMPLE_ROWS = 2000


@dataclass(frozen=True)
class TrainedVersion:
    version: str
    run_id: str
    accuracy: float  # on the baseline rows
    rows: int  # rows the model was fitted on


def quiet_mlflow() -> None:
    """No progress bars, run URLs or advisory warnings from MLflow in the demo's output."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    for name in ("mlflow", "alembic", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)


def fit_model(features: pd.DataFrame, labels: np.ndarray) -> Any:
    """The pipeline fitted on ``features`` (the eight example features) and 0/1 ``labels``."""
    from sklearn.compose import make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categories = make_pipeline(
        SimpleImputer(missing_values=None, strategy="constant", fill_value="unknown"),
        OneHotEncoder(handle_unknown="ignore"))
    columns = make_column_transformer(
        (StandardScaler(), list(NUMERIC)), (categories, list(CATEGORICAL)),
        ("passthrough", list(FLAGS)))
    model = make_pipeline(columns, LogisticRegression(max_iter=1000))
    return model.fit(features, labels)


def scored(model: Any, features: pd.DataFrame, labels: np.ndarray) -> pd.DataFrame:
    """``features`` with the model's ``prediction`` and ``score`` and the true label."""
    frame = features.reset_index(drop=True).copy()
    frame["prediction"] = np.asarray(model.predict(features), dtype=np.int64)
    frame["score"] = np.asarray(model.predict_proba(features)[:, 1], np.float64).round(4)
    frame[LABEL] = np.asarray(labels, dtype=np.int64)
    return frame


def register_version(model: Any, baseline_rows: pd.DataFrame, *, model_name: str,
                     tracking_uri: str, seed: int, tags: Mapping[str, str],
                     description: str, fitted_rows: int) -> TrainedVersion:
    """Build the baseline of ``baseline_rows`` (a :func:`scored` frame), then log it and
    the model in one run and register the model; returns the new version."""
    import mlflow
    import mlflow.sklearn

    quiet_mlflow()
    baseline = _baseline(baseline_rows, model_name, seed)
    sample = reference_sample(baseline_rows, baseline, SAMPLE_ROWS, seed)
    accuracy = float((baseline_rows["prediction"] == baseline_rows[LABEL]).mean())
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    with mlflow.start_run(run_name=f"{model_name}-{tags.get('demo.kind', 'train')}",
                          tags=dict(tags), description=description) as run:
        mlflow.log_params({"rows": fitted_rows, "seed": seed,
                           "estimator": "LogisticRegression"})
        mlflow.log_metric("accuracy", accuracy)
        log_baseline(baseline, run.info.run_id, sample=sample, tracking_uri=tracking_uri)
        # MLflow stores scikit-learn models with skops, which loads only the types named
        # here besides its own: the one-hot encoder's output dtype is a numpy.dtype
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name=model_name,
                                        pip_requirements=["scikit-learn"],
                                        skops_trusted_types=["numpy.dtype"])
    version = str(info.registered_model_version)
    return TrainedVersion(version, run.info.run_id, accuracy, fitted_rows)


def _baseline(frame: pd.DataFrame, model_name: str, seed: int) -> Baseline:
    return build_baseline(frame, model_name, target=LABEL, prediction="prediction",
                          score="score", seed=seed, source=f"{model_name} training rows")
