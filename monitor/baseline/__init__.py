"""The training baseline (design section 4): what a window is compared with.

- :mod:`~monitor.baseline.model`: ``Baseline``, the versioned JSON document, and its
  column roles;
- :mod:`~monitor.baseline.build`: ``build_baseline`` from a pandas frame, at training time;
- :mod:`~monitor.baseline.performance`: task inference and reference performance;
- :mod:`~monitor.baseline.loader`: files, ``runs:/``, ``models:/name@alias`` and
  ``mlflow:<alias>``; logging a baseline to an MLflow run;
- :mod:`~monitor.baseline.watch`: baselines that follow an MLflow registry alias.

May import: ``monitor.config``, ``monitor.tables``, ``monitor.errors``, ``detectors``.
"""

from monitor.baseline.build import build_baseline, reference_sample
from monitor.baseline.loader import (
    ARTIFACT_PATH,
    SAMPLE_ARTIFACT_PATH,
    configure_mlflow_requests,
    load_baseline,
    load_reference_sample,
    log_baseline,
    resolve_run_uri,
    sample_path_for,
)
from monitor.baseline.model import (
    PERFORMANCE_WINDOW_SIZES,
    SCHEMA,
    SCHEMA_V1,
    Baseline,
    ColumnRoles,
    Task,
)
from monitor.baseline.performance import PerformanceReference
from monitor.baseline.watch import BaselineChange, RegistryWatch, initial_baseline, watch_for

__all__ = [
    "ARTIFACT_PATH",
    "PERFORMANCE_WINDOW_SIZES",
    "SAMPLE_ARTIFACT_PATH",
    "SCHEMA",
    "SCHEMA_V1",
    "Baseline",
    "BaselineChange",
    "ColumnRoles",
    "PerformanceReference",
    "RegistryWatch",
    "Task",
    "build_baseline",
    "configure_mlflow_requests",
    "initial_baseline",
    "load_baseline",
    "load_reference_sample",
    "log_baseline",
    "reference_sample",
    "resolve_run_uri",
    "sample_path_for",
    "watch_for",
]
