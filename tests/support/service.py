"""Helpers of the tests that run ``driftloop serve`` (the fixtures ``tansu`` and
``stream_data`` are in ``tests/conftest.py``, one broker for the whole session).

- :func:`new_topics`: fresh topics and a consumer group per test;
- :func:`write_config` / :func:`start_service`: a config on free ports and
  ``driftloop serve`` as a subprocess (stopped by its PID), with helpers that read
  ``/metrics``, ``/readyz`` and the windows API, and poll with deadlines.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from monitor.ingest import ensure_topics
from tests.support.procs import Managed, free_port, wait_for

__all__ = [
    "SEED",
    "WINDOW_ROWS",
    "RunningService",
    "StreamData",
    "Topics",
    "new_topics",
    "poll",
    "start_service",
    "write_config",
]

SEED = 7
WINDOW_ROWS = 1000
DRIFTLOOP = Path(sys.executable).with_name("driftloop")


@dataclass(frozen=True)
class StreamData:
    baseline: Path
    current_csv: Path
    labels_csv: Path
    current: pd.DataFrame  # the rows as read back from current_csv
    labels: pd.DataFrame  # request_id, repaid


@dataclass(frozen=True)
class Topics:
    predictions: str
    labels: str
    dead_letters: str
    group: str


def poll(check: Callable[[], Any], timeout: float, what: str,
         proc: Managed | None = None, interval: float = 0.1) -> Any:
    """Call ``check`` until it returns something truthy (returned); TimeoutError after
    ``timeout`` seconds, naming ``what`` and the service's log tail."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{what}: the service exited with {proc.popen.returncode}\n"
                               f"{proc.log_tail(60)}")
        try:
            last = check()
            if last:
                return last
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        time.sleep(interval)
    tail = proc.log_tail(60) if proc is not None else ""
    raise TimeoutError(f"{what}: not reached after {timeout:.0f}s (last seen: {last!r})\n{tail}")


def new_topics(bootstrap: str, prefix: str, partitions: int = 1) -> Topics:
    tag = f"{prefix}-{uuid.uuid4().hex[:8]}"
    topics = Topics(f"{tag}-predictions", f"{tag}-labels", f"{tag}-dlq", f"{tag}-group")
    ensure_topics(bootstrap, [topics.predictions, topics.labels, topics.dead_letters],
                  partitions=partitions)
    return topics


def write_config(path: Path, *, bootstrap: str, topics: Topics, state_url: str,
                 baseline: str, model: dict[str, Any] | None = None,
                 kafka: dict[str, Any] | None = None, mlflow: dict[str, Any] | None = None,
                 port: int | None = None, model_name: str = "carloan") -> Path:
    """A service config on a free port; ``model`` / ``kafka`` entries override the defaults
    (count windows of :data:`WINDOW_ROWS`, a persist at least every half second, drift
    reports in ``reports/`` beside the config)."""
    model_config: dict[str, Any] = {
        "baseline": baseline,
        "window": {"rows": WINDOW_ROWS},
        "performance": {"window_rows": 500},
        "retrain": {"on": []},  # the reactor's own tests cover retraining
        **(model or {}),
    }
    config: dict[str, Any] = {
        "kafka": {"bootstrap_servers": [bootstrap], "group_id": topics.group,
                  "predictions_topic": topics.predictions, "labels_topic": topics.labels,
                  "dead_letter_topic": topics.dead_letters, "commit_interval_seconds": 0.5,
                  **(kafka or {})},
        "state": {"url": state_url},
        "server": {"host": "127.0.0.1", "port": port or free_port(), "auth_token_env": None},
        # beside the config, not a temporary folder: a service the test kills with -9
        # cannot remove its own
        "reports": {"dir": str(path.parent / "reports")},
        "models": {model_name: model_config},
    }
    if mlflow:
        config["mlflow"] = mlflow
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class RunningService:
    proc: Managed
    config_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.proc.port}"

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=5)

    def windows(self, model: str | None = None) -> list[dict[str, Any]]:
        """Window results, oldest first."""
        model = model or next(iter(yaml.safe_load(self.config_path.read_text())["models"]))
        found = self.get(f"/api/v1/models/{model}/windows?limit=1000").json()["windows"]
        return list(reversed(found))

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` whose labels include ``labels``."""
        total = 0.0
        for family in text_string_to_metric_families(self.get("/metrics").text):
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    total += sample.value
        return total

    def wait_windows(self, n: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        return poll(lambda: (found := self.windows()) and len(found) >= n and found,
                    timeout, f"{n} windows", self.proc)

    def stop(self) -> int:
        """SIGTERM (by PID) and wait; returns the exit code."""
        self.proc.stop(timeout=30)
        code = int(self.proc.popen.returncode)
        if code != 0:  # shown by pytest with the failure
            print(f"{self.proc.name} exited with {code}:\n{self.proc.log_tail(80)}")
        return code

    def kill(self) -> None:
        self.proc.kill()


def start_service(config_path: Path, name: str = "driftloop") -> RunningService:
    config = yaml.safe_load(config_path.read_text())
    port = int(config["server"]["port"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP")}
    env["PYTHONUNBUFFERED"] = "1"
    proc = Managed(name, [str(DRIFTLOOP), "serve", "--config", str(config_path)],
                   config_path.parent / f"{name}.log", port, env=env).start()
    wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200,
             60, "driftloop serve", proc)
    return RunningService(proc, config_path)


def assert_same(got: Any, want: Any, where: str, *, rel: float = 1e-12,
                abs_: float = 1e-15) -> None:
    """Equal, except that floats may differ in the last bits: a window folded into its
    summary in several chunks (at a checkpoint, or when ``buffer_rows`` fill up) adds
    the per-bin value sums in another order than one pass over the file does."""
    if isinstance(want, float) and isinstance(got, float):
        assert got == pytest.approx(want, rel=rel, abs=abs_), f"{where}: {got} != {want}"
    elif isinstance(want, dict) and isinstance(got, dict):
        assert got.keys() == want.keys(), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for key in want:
            assert_same(got[key], want[key], f"{where}.{key}", rel=rel, abs_=abs_)
    elif isinstance(want, list) and isinstance(got, list):
        assert len(got) == len(want), f"{where}: {len(got)} items != {len(want)}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same(g, w, f"{where}[{i}]", rel=rel, abs_=abs_)
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"
