"""Baselines in MLflow and on disk: log to a run, load from a path or a registry URI.

Accepted sources for :func:`load_baseline`:

- a file path (``./baseline.json``)
- ``runs:/<run_id>`` or ``runs:/<run_id>/driftloop/baseline.json``
- ``models:/<name>@<alias>`` or ``models:/<name>/<version>``: the baseline artifact
  of the run that produced that model version
- ``mlflow:<alias>`` with ``model_name`` given (the config's ``baseline:`` form)

A baseline's optional reference sample sits beside it: ``driftloop/reference.parquet``
in the run, ``<name>.reference.parquet`` next to a ``<name>.json`` file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from monitor.baseline.model import Baseline
from monitor.errors import BaselineError, InputError

__all__ = [
    "ARTIFACT_PATH",
    "SAMPLE_ARTIFACT_PATH",
    "configure_mlflow_requests",
    "load_baseline",
    "load_reference_sample",
    "log_baseline",
    "resolve_run_uri",
    "sample_path_for",
]

ARTIFACT_PATH = "driftloop/baseline.json"
SAMPLE_ARTIFACT_PATH = "driftloop/reference.parquet"


def configure_mlflow_requests(timeout_seconds: int | None, max_retries: int | None) -> None:
    """How MLflow's HTTP client waits and retries, for every MLflow call of this process
    (``mlflow.request_timeout`` and ``mlflow.request_max_retries``; None keeps MLflow's
    default). MLflow reads these variables at each request; its defaults retry a refused
    connection for minutes, which would hold a job and hide an outage from /readyz.
    Values the operator set in the environment win."""
    for name, value in (("MLFLOW_HTTP_REQUEST_TIMEOUT", timeout_seconds),
                        ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", max_retries)):
        if value is not None:
            os.environ.setdefault(name, str(value))


def sample_path_for(baseline_path: str | Path) -> Path:
    """``out/baseline.json`` -> ``out/baseline.reference.parquet``."""
    path = Path(baseline_path)
    return path.with_name(f"{path.stem}.reference.parquet")


def _client(tracking_uri: str | None) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def log_baseline(baseline: Baseline, run_id: str, sample: pd.DataFrame | None = None,
                 tracking_uri: str | None = None) -> str:
    """Log ``driftloop/baseline.json`` (and the sample as ``driftloop/reference.parquet``)
    to the run; returns the baseline's ``runs:/`` URI."""
    client = _client(tracking_uri)
    client.log_dict(run_id, baseline.to_dict(), ARTIFACT_PATH)
    if sample is not None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(SAMPLE_ARTIFACT_PATH).name
            sample.to_parquet(path, index=False)
            client.log_artifact(run_id, str(path), str(Path(SAMPLE_ARTIFACT_PATH).parent))
    return f"runs:/{run_id}/{ARTIFACT_PATH}"


def resolve_run_uri(uri: str, model: str | None = None,
                    tracking_uri: str | None = None) -> str | None:
    """The ``runs:/<id>`` URI behind a registry form, or None for a plain path."""
    if uri.startswith("mlflow:"):
        if not model:
            raise BaselineError(f"baseline {uri}: an 'mlflow:<alias>' baseline needs the "
                                "model name (the config's model key or --model)")
        uri = f"models:/{model}@{uri[len('mlflow:'):]}"
    if uri.startswith("runs:/"):
        run_id = uri[len("runs:/"):].split("/", 1)[0]
        if not run_id:
            raise BaselineError(f"baseline {uri}: expected runs:/<run_id>[/path]")
        return f"runs:/{run_id}"
    if not uri.startswith("models:/"):
        return None
    spec = uri[len("models:/"):]
    client = _client(tracking_uri)
    try:
        if "@" in spec:
            name, alias = spec.split("@", 1)
            version = client.get_model_version_by_alias(name, alias)
        else:
            name, _, number = spec.partition("/")
            version = client.get_model_version(name, number)
    except Exception as exc:
        raise BaselineError(f"baseline {uri}: not found in the registry "
                            f"({_first_line(exc)})") from None
    if not version.run_id:
        raise BaselineError(f"baseline {uri}: model version {version.version} has no run; "
                            "log the baseline to the training run and register from it")
    return f"runs:/{version.run_id}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_baseline(uri: str | Path, model: str | None = None,
                  tracking_uri: str | None = None) -> Baseline:
    """A baseline from a file or MLflow; raises BaselineError naming the source.
    ``model`` names the registered model for the ``mlflow:<alias>`` form."""
    text = str(uri)
    run_uri = resolve_run_uri(text, model, tracking_uri)
    if run_uri is None:
        return Baseline.load(Path(text))
    artifact = text if text.startswith("runs:/") and text.count("/") > 1 \
        else f"{run_uri}/{ARTIFACT_PATH}"
    if tracking_uri is not None:
        import mlflow

        mlflow.set_tracking_uri(tracking_uri)
    from mlflow.artifacts import download_artifacts

    try:
        with tempfile.TemporaryDirectory() as tmp:
            local = download_artifacts(artifact_uri=artifact, dst_path=tmp)
            data = json.loads(Path(local).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BaselineError(f"baseline {artifact}: not valid JSON ({exc})") from None
    except Exception as exc:
        raise BaselineError(f"baseline {artifact}: cannot be downloaded "
                            f"({_first_line(exc)})") from None
    return Baseline.from_dict(data, source=f"baseline {artifact}")


def load_reference_sample(uri: str | Path, model: str | None = None,
                          tracking_uri: str | None = None) -> pd.DataFrame | None:
    """The reference sample stored beside a baseline, or None when there is none."""
    text = str(uri)
    run_uri = resolve_run_uri(text, model, tracking_uri)
    if run_uri is None:
        path = sample_path_for(text)
        if not path.exists():
            return None
        try:
            return pd.read_parquet(path)
        except Exception as exc:
            raise InputError(f"reference sample {path}: cannot be read "
                             f"({_first_line(exc)})") from None
    if tracking_uri is not None:
        import mlflow

        mlflow.set_tracking_uri(tracking_uri)
    from mlflow.artifacts import download_artifacts

    try:
        with tempfile.TemporaryDirectory() as tmp:
            local = download_artifacts(artifact_uri=f"{run_uri}/{SAMPLE_ARTIFACT_PATH}",
                                       dst_path=tmp)
            return pd.read_parquet(local)
    except Exception:
        # a baseline logged without a sample is normal; the caller says what is missing
        return None
