"""Rows of open windows for drift reports: the service hands each drifted window's rows
to the writer, exactly the window's rows (or a uniform sample of them), whatever the
runs the events come in; memory holds open windows only; the writer never blocks the
consumer, and its report agrees with the window column by column."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry

from monitor.baseline import Baseline, load_reference_sample
from monitor.cli.examples import FEATURES
from monitor.config import Config
from monitor.evaluate import METHODS, ReportFiles, build_drift_report
from monitor.ingest import Decoder, Prediction
from monitor.ingest.batch import PredictionBatch
from monitor.metrics import Metrics
from monitor.store import Store
from monitor.stream import ModelPipeline, ReportJob, ReportRows, ReportWriter, Service, WindowRows
from monitor.stream.report_writer import rows_frame
from tests.support.service import WINDOW_ROWS, StreamData


def events(frame: pd.DataFrame, version: str = "1", partition: int = 0) -> list[Prediction]:
    stamps = pd.to_datetime(frame["timestamp"], utc=True).astype("int64") // 1_000_000
    records = frame[list(FEATURES)].to_dict("records")
    return [Prediction("carloan", version, str(rid), int(ts), features, int(pred), float(score),
                       partition=partition, offset=i)
            for i, (rid, ts, features, pred, score) in enumerate(zip(
                frame["request_id"], stamps, records, frame["prediction"], frame["score"],
                strict=True))]


class Harness:
    """A Service without Kafka: runs of events go through the consumer's per-run path."""

    def __init__(self, tmp_path: Path, data: StreamData, *, max_rows: int = 5000,
                 window: dict[str, Any] | None = None) -> None:
        self.config = Config.model_validate({"models": {"carloan": {
            "baseline": str(data.baseline), "window": window or {"rows": WINDOW_ROWS}}}})
        self.baseline = Baseline.load(data.baseline)
        self.metrics = Metrics(CollectorRegistry())
        self.pipeline = ModelPipeline("carloan", self.config.models["carloan"], self.baseline)
        self.jobs: list[ReportJob] = []
        self.rows = ReportRows(max_rows, self._submit, self.metrics.count_drift_report)
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.store = Store(f"sqlite:///{tmp_path / 'state.db'}")
        decoder = Decoder(["native"], max_record_bytes=1 << 20, feature_order=lambda m: None,
                          endpoint_version=lambda m, e: None, known_models=lambda m: True)
        self.service = Service(self.config, {"carloan": self.pipeline}, self.store, self.metrics,
                               decoder, None, None, report_rows=self.rows)

    def _submit(self, job: ReportJob) -> bool:
        self.jobs.append(job)
        return True

    def feed(self, stream: list[Prediction], sizes: Iterator[int]) -> None:
        start = 0
        while start < len(stream):
            run = stream[start:start + next(sizes)]
            self.service.feed.add_run("carloan", run[0].version, run[0].partition, run)
            start += len(run)


def random_sizes(seed: int, high: int = 700) -> Iterator[int]:
    rng = np.random.default_rng(seed)
    while True:
        yield int(rng.integers(1, high))


def drifted_windows(harness: Harness) -> list[int]:
    return [o.index for o in harness.service.persister.outputs
            if any(f["drift"] for f in o.result["features"].values())]


@pytest.mark.parametrize("seed", [1, 2])
def test_count_windows_hand_over_exactly_their_rows_whatever_the_runs(
        tmp_path: Path, stream_data: StreamData, seed: int) -> None:
    h = Harness(tmp_path, stream_data)
    stream = events(stream_data.current)
    h.feed(stream, random_sizes(seed))
    assert [job.key for job in h.jobs] == [f"p0:{i}" for i in drifted_windows(h)]
    assert [job.key for job in h.jobs] == ["p0:2", "p0:4"]  # windows 3 and 5, from 1
    for job in h.jobs:
        index = int(job.key.split(":")[1])
        assert [e.offset for e in job.rows] == list(range(index * WINDOW_ROWS,
                                                          (index + 1) * WINDOW_ROWS))
        assert (job.covered.shown, job.covered.seen, job.covered.window_rows) == (
            WINDOW_ROWS, WINDOW_ROWS, WINDOW_ROWS)
        assert job.covered.first_offset == job.result["first_offset"] == index * WINDOW_ROWS
        assert job.baseline is h.baseline and job.baseline_key == ""
    assert h.rows.n_rows == 0  # every window closed: nothing held


def test_rows_beyond_max_rows_are_a_uniform_sample_of_the_window(
        tmp_path: Path, stream_data: StreamData) -> None:
    h = Harness(tmp_path, stream_data, max_rows=200)
    h.feed(events(stream_data.current), random_sizes(3))
    for job in h.jobs:
        index = int(job.key.split(":")[1])
        offsets = [e.offset for e in job.rows]
        assert len(offsets) == len(set(offsets)) == 200
        assert all(index * WINDOW_ROWS <= o < (index + 1) * WINDOW_ROWS for o in offsets)
        assert (job.covered.shown, job.covered.seen) == (200, WINDOW_ROWS)


def test_reservoir_keeps_every_row_with_the_same_chance() -> None:
    n, k, seeds = 2000, 100, 300
    kept = np.zeros(n)
    sizes = random_sizes(0, high=300)
    for seed in range(seeds):
        rows = WindowRows(k, seed)
        stream = [Prediction("m", "1", str(i), 0, {}, 0, offset=i) for i in range(n)]
        start = 0
        while start < n:
            size = next(sizes)
            rows.add(stream[start:start + size])
            start += size
        assert len(rows.rows) == k and rows.seen == n
        kept[[e.offset for e in rows.rows]] += 1
    # each row is kept with probability k/n: every tenth of the stream holds a tenth
    tenths = kept.reshape(10, -1).sum(axis=1) / (k * seeds)
    assert np.allclose(tenths, 0.1, atol=0.012), tenths


def numbered_batch(n: int, features: dict[str, Any] | None = None) -> PredictionBatch:
    stamps = np.arange(n, dtype=np.int64)
    return PredictionBatch("m", "1", "t", 0, stamps, stamps, [str(i) for i in range(n)],
                           features or {"x": stamps.astype(np.float64)}, [0] * n, [None] * n,
                           [None] * n, [None] * n)


def feed_both(batches: list[PredictionBatch], k: int) -> tuple[WindowRows, WindowRows, int]:
    """The same rows as events and as batch slices; returns both and the most rows the
    batch side's copies held."""
    by_event, by_batch = WindowRows(k, 7), WindowRows(k, 7)
    sizes, held = random_sizes(13, high=300), 0
    for batch in batches:
        events_of, start = batch.events(), 0
        while start < len(batch):
            stop = min(len(batch), start + next(sizes))
            by_event.add(events_of[start:stop])
            by_batch.add(batch.slice(start, stop))
            held = max(held, by_batch.held_rows)
            start = stop
    return by_event, by_batch, held


def test_a_long_window_in_batches_keeps_the_per_event_sample_in_bounded_memory() -> None:
    k = 20
    by_event, by_batch, held = feed_both([numbered_batch(50_000)], k)
    assert by_batch.rows == by_event.rows
    # the batch copies that hold the sample's rows: never more than twice the sample
    assert held <= 2 * k


def test_a_sample_of_batches_with_other_features_keeps_each_row_as_it_came() -> None:
    # a window open across a baseline swap: batches decoded with two feature layouts
    other = numbered_batch(3000, {"x": np.zeros(3000), "c": ["a"] * 3000})
    by_event, by_batch, _ = feed_both([numbered_batch(3000), other], 20)
    assert by_batch.rows == by_event.rows
    assert {tuple(e.features) for e in by_batch.rows} == {("x",), ("x", "c")}


def test_event_time_windows_hand_over_their_rows_and_not_the_late_ones(
        tmp_path: Path, stream_data: StreamData) -> None:
    h = Harness(tmp_path, stream_data, window={"duration": "6h"})
    stream = events(stream_data.current)
    late = [Prediction("carloan", "1", f"late-{i}", e.timestamp_ms, e.features, e.prediction,
                       e.score, offset=len(stream) + i) for i, e in enumerate(stream[:50])]
    h.feed(stream, random_sizes(4))
    h.feed(late, random_sizes(5))  # their windows closed long ago
    assert h.jobs, "some 6h window drifts"
    for job in h.jobs:
        assert job.covered.seen == job.result["rows"] == len(job.rows)
        start, end = (pd.Timestamp(job.result[k]).value // 1_000_000 for k in ("start", "end"))
        assert all(start <= e.timestamp_ms < end for e in job.rows)
        assert not any(e.request_id.startswith("late-") for e in job.rows)
    assert h.rows.n_rows <= sum(w.n_rows for s in h.pipeline.streams.values()
                                for w in s.open.values())


def test_a_window_open_across_a_restart_reports_the_rows_read_since(
        tmp_path: Path, stream_data: StreamData) -> None:
    stream = events(stream_data.current)
    before = Harness(tmp_path / "a", stream_data)
    before.feed(stream[:2300], random_sizes(6))  # window 2 holds 300 rows
    checkpoint = before.pipeline.streams[("1", 0)].checkpoint()
    after = Harness(tmp_path / "b", stream_data)
    after.pipeline.stream("1", 0).restore(checkpoint)
    after.feed(stream[2300:], random_sizes(7))
    job = next(j for j in after.jobs if j.key == "p0:2")
    assert [e.offset for e in job.rows] == list(range(2300, 3000))
    assert (job.covered.seen, job.covered.window_rows, job.covered.window_first_offset) == (
        700, WINDOW_ROWS, 2000)


def test_revoked_partitions_and_rewinds_drop_their_rows(tmp_path: Path,
                                                        stream_data: StreamData) -> None:
    h = Harness(tmp_path, stream_data)
    stream = events(stream_data.current)
    h.feed(stream[:500], random_sizes(8))
    h.feed(events(stream_data.current.iloc[:300], partition=1), random_sizes(9))
    assert h.rows.n_rows == 800
    h.rows.forget([1])
    assert h.rows.n_rows == 500
    h.rows.clear()
    assert h.rows.n_rows == 0


def test_a_full_queue_drops_the_report_without_waiting_and_counts_it(
        tmp_path: Path, stream_data: StreamData) -> None:
    metrics = Metrics(registry := CollectorRegistry())
    writer = ReportWriter(ReportFiles(tmp_path, 5), metrics, lambda m, k: None, queue_size=1)
    h = Harness(tmp_path, stream_data)
    h.feed(events(stream_data.current), random_sizes(10))
    first, second = h.jobs[:2]
    assert writer.offer(first) is True
    assert writer.offer(second) is False
    assert registry.get_sample_value("driftloop_drift_reports_total",
                                     {"model": "carloan", "outcome": "queue_full"}) == 1.0


def test_without_a_reference_sample_no_report_is_written_and_it_is_logged_once(
        tmp_path: Path, stream_data: StreamData, caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics(registry := CollectorRegistry())
    writer = ReportWriter(ReportFiles(tmp_path / "r", 5), metrics, lambda m, k: None)
    h = Harness(tmp_path, stream_data)
    h.feed(events(stream_data.current), random_sizes(11))
    with caplog.at_level(logging.WARNING, logger="driftloop.reports"):
        assert [writer.write(job) for job in h.jobs] == [None] * len(h.jobs)
    assert len([r for r in caplog.records if "no reference sample" in r.message]) == 1
    assert registry.get_sample_value("driftloop_drift_reports_total", {
        "model": "carloan", "outcome": "no_reference"}) == len(h.jobs)
    assert not (tmp_path / "r").exists() or not list((tmp_path / "r").rglob("*.gz"))


def test_stream_report_agrees_with_the_window_on_every_column(
        tmp_path: Path, stream_data: StreamData) -> None:
    sample = load_reference_sample(stream_data.baseline)
    assert sample is not None
    h = Harness(tmp_path, stream_data)
    h.feed(events(stream_data.current), random_sizes(12))
    for job in h.jobs:
        report = build_drift_report(job.baseline, sample, rows_frame(job.baseline, job.rows),
                                    job.result, covered=job.covered)
        tests = [t for t in report.snapshot.dict()["tests"]
                 if t["metric_config"]["params"]["type"] == "evidently:metric_v2:ValueDrift"]
        scores = {**job.result["features"], "prediction": job.result["prediction_drift"],
                  "score": job.result["score_drift"]}
        assert {t["metric_config"]["params"]["column"] for t in tests} == scores.keys()
        for test in tests:
            params = test["metric_config"]["params"]
            mine = scores[params["column"]]
            assert params["method"] == METHODS[mine["method"]]
            assert params["threshold"] == pytest.approx(mine["threshold"])
            assert (test["status"] == "FAIL") == mine["drift"], (job.key, params["column"])
    # and the writer stores it, with the verdicts in its note
    files = ReportFiles(tmp_path / "reports", 5)
    writer = ReportWriter(files, h.metrics, lambda model, key: sample)
    stored = writer.write(h.jobs[0])
    assert stored is not None and stored.meta["evidently"]["disagreements"] == []
    assert b"Evidently agrees with the window on all 10 columns" in stored.html_bytes()
