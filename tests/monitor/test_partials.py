"""Partial window summaries (issue 15): their encoding, and merges that equal one stream.

Unit tests of ``monitor.stream.partials`` on the seeded example data: a partial
round-trips through its bytes, merging the windows of several partitions gives the
result one stream over all the rows gives, merging is associative and commutative
(hypothesis), and a partition reports its watermark as the module says.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.baseline import Baseline, build_baseline
from monitor.cli.examples import generate
from monitor.config import ModelConfig, WindowConfig
from monitor.ingest import Prediction
from monitor.stream import ModelPipeline
from monitor.stream.partials import (
    Partial,
    PartialPublisher,
    merge_windows,
    owner_partition,
    partition_report,
)
from monitor.stream.window_state import ClosedWindow, OpenWindow
from tests.monitor.test_windows import assert_close, events

MINUTE = 60_000


@pytest.fixture(scope="module")
def data() -> Any:
    return generate(seed=11, reference_rows=3000, window_rows=300)


@pytest.fixture(scope="module")
def baseline(data: Any) -> Baseline:
    return build_baseline(data.reference, "carloan", target="repaid", prediction="prediction",
                          score="score", id_column="request_id", timestamp="timestamp")
COMPARED = ("rows", "dataset_drift", "drift_share", "features", "prediction_drift",
            "score_drift", "quality", "start", "end", "estimated_performance")


class Sent:
    """A producer that keeps what it is given."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes, int]] = []

    def send(self, topic: str, key: bytes, value: bytes, partition: int) -> None:
        self.records.append((topic, key, value, partition))

    def flush(self) -> None:
        pass


def timed_pipeline(baseline: Baseline, name: str = "carloan", **window: Any) -> ModelPipeline:
    config = ModelConfig(baseline="unused", window=WindowConfig.model_validate(
        {"duration": "60s", **window}))
    return ModelPipeline(name, config, baseline)


def spread(rows: list[Prediction], partitions: int) -> list[Prediction]:
    """Row i on partition i % partitions, a minute of event time over every 100 rows."""
    return [dataclasses.replace(e, partition=i % partitions, offset=i // partitions,
                                timestamp_ms=i * MINUTE // 100) for i, e in enumerate(rows)]


def closed_windows(p: ModelPipeline, rows: list[Prediction]) -> list[ClosedWindow]:
    closed = [c for e in rows for c in p.add(e)]
    for stream in list(p.streams.values()):
        closed += stream.close_all()
    return closed


def test_a_partial_round_trips_through_its_bytes(data: Any, baseline: Baseline) -> None:
    p = timed_pipeline(baseline)
    closed = closed_windows(p, spread(events(data.current.iloc[:250]), 1))[0]
    producer = Sent()
    publisher = PartialPublisher("partials", 6, "predictions", 0.5, producer=producer)
    sent = publisher.window(closed, p.streams[("1", 0)], last_offset=99)
    topic, key, value, partition = producer.records[0]
    assert (topic, key, partition) == ("partials", b"carloan", owner_partition("carloan", 6))
    got = Partial.decode(value)
    assert got == sent
    assert got.identity == ("carloan", "1", 0, 0)
    assert (got.first_offset, got.last_offset, got.n_rows) == (0, 99, 100)
    window = OpenWindow.from_dict(got.window or {}, p.profiles)
    assert window.summary.to_packed() == closed.window.summary.to_packed()
    heartbeat = Partial("carloan", "", "predictions", 3, None, idle=True)
    assert Partial.decode(heartbeat.encode()) == heartbeat


def test_a_partial_of_an_unknown_format_is_refused() -> None:
    blob = Partial("m", "1", "t", 0, 5).encode().replace(b"format\x01", b"format\x07")
    with pytest.raises(ValueError, match="partial window summary: got format 7, expected 1"):
        Partial.decode(blob)


def test_merged_partitions_equal_one_stream_over_every_row(data: Any,
                                                           baseline: Baseline) -> None:
    rows = events(data.current.iloc[:600])
    one = timed_pipeline(baseline)
    want = [one.evaluate(c).result for c in closed_windows(one, spread(rows, 1))]
    many = timed_pipeline(baseline)
    merged: dict[tuple[str, int], OpenWindow] = {}
    for closed in closed_windows(many, spread(rows, 6)):
        key = (closed.version, closed.window.index)
        merged[key] = closed.window if key not in merged \
            else merge_windows(merged[key], closed.window)
    got = [many.evaluate(ClosedWindow("carloan", v, None, w, (i * MINUTE, (i + 1) * MINUTE)))
           for (v, i), w in sorted(merged.items(), key=lambda kv: kv[0][1])]
    assert [o.key for o in got] == [f"m:{i}" for i in range(6)]
    assert [r["rows"] for r in want] == [100] * 6
    for g, w in zip(got, want, strict=True):
        assert g.result["partition"] is None and g.result["first_offset"] is None
        for key in COMPARED:
            if key in ("start", "end"):
                assert g.result[key] == w[key]
            else:
                assert_close(g.result[key], w[key], key)


def _summary_counts(window: OpenWindow) -> Any:
    s = window.summary
    return (window.n_rows, s.n_rows, dict(s.absent_rows),
            {k: (v.counts.tolist(), v.below, v.above, v.missing) for k, v in s.numeric.items()},
            {k: (v.counts.tolist(), dict(v.unseen), v.missing) for k, v in s.categorical.items()})


def _sums(window: OpenWindow) -> list[float]:
    return [(0.0 if v.sums is None else float(np.sum(v.sums))) + v.total
            for v in window.summary.numeric.values()]


@pytest.fixture(scope="module")
def example(data: Any, baseline: Baseline) -> Example:
    return Example(baseline, spread(events(data.current.iloc[:90]), 1))


@dataclasses.dataclass(frozen=True)
class Example:
    baseline: Baseline = dataclasses.field(repr=False)
    rows: list[Prediction] = dataclasses.field(repr=False)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(0, 90), min_size=2, max_size=2))
def test_merging_windows_is_associative_and_commutative(example: Example,
                                                        cuts: list[int]) -> None:
    rows, baseline = example.rows, example.baseline
    low, high = sorted(cuts)
    parts = []
    for chunk in (rows[:low], rows[low:high], rows[high:]):
        p = timed_pipeline(baseline)
        stream = p.stream("1", 0)
        for event in chunk:
            stream.add(event)
        window = stream.open.get(0) or p.stream("1", 1)._new(0)
        stream.checkpoint()  # folds what is buffered
        parts.append(window)
    a, b, c = parts
    left = merge_windows(merge_windows(a, b), c)
    right = merge_windows(a, merge_windows(b, c))
    swapped = merge_windows(c, merge_windows(b, a))
    whole = timed_pipeline(baseline).stream("1", 0)
    for event in rows:
        whole.add(event)
    whole.checkpoint()
    for merged in (left, right, swapped):
        assert _summary_counts(merged) == _summary_counts(whole.open[0])
        assert _sums(merged) == pytest.approx(_sums(whole.open[0]), rel=1e-12)


def test_a_partition_reports_its_streams_then_its_other_models_then_idle(
        data: Any, baseline: Baseline) -> None:
    mine, other = timed_pipeline(baseline), timed_pipeline(baseline, name="other")
    rows = spread(events(data.current.iloc[:150]), 1)
    now = 1_000_000
    # nothing held long enough, nothing seen: not known yet
    assert partition_report(mine, [other], 0, now, held_since_ms=now) is None
    # held for the idle timeout (duration + lateness = 60 s) with nothing on it: idle
    assert partition_report(mine, [other], 0, now, held_since_ms=now - MINUTE) == (None, True)
    for event in rows[:100]:
        other.add_many("1", 0, [event], now_ms=now)
    # no stream of its own: the partition's other streams say how far its event time went
    assert partition_report(mine, [other], 0, now, now) == (rows[99].timestamp_ms, False)
    for event in rows[:50]:
        mine.add_many("1", 0, [event], now_ms=now)
    assert partition_report(mine, [other], 0, now, now) == (rows[49].timestamp_ms, False)
    # its stream idle past the timeout: its watermark moves on with the clock, up to the
    # close of the window it holds open until housekeeping closes that window
    later = now + 2 * MINUTE
    assert partition_report(mine, [other], 0, later, now) == (MINUTE - 1, False)
    mine.housekeep(later)
    assert partition_report(mine, [other], 0, later, now) == (
        rows[49].timestamp_ms + 2 * MINUTE, False)


def test_an_idle_stream_reports_no_further_than_the_window_it_has_not_closed_yet(
        data: Any, baseline: Baseline) -> None:
    """Housekeeping closes an idle stream's windows once a second, heartbeats go out at
    every step: a report past the end of a window still open would let the owner merge
    that window without this partition's partial, which then counts as late."""
    p = timed_pipeline(baseline, allowed_lateness="10s")
    rows = spread(events(data.current.iloc[:50]), 1)  # event time 0 .. 29.4 s: window 0
    now = 1_000_000
    p.add_many("1", 0, rows, now_ms=now)
    later = now + 5 * MINUTE  # idle (70 s) long past: the clock alone would say 329.4 s
    window_0_closes = MINUTE + 10_000  # the owner merges window 0 at this watermark
    watermark, idle = partition_report(p, [], 0, later, now) or (None, None)
    assert idle is False and watermark is not None
    assert rows[-1].timestamp_ms <= watermark < window_0_closes
    closed, _ = p.housekeep(later)  # closes window 0 (its partial goes out first)
    assert [c.window.index for c in closed] == [0]
    assert partition_report(p, [], 0, later, now) == (rows[-1].timestamp_ms + 5 * MINUTE,
                                                      False)


def test_heartbeats_go_out_when_the_watermark_moves_and_not_otherwise(
        data: Any, baseline: Baseline) -> None:
    p = timed_pipeline(baseline)
    clock = [100.0]
    producer = Sent()
    publisher = PartialPublisher("partials", 6, "predictions", 0.5, producer=producer,
                                 clock=lambda: clock[0])
    rows = spread(events(data.current.iloc[:150]), 1)
    p.add_many("1", 0, rows[:10], now_ms=0)
    assert publisher.heartbeats({"carloan": p}, {0: 0}, now_ms=0) == 1
    assert publisher.heartbeats({"carloan": p}, {0: 0}, now_ms=0) == 0  # unchanged
    p.add_many("1", 0, rows[10:20], now_ms=0)
    assert publisher.heartbeats({"carloan": p}, {0: 0}, now_ms=0) == 0  # moved, too soon
    p.add_many("1", 0, rows[20:120], now_ms=0)  # past the end of window 0: at once
    assert publisher.heartbeats({"carloan": p}, {0: 0}, now_ms=0) == 1
    clock[0] += 6.0  # the keep-alive
    assert publisher.heartbeats({"carloan": p}, {0: 0}, now_ms=0) == 1
    last = Partial.decode(producer.records[-1][2])
    assert (last.index, last.partition, last.watermark_ms) == (None, 0, rows[119].timestamp_ms)
