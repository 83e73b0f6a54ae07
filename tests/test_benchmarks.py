"""The pure parts of the service benchmarks: events, the reference decode, span and slope
arithmetic, verdicts and arguments. No broker, no service, no timing."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import orjson
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import bench_kserve_split  # noqa: E402
import bench_replicas  # noqa: E402
import bench_service  # noqa: E402
import bench_shipping  # noqa: E402
import reference_loop  # noqa: E402
import service_events  # noqa: E402
import service_probe  # noqa: E402
import soak_service  # noqa: E402
from bench_kafka import native_events  # noqa: E402

from monitor.stream.partials import Partial  # noqa: E402


def _records(outgoing: list[service_events.Outgoing]) -> list[SimpleNamespace]:
    return [SimpleNamespace(value=o.value, headers=o.headers) for o in outgoing]


# -- events -------------------------------------------------------------------------------
def test_labelled_stream_sends_each_label_lag_predictions_later() -> None:
    predictions = native_events(6, seed=1)
    stream = service_events.labelled_stream(predictions, lag=2)
    assert len(stream) == 12
    order = [(o.topic, orjson.loads(o.value)["request_id"]) for o in stream]
    first_label = order.index(("labels", orjson.loads(predictions[0])["request_id"]))
    third_prediction = order.index(("predictions", orjson.loads(predictions[2])["request_id"]))
    assert first_label == third_prediction + 1
    labels = [orjson.loads(o.value) for o in stream if o.topic == "labels"]
    assert sorted(label["request_id"] for label in labels) == \
        sorted(orjson.loads(p)["request_id"] for p in predictions)


def test_native_events_take_the_given_timestamps() -> None:
    events = native_events(3, seed=4, timestamps=np.array([5, 6, 7]))
    assert [orjson.loads(e)["timestamp"] for e in events] == [5, 6, 7]


def test_event_pool_labels_agree_with_predictions_nine_in_ten() -> None:
    pool = service_events.EventPool(size=50)
    agree = 0
    for i in range(100):
        prediction = orjson.loads(pool.prediction(i, 1_700_000_000_000))
        label = orjson.loads(pool.label(i, 1_700_000_060_000))
        assert prediction["request_id"] == label["request_id"] == f"live-{i}"
        assert len(prediction["features"]) == 25
        agree += prediction["prediction"] == label["label"]
    assert agree == 90


# -- the reference decode -------------------------------------------------------------------
def test_reference_decodes_native_events_into_columns() -> None:
    values = native_events(5, seed=2)
    columns = reference_loop.Columns()
    reference_loop.decode_batch("native", "predictions", _records(
        [service_events.Outgoing("predictions", v) for v in values]), columns)
    assert columns.total == {"predictions": 5}
    (feature,) = columns.chunks["predictions.feature_03"]
    assert feature.dtype == np.float64
    assert feature.tolist() == [orjson.loads(v)["features"]["feature_03"] for v in values]
    (category,) = columns.chunks["predictions.category_1"]
    assert category.tolist() == [orjson.loads(v)["features"]["category_1"] for v in values]
    (score,) = columns.chunks["predictions.score"]
    assert score.tolist() == [orjson.loads(v)["score"] for v in values]


def test_reference_decodes_labels_by_topic() -> None:
    stream = service_events.labelled_stream(native_events(4, seed=3), lag=1)
    columns = reference_loop.Columns()
    labels = [o for o in stream if o.topic == "labels"]
    reference_loop.decode_batch("native", "labels", _records(labels), columns)
    assert columns.total == {"labels": 4}
    (ids,) = columns.chunks["labels.request_id"]
    assert ids.tolist() == [orjson.loads(o.value)["request_id"] for o in labels]


def test_reference_decodes_kserve_requests_and_responses() -> None:
    records = service_events.kserve_records(3, seed=5)
    assert [dict(o.headers)["ce_type"].decode().rsplit(".", 1)[1] for o in records] == \
        ["request", "response"] * 3
    columns = reference_loop.Columns()
    reference_loop.decode_batch("kserve", "predictions", _records(records), columns)
    assert columns.total == {"predictions": 3, "responses": 3}
    scores = [orjson.loads(v)["score"] for v in native_events(3, seed=5)]
    assert columns.chunks["responses.score"][0].tolist() == scores
    assert columns.chunks["responses.prediction"][0].tolist() == \
        [1.0 if s > 0.5 else 0.0 for s in scores]
    ids = columns.chunks["predictions.request_id"][0].tolist()
    assert ids == columns.chunks["responses.request_id"][0].tolist()
    assert all(i.endswith(":0") for i in ids)


def test_reference_columns_drop_a_window_at_the_batch_that_fills_it() -> None:
    columns = reference_loop.Columns(window_rows=4)
    for _ in range(3):
        columns.add("predictions", {"x": np.zeros(3)})
    assert columns.windows == 1
    assert columns.total == {"predictions": 9}
    assert sum(len(c) for c in columns.chunks["predictions.x"]) == 3


# -- spans, interpolation and slopes -----------------------------------------------------------
def test_persist_points_keep_each_persist_once_with_its_first_sight() -> None:
    samples = [(1000, 10, 0.5, 7), (1000, 10, 0.6, 7), (1500, 30, 0.9, 8), (2000, 50, 1.2, 9)]
    points = service_probe.persist_points(samples)
    assert [(p.at, p.records, p.cpu) for p in points] == \
        [(1.0, 10, 0.5), (1.5, 30, 0.9), (2.0, 50, 1.2)]


def test_span_leaves_out_the_persist_after_the_last_record() -> None:
    points = service_probe.persist_points(
        [(1000, 10, 0, 0), (1500, 30, 0, 0), (2000, 40, 0, 0), (2600, 50, 0, 0)])
    first, last, exact = service_probe.span(points, total=50)
    assert (first.records, last.records, exact) == (10, 40, True)
    first, last, exact = service_probe.span(points[2:], total=50)
    assert (first.records, last.records, exact) == (40, 50, False)
    with pytest.raises(RuntimeError):
        service_probe.span(points[:1], total=50)


def test_time_at_interpolates_between_batches() -> None:
    points = [(0, 10.0, 1.0), (100, 11.0, 1.5), (300, 13.0, 2.5)]
    assert service_probe.time_at(points, 200) == (12.0, 2.0)
    with pytest.raises(ValueError):
        service_probe.time_at(points, 301)


def test_slope_per_minute_fits_a_line_and_needs_three_samples() -> None:
    samples = [(t, 100 + 0.05 * t + (0.3 if i % 2 else -0.3)) for i, t in
               enumerate(range(0, 200, 10))]
    assert service_probe.slope_per_minute(samples) == pytest.approx(3.0, abs=0.1)
    assert math.isnan(service_probe.slope_per_minute(samples[:2]))


def test_soak_verdicts_and_second_half() -> None:
    assert soak_service.verdicts(0.9, 0.4) == ("PASS", "PASS")
    assert soak_service.verdicts(1.1, -0.6) == ("FAIL", "FAIL")
    assert soak_service.verdicts(float("nan"), 0.0) == ("n/a", "n/a")
    assert soak_service.second_half([(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]) == \
        [(2, 3), (3, 4), (4, 5)]


def test_soak_event_time_stays_behind_the_broker_clock() -> None:
    now = 1_800_000_000_000
    start = soak_service.event_start_ms(now, seconds=600, compress=60)
    assert start + 600 * 60 * 1000 == now - 3_600_000


def test_bench_verdict_against_its_target() -> None:
    assert bench_service.verdict(0.80, 0.80) == "PASS"
    assert bench_service.verdict(0.79, 0.80) == "FAIL"
    assert bench_service.verdict(0.5, None) == "-"


def test_metric_sums_a_counter_over_its_series() -> None:
    text = ('# HELP driftloop_label_joins_total x\n'
            'driftloop_label_joins_total{model="a"} 3.0\n'
            'driftloop_label_joins_total{model="b"} 4.0\n'
            'driftloop_label_joins_created{model="a"} 1.7e9\n')
    assert bench_service._metric(text, "driftloop_label_joins_total") == 7.0


def test_proc_readers_see_this_process() -> None:
    pid = os.getpid()
    assert service_probe.status_kb(pid, "VmHWM") >= service_probe.status_kb(pid, "VmRSS") > 0
    assert service_probe.open_fds(pid) >= 3
    assert service_probe.cpu_seconds(pid) > 0


# -- arguments ---------------------------------------------------------------------------
def test_bench_arguments_default_and_reject_unknown_settings() -> None:
    args = bench_service.parse_args([])
    assert (args.n, args.repeat) == (100_000, 3)
    assert args.settings == ["count", "labels", "event-time", "kserve"]
    assert bench_service.parse_args(["--settings", "kserve, count"]).settings == \
        ["kserve", "count"]
    with pytest.raises(SystemExit):
        bench_service.parse_args(["--settings", "count,bogus"])
    with pytest.raises(SystemExit):
        bench_service.parse_args(["--n", "1000"])


def test_kserve_split_bench_runs_the_same_records_with_the_split_on_and_counts_forwards(
) -> None:
    plain, split = bench_kserve_split.PLAIN, bench_kserve_split.SPLIT
    assert (split.topic, split.kind, split.window) == (plain.topic, plain.kind, plain.window)
    assert plain.kafka == {} and split.kafka == {"kserve_split": True}
    # the stored offsets count each half twice with the split: read, then read forwarded
    assert split.events_per_record == plain.events_per_record / 2 == 0.25
    assert (bench_kserve_split.parse_args([]).n, bench_kserve_split.parse_args([]).repeat) \
        == (100_000, 3)
    with pytest.raises(SystemExit):
        bench_kserve_split.parse_args(["--n", "1000"])


def test_reference_and_soak_arguments() -> None:
    args = reference_loop.parse_args(["--bootstrap", "h:1", "--topic", "a", "--topic", "b",
                                      "--records", "7", "--labels-topic", "b"])
    assert (args.topic, args.records, args.kind, args.labels_topic) == (["a", "b"], 7,
                                                                       "native", "b")
    with pytest.raises(SystemExit):
        reference_loop.parse_args(["--bootstrap", "h:1", "--records", "7"])
    soak = soak_service.parse_args([])
    assert (soak.seconds, soak.rate, soak.label_share, soak.compress) == (600, 20_000, 1, 60)
    with pytest.raises(SystemExit):
        soak_service.parse_args(["--label-share", "2"])


def test_bench_report_takes_the_median_of_paired_ratios() -> None:
    run = bench_service.Run
    ckpt = bench_service.Checkpoints
    service = [run(40_000, 18.0, 320, 6.5, ckpt(1024, 10_240, 290_000, 20_480)),
               run(50_000, 17.0, 322, 6.0, ckpt(2048, 8_192, 290_000, 10_240)),
               run(30_000, 19.0, 321, 7.0, ckpt(1024, 9_216, 280_000, 15_360))]
    reference = [run(40_000, 12.0, 180), run(45_000, 13.0, 188), run(60_000, 12.5, 185)]
    line = bench_service.report(bench_service.SETTINGS["count"], service, reference)
    # pairs 100%, 111%, 50%: the median pair, not the medians' 40k / 45k = 89%
    assert line.split()[:6] == ["count", "40.0k", "45.0k", "100%", ">=80%", "PASS"]
    assert "18.0/12.5 (69%)" in line
    assert "322/188" in line
    # checkpoint bytes per persist: each column's median over the runs
    assert "1.0/9.0/283.2 kB 15.0 kB/s" in line


# -- the scale-out benchmark ---------------------------------------------------------------
def test_replicas_events_put_every_model_on_every_partition() -> None:
    every = {(m, p) for m in range(2) for p in range(bench_replicas.PARTITIONS)}
    assert {bench_replicas.placement(i, 1) for i in range(12)} == every
    placed = [bench_replicas.placement(i, 3) for i in range(36)]
    assert set(placed) == every
    assert placed[:7] == [(0, 0)] * 3 + [(0, 1)] * 3 + [(0, 2)]
    # a partition's next block is the other model's
    assert placed[18:21] == [(1, 0)] * 3


def test_replicas_efficiency_is_rate_against_linear_scaling() -> None:
    assert bench_replicas.efficiency(3000.0, 2, 2000.0) == 0.75
    assert bench_replicas.efficiency(2000.0, 1, 2000.0) == 1.0


def _partial(partition: int, index: int | None) -> Partial:
    return Partial(model="m", version="1" if index is not None else "",
                                  topic="t", partition=partition, watermark_ms=0, index=index)


def test_replicas_latency_runs_from_the_last_partitions_first_copy() -> None:
    partials = [(_partial(0, 7), 100, 1_000), (_partial(1, 7), 100, 1_400),
                (_partial(1, 7), 100, 2_500),  # a copy sent again: its first send counts
                (_partial(1, None), 20, 3_000),  # a heartbeat: no window
                (_partial(0, 8), 100, 4_000)]
    # window 9 was stored without partials read back: left out
    stored = {("m", 7): 1_900, ("m", 8): 4_250, ("m", 9): 5_000}
    assert bench_replicas.added_latency(partials, stored) == [0.5, 0.25]


def test_replicas_arguments() -> None:
    args = bench_replicas.parse_args([])
    assert (args.n, args.repeat, args.replicas, args.partials, args.run_length) == \
        (200_000, 1, [1, 2, 3], True, 500)
    assert not bench_replicas.parse_args(["--no-partials"]).partials
    assert bench_replicas.parse_args(["--replicas", "1, 3"]).replicas == [1, 3]
    with pytest.raises(SystemExit):
        bench_replicas.parse_args(["--replicas", "0"])
    with pytest.raises(SystemExit):
        bench_replicas.parse_args(["--n", "100"])


# -- shipped pairs ------------------------------------------------------------------------
def test_shipping_bench_round_trips_every_pair_in_fewer_bytes_than_json() -> None:
    with bench_shipping.sqlite_store() as store:
        _, _, per_pair = bench_shipping.run(store, 300, 100)  # asserts every pair came back
        with store.transaction() as tx:
            pairs = bench_shipping.buffer_of(0, 50).join(tx, {})[bench_shipping.MODEL]
    assert 0 < per_pair < bench_shipping.json_bytes(pairs)
