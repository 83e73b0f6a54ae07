"""monitor.runtime.jobs: named APScheduler jobs, guarded so one failure harms nothing else."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from monitor.config import load_config
from monitor.metrics import Metrics
from monitor.runtime import Jobs, build, processed_lag, schedule_service_jobs
from monitor.runtime.jobs import prune_runs
from monitor.store import RetrainRun


def wait_until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.01)
    raise AssertionError(f"{what}: not reached after {timeout:.0f}s")


def test_a_failing_job_is_counted_and_runs_again_while_the_others_keep_running() -> None:
    registry = CollectorRegistry()
    jobs = Jobs(Metrics(registry))
    calls = {"failing": 0, "steady": 0}
    lock = threading.Lock()

    def failing() -> None:
        with lock:
            calls["failing"] += 1
        raise RuntimeError("the store is away")

    def steady() -> None:
        with lock:
            calls["steady"] += 1

    jobs.add("failing", 0.05, failing)
    jobs.add("steady", 0.05, steady)
    jobs.start()
    assert jobs.names == ["failing", "steady"]
    try:
        wait_until(lambda: calls["failing"] >= 3 and calls["steady"] >= 3,
                   "three runs of each job")
    finally:
        jobs.stop()
    errors = registry.get_sample_value("driftloop_job_errors_total",
                                       {"job_name": "failing"})
    assert errors is not None and errors == calls["failing"]
    assert registry.get_sample_value("driftloop_job_errors_total",
                                     {"job_name": "steady"}) == 0


def test_stop_waits_for_a_running_job_to_finish() -> None:
    jobs = Jobs(Metrics(CollectorRegistry()))
    started, finished = threading.Event(), threading.Event()

    def slow() -> None:
        started.set()
        time.sleep(0.3)
        finished.set()

    jobs.add("slow", 0.05, slow)
    jobs.start()
    assert started.wait(20)
    jobs.stop()
    assert finished.is_set()


class _Consumer:
    """The part of KafkaConsumer the lag job reads: high-water marks in memory."""

    def __init__(self, ends: dict[tuple[str, int], int | None]) -> None:
        self.ends = ends

    def highwater(self, tp: TopicPartition) -> int | None:
        if (tp.topic, tp.partition) not in self.ends:
            raise AssertionError("partition is not assigned")
        return self.ends[(tp.topic, tp.partition)]


def test_processed_lag_counts_records_after_the_processed_mark_and_skips_the_unknown() -> None:
    consumer = _Consumer({("p", 0): 120, ("p", 1): None, ("l", 0): 5})
    processed = {("p", 0): 100, ("p", 1): 7, ("l", 0): 9, ("gone", 3): 1}
    assert processed_lag(consumer, processed) == {("p", 0): 20, ("l", 0): 0}  # type: ignore[arg-type]


def test_run_pruning_job_keeps_retrain_keep_runs_finished_runs_per_model(
        tmp_path: Path, example_baseline: Path) -> None:
    config = load_config(data={
        "kafka": {"bootstrap_servers": ["127.0.0.1:1"]},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
        "models": {"carloan": {"baseline": str(example_baseline),
                               "retrain": {"keep_runs": 3}}}}, environ={})
    runtime = build(config)
    try:
        for i in range(6):
            runtime.store.create_run(RetrainRun(f"r{i}", "carloan", "drift", f"k{i}", "command",
                                                "failed", 1000 * i))
        runtime.store.create_run(RetrainRun("live", "carloan", "drift", "kl", "command",
                                            "running", 0))
        jobs = Jobs(runtime.metrics)
        schedule_service_jobs(jobs, runtime)
        assert "retrain-run-prune" in jobs.names
        assert "malloc-trim" in jobs.names  # glibc, as on the images and CI
        assert prune_runs(runtime) == 3
        assert [r.id for r in runtime.store.runs("carloan")] == ["r5", "r4", "r3", "live"]
    finally:
        runtime.close()


def test_run_soon_brings_a_job_forward_and_ignores_unknown_names() -> None:
    jobs = Jobs(Metrics(CollectorRegistry()))
    ran = threading.Event()
    jobs.add("hourly", 3600, ran.set)
    jobs.start()
    try:
        jobs.run_soon("nope")
        assert not ran.is_set()
        jobs.run_soon("hourly")
        wait_until(ran.is_set, "the hourly job run at once")
    finally:
        jobs.stop()


def test_service_with_a_canary_schedules_the_canary_job_and_wakes_it(
        tmp_path: Path, example_baseline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # build sets MLflow's timeout from the config where the operator set none (kept here)
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    config = load_config(data={
        "kafka": {"bootstrap_servers": ["127.0.0.1:1"]},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
        "mlflow": {"tracking_uri": "http://127.0.0.1:1"},
        "models": {"carloan": {"baseline": str(example_baseline), "canary": {}}}}, environ={})
    runtime = build(config)
    try:
        assert runtime.canary is not None and runtime.service.arms is runtime.canary.arms
        jobs = Jobs(runtime.metrics)
        schedule_service_jobs(jobs, runtime)
        assert "canary" in jobs.names and runtime.canary.wake is not None
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "10"
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "3"
    finally:
        runtime.close()
