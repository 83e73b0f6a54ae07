"""The ``driftloop.yaml`` the demo's service runs with, from the scenario and the profile.

What it sets, and why:

- Kafka: topics ``predictions``, ``labels``, ``driftloop-dlq`` on the demo's broker;
  the ``kserve`` format maps KServe endpoints to versions with
  ``kafka.endpoint_versions`` (``default`` -> 1, ``canary`` -> 2: the registry is
  new, so the first model is version 1 and the retrain's is 2). The V1 protocol
  carries no version and the service maps endpoints through the config only
  (docs/reference/differences.md), so the model server keeps each version on
  its own endpoint, as KServe does at ``canaryTrafficPercent: 100`` before the
  canary becomes the default.
- ``baseline: mlflow:champion``: the baseline follows the alias, polled every 2 s
  and at once on an MLflow webhook, so a promotion swaps it.
- retrain: ``dataset_drift`` and ``performance_drop`` over two windows (the alert
  scenario: ``alert`` only), an hour's cooldown (one retrain per story), the
  command launcher running :mod:`monitor.cli.demo.train` with the run's
  ``{window_start}`` and ``{idempotency_key}``.
- canary: the profile's interval and limits, and ``max_performance_drop: 0.02``:
  at 0 a challenger only as good as the champion is never promoted.
- reports on, in the work folder, a few kept.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import monitor
from monitor.cli.demo.options import MODEL, DemoOptions, Profile

__all__ = ["KSERVE_ENDPOINTS", "SECRET_ENV", "package_root", "service_config"]

# the version each KServe predictor serves (version -> ce_endpoint, "" = the default one)
KSERVE_ENDPOINTS = {"1": "", "2": "canary"}
SECRET_ENV = "DRIFTLOOP_DEMO_MLFLOW_WEBHOOK_SECRET"


def package_root() -> Path:
    """The folder holding the ``monitor`` package this demo runs from: the retrain command
    (whose environment driftloop keeps minimal) imports the same code."""
    return Path(monitor.__file__).resolve().parent.parent


def service_config(options: DemoOptions, profile: Profile, *, bootstrap: str, mlflow_url: str,
                   port: int, workdir: Path, labeled: Path) -> dict[str, Any]:
    kafka: dict[str, Any] = {
        "bootstrap_servers": [bootstrap], "group_id": "driftloop-demo",
        "predictions_topic": "predictions", "labels_topic": "labels",
        "dead_letter_topic": "driftloop-dlq", "formats": [options.event_format],
        "commit_interval_seconds": 0.5}
    if options.event_format == "kserve":
        kafka["endpoint_versions"] = {endpoint or "default": version
                                      for version, endpoint in KSERVE_ENDPOINTS.items()}
    return {
        "kafka": kafka,
        "state": {"url": f"sqlite:///{workdir / 'driftloop.db'}"},
        "mlflow": {"tracking_uri": mlflow_url, "poll_interval": 2.0,
                   "webhook_secret_env": SECRET_ENV},
        "server": {"host": "127.0.0.1", "port": port, "auth_token_env": None},
        "jobs": {"retrain_interval": 1.0, "canary_interval": 1.0, "metrics_interval": 2.0},
        "reports": {"enabled": True, "dir": str(workdir / "reports"), "keep": 5,
                    "max_rows": 1000, "queue_size": 2},
        "models": {MODEL: _model(options, profile, mlflow_url, workdir, labeled)},
    }


def _model(options: DemoOptions, profile: Profile, mlflow_url: str, workdir: Path,
           labeled: Path) -> dict[str, Any]:
    on = ["alert"] if options.scenario == "alert" else ["dataset_drift", "performance_drop"]
    mode = "flipped" if options.scenario == "bad-challenger" else "good"
    argv = [sys.executable, "-m", "monitor.cli.demo.train", "--tracking-uri", mlflow_url,
            "--model", "{model}", "--labeled", str(labeled), "--since", "{window_start}",
            "--rows", str(profile.retrain_rows), "--wait-seconds",
            str(int(profile.phase_timeout_seconds)), "--mode", mode,
            "--key", "{idempotency_key}", "--reason", "{reason}", "--seed", str(options.seed)]
    return {
        "baseline": "mlflow:champion",
        "window": {"rows": profile.window_rows},
        "performance": {"metric": "accuracy", "window_rows": profile.performance_rows},
        "retrain": {
            "on": on, "consecutive_windows": 2, "cooldown": "1h",
            "launcher": {"type": "command", "argv": argv, "cwd": str(workdir),
                         "timeout": profile.phase_timeout_seconds * 2,
                         "env": {"PYTHONPATH": str(package_root()),
                                 "MLFLOW_TRACKING_URI": mlflow_url}}},
        "canary": {
            "champion_alias": "champion", "challenger_alias": "challenger",
            "min_events": profile.canary_min_events, "min_labels": profile.canary_min_labels,
            "iterations": profile.canary_iterations, "threshold": 2, "max_inconclusive": 8,
            "max_performance_drop": 0.02, "interval": profile.canary_interval_seconds},
    }
