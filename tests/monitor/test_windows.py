"""Windows of the streaming service: count and event-time windows, checkpoints, memory.

Unit tests of ``monitor.stream.windows``, ``monitor.stream.columns`` and ``monitor.stream.pipeline``
on the seeded example data: a window fed event by event gives the same result
as ``driftloop evaluate``'s batch path on the same rows, a checkpoint/restore
in the middle changes nothing, buffered rows never exceed ``buffer_rows``, and
a baseline swap leaves open windows on the baseline they started with.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from monitor.baseline import Baseline, build_baseline
from monitor.cli.examples import FEATURES, generate
from monitor.cli.replay import prediction_events
from monitor.config import ModelConfig, WindowConfig
from monitor.evaluate import evaluate_frame
from monitor.ingest import Prediction
from monitor.store.engine import pack_state, unpack_state
from monitor.stream import ModelPipeline
from monitor.stream.columns import _categorical, _to_columns_fast, to_columns
from monitor.stream.window_state import MAX_EXTRA_KEYS

ROWS = 300


@pytest.fixture(scope="module")
def data() -> Any:
    return generate(seed=11, reference_rows=3000, window_rows=ROWS)


@pytest.fixture(scope="module")
def baseline(data: Any) -> Baseline:
    return build_baseline(data.reference, "carloan", target="repaid", prediction="prediction",
                          score="score", id_column="request_id", timestamp="timestamp")


def events(frame: pd.DataFrame, start_offset: int = 0) -> list[Prediction]:
    """The frame's rows as decoded native events (through JSON, as from Kafka)."""
    out = []
    pairs = prediction_events(frame, model="carloan", version="1", features=FEATURES,
                              prediction="prediction", score="score")
    for offset, (_, value) in enumerate(pairs, start=start_offset):
        obj = orjson.loads(value)
        stamp = int(pd.Timestamp(obj["timestamp"]).value // 1_000_000)
        out.append(Prediction("carloan", "1", obj["request_id"], stamp, obj["features"],
                              obj["prediction"], obj["score"], None, None, "predictions", 0,
                              offset))
    return out


def pipeline(baseline: Baseline, **window: Any) -> ModelPipeline:
    config = ModelConfig(baseline="unused",
                         window=WindowConfig.model_validate(window or {"rows": ROWS}))
    return ModelPipeline("carloan", config, baseline)


def run(p: ModelPipeline, stream: list[Prediction]) -> list[dict[str, Any]]:
    return [p.evaluate(closed).result for event in stream for closed in p.add(event)]


COMPARED = ("rows", "dataset_drift", "drift_share", "features", "prediction_drift",
            "score_drift", "quality", "start", "end", "estimated_performance")


def assert_close(got: Any, want: Any, where: str = "") -> None:
    """Equal, floats to 1e-12 (chunked folding sums bins in another order)."""
    if isinstance(want, float) and isinstance(got, float):
        assert got == pytest.approx(want, rel=1e-12, abs=1e-15), where
    elif isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), where
        for key in want:
            assert_close(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_close(g, w, f"{where}[{i}]")
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


def batch_results(baseline: Baseline, frame: pd.DataFrame) -> list[dict[str, Any]]:
    config = ModelConfig(baseline="unused", window=WindowConfig.model_validate({"rows": ROWS}))
    return [o.result for o in evaluate_frame(baseline, frame, config, window_rows=ROWS)]


# -- count windows ----------------------------------------------------------------------------
def test_count_windows_equal_the_batch_path_row_for_row(data: Any, baseline: Baseline) -> None:
    frame = data.current.iloc[: 3 * ROWS]
    got = run(pipeline(baseline), events(frame))
    want = batch_results(baseline, frame)
    assert [r["window"] for r in got] == [0, 1, 2]
    assert [r["first_offset"] for r in got] == [0, ROWS, 2 * ROWS]
    assert [r["estimated_performance"]["n"] for r in got] == [ROWS] * 3  # compared below
    for g, w in zip(got, want, strict=True):
        for key in COMPARED:
            assert_close(g[key], w[key], key)


def test_count_window_stays_open_until_full(data: Any, baseline: Baseline) -> None:
    p = pipeline(baseline)
    assert run(p, events(data.current.iloc[: ROWS - 1])) == []
    stream = p.streams[("1", 0)]
    assert [w.n_rows for w in stream.open.values()] == [ROWS - 1]


# -- event-time windows -----------------------------------------------------------------------
def _timed(offset: int, ts_ms: int, base: Prediction) -> Prediction:
    return Prediction("carloan", "1", f"r{offset}", ts_ms, base.features, base.prediction,
                      base.score, None, None, "predictions", 0, offset)


def test_event_time_windows_close_on_the_watermark_and_count_late_events(
        data: Any, baseline: Baseline) -> None:
    late: list[int] = []
    config = ModelConfig(baseline="unused",
                         window=WindowConfig.model_validate({"duration": "60s",
                                                             "allowed_lateness": "30s"}))
    p = ModelPipeline("carloan", config, baseline, on_late=lambda model, n: late.append(n))
    base = events(data.current.iloc[:1])[0]
    minute = 60_000
    # window 0: [0, 60s); an out-of-order event within the lateness still counts
    times = [1_000, 20_000, 59_000, 61_000, 70_000, 10_000, 95_000]
    closed = []
    for offset, ts in enumerate(times):
        closed += [p.evaluate(c).result for c in p.add(_timed(offset, ts, base))]
    # the watermark 95s - 30s = 65s passed the end of window 0 (60s) only at the last event
    assert [r["window"] for r in closed] == [0]
    assert closed[0]["rows"] == 4  # 1s, 20s, 59s and the late-but-allowed 10s
    assert closed[0]["start"] == "1970-01-01T00:00:00Z"
    assert closed[0]["end"] == "1970-01-01T00:01:00Z"
    # an event for the closed window is late: counted, not evaluated
    assert run(p, [_timed(7, 30_000, base)]) == []
    assert late == [1]
    # the open window 1 holds 61s, 70s and 95s
    stream = p.streams[("1", 0)]
    assert {i: w.n_rows for i, w in stream.open.items()} == {1: 3}
    assert stream.watermark_ms == 95_000 and stream.closed_below == 1
    assert minute == stream.duration_ms


# -- checkpoints ------------------------------------------------------------------------------
def as_stored(state: dict[str, Any]) -> Any:
    """A checkpoint state as the store gives it back (MessagePack)."""
    return unpack_state(pack_state(state))


@pytest.mark.parametrize("packed", [True, False], ids=["msgpack", "json"])
@pytest.mark.parametrize("cut", [1, 150, 299, 300, 451])
def test_checkpoint_restore_mid_stream_gives_identical_results(
        data: Any, baseline: Baseline, cut: int, packed: bool) -> None:
    stream = events(data.current.iloc[: 2 * ROWS])
    uninterrupted = run(pipeline(baseline), stream)

    first = pipeline(baseline)
    before = run(first, stream[:cut])
    checkpoint = first.streams[("1", 0)].checkpoint(packed)
    # as stored: MessagePack now, JSON before (a checkpoint of the previous format)
    state = as_stored(checkpoint) if packed else orjson.loads(orjson.dumps(checkpoint))
    second = pipeline(baseline)
    second.stream("1", 0).restore(state)
    after = run(second, stream[cut:])
    assert len(before + after) == len(uninterrupted) == 2
    for g, w in zip(before + after, uninterrupted, strict=True):
        for key in (*COMPARED, "window", "first_offset"):
            assert_close(g[key], w[key], key)


@pytest.mark.parametrize("cut", [150, 451])
def test_a_restored_stream_goes_on_bit_for_bit(data: Any, baseline: Baseline, cut: int) -> None:
    """After a checkpoint (which folds the buffered rows) the process that wrote it and one
    restored from it hold the same summary, so their next windows are identical, every
    float included; only the fold order differs from an uninterrupted run."""
    stream = events(data.current.iloc[: 3 * ROWS])
    first = pipeline(baseline)
    run(first, stream[:cut])
    state = as_stored(first.streams[("1", 0)].checkpoint())
    second = pipeline(baseline)
    second.stream("1", 0).restore(state)
    restored, kept = run(second, stream[cut:]), run(first, stream[cut:])
    assert len(restored) == len(kept) >= 2
    assert repr(restored) == repr(kept)


def test_timed_checkpoint_keeps_watermark_and_closed_windows(data: Any,
                                                             baseline: Baseline) -> None:
    config = ModelConfig(baseline="unused", window=WindowConfig.model_validate({"duration": "60s"}))
    base = events(data.current.iloc[:1])[0]
    late: list[int] = []
    first = ModelPipeline("carloan", config, baseline)
    run(first, [_timed(i, ts, base) for i, ts in enumerate([1_000, 61_000, 62_000])])
    state = first.streams[("1", 0)].checkpoint()
    second = ModelPipeline("carloan", config, baseline, on_late=lambda m, n: late.append(n))
    second.stream("1", 0).restore(as_stored(state))
    assert run(second, [_timed(3, 5_000, base)]) == []  # window 0 closed before the restart
    assert late == [1]
    closed = run(second, [_timed(4, 125_000, base)])
    assert [(r["window"], r["rows"]) for r in closed] == [(1, 2)]


# -- bounded memory ---------------------------------------------------------------------------
def test_buffered_rows_never_exceed_buffer_rows(data: Any, baseline: Baseline) -> None:
    buffer_rows = 64
    p = pipeline(baseline, duration="30d", buffer_rows=buffer_rows)  # one long window
    most = 0
    for event in events(data.current.iloc[: 5 * ROWS]):
        p.add(event)
        most = max(most, sum(len(w.rows) for w in p.streams[("1", 0)].open.values()))
    assert most == buffer_rows - 1  # folded into the summary when it reaches the cap
    window = next(iter(p.streams[("1", 0)].open.values()))
    assert window.n_rows == 5 * ROWS
    assert window.summary.n_rows + len(window.rows) == 5 * ROWS


# -- columns ----------------------------------------------------------------------------------
def _slow(profiles: Any, rows: list[dict[str, Any]], extra: dict[str, Any]) -> Any:
    import monitor.stream.columns as columns

    fast = columns._to_columns_fast
    columns._to_columns_fast = lambda *args: None
    try:
        return to_columns(profiles, rows, extra)
    finally:
        columns._to_columns_fast = fast


def _same_chunk(a: Any, b: Any) -> None:
    assert list(a.arrays) == list(b.arrays)
    for name in a.arrays:
        x, y = a.arrays[name], b.arrays[name]
        assert x.dtype == y.dtype, name
        if x.dtype == object:
            assert list(x) == list(y), name
        else:
            np.testing.assert_array_equal(x, y, err_msg=name)
    assert a.type_violations == b.type_violations
    assert a.extra_keys == b.extra_keys and a.n_rows == b.n_rows


def _rows(data: Any, n: int) -> Iterator[dict[str, Any]]:
    for event in events(data.current.iloc[:n]):
        yield dict(event.features)


def test_fast_columns_equal_the_general_path(data: Any, baseline: Baseline) -> None:
    profiles = baseline.summary_profiles()
    rows = list(_rows(data, 500))
    extra: dict[str, list[Any]] = {"prediction": [r % 2 for r in range(500)],
                                   "score": [0.25] * 500}
    assert _to_columns_fast(profiles, rows, extra) is not None  # the example takes it
    _same_chunk(to_columns(profiles, rows, extra), _slow(profiles, rows, extra))


@pytest.mark.parametrize("change", ["extra_key", "missing_key", "text_in_number",
                                    "numeric_text", "none", "bool_in_category"])
def test_unusual_rows_give_the_same_columns(data: Any, baseline: Baseline, change: str) -> None:
    profiles = baseline.summary_profiles()
    rows = list(_rows(data, 50))
    row = rows[7]
    if change == "extra_key":
        row["surprise"] = 1
    elif change == "missing_key":
        del row["car_value"]
    elif change == "text_in_number":
        row["car_value"] = "lots"
    elif change == "numeric_text":
        row["car_value"] = "1234.5"
    elif change == "none":
        row["car_value"] = None
        row["size_of_downpayment"] = None
    else:
        row["size_of_downpayment"] = True
    extra: dict[str, list[Any]] = {"prediction": [1] * 50, "score": [0.5] * 50}
    _same_chunk(to_columns(profiles, rows, extra), _slow(profiles, rows, extra))


@pytest.mark.parametrize("values", [[1, 0, 1, 1], [3, "a", 3, -1, "3", 10**20], ["x", "y"]])
def test_category_columns_are_the_values_texts(values: list[Any]) -> None:
    out = _categorical(values, False)
    assert out.dtype == object and list(out) == [str(v) for v in values]
    assert all(type(v) is str for v in out)


# -- baseline swap ----------------------------------------------------------------------------
def test_baseline_swap_open_windows_finish_on_their_baseline(data: Any,
                                                             baseline: Baseline) -> None:
    other = build_baseline(data.current.iloc[4 * ROWS:5 * ROWS], "carloan",
                           prediction="prediction", score="score", id_column="request_id",
                           timestamp="timestamp")
    stream = events(data.current.iloc[: 3 * ROWS])
    config = ModelConfig(baseline="unused", window=WindowConfig.model_validate({"rows": ROWS}))
    loads: list[str] = []

    def loader(key: str) -> Baseline:
        loads.append(key)
        return {"runs:/a": baseline, "runs:/b": other}[key]

    p = ModelPipeline("carloan", config, baseline, baseline_key="runs:/a", loader=loader)
    results = run(p, stream[: ROWS + 100])  # window 0 closed, window 1 open on a
    p.swap_baseline("runs:/b", other)
    state = as_stored(p.streams[("1", 0)].checkpoint())
    results += run(p, stream[ROWS + 100:])
    assert [r["baseline"] for r in results] == ["runs:/a", "runs:/a", "runs:/b"]
    batch_a = batch_results(baseline, data.current.iloc[: 3 * ROWS])
    batch_b = batch_results(other, data.current.iloc[: 3 * ROWS])
    for got, want in zip(results, [batch_a[0], batch_a[1], batch_b[2]], strict=True):
        for key in COMPARED:
            assert_close(got[key], want[key], key)

    # a restart after the swap: the checkpoint names a, the pipeline starts on b
    restarted = ModelPipeline("carloan", config, other, baseline_key="runs:/b", loader=loader)
    restarted.stream("1", 0).restore(state)
    again = run(restarted, stream[ROWS + 100:])
    assert loads == ["runs:/a"]
    assert [r["baseline"] for r in again] == ["runs:/a", "runs:/b"]
    for got, want in zip(again, results[1:], strict=True):
        for key in COMPARED:
            assert_close(got[key], want[key], key)


@pytest.mark.parametrize("batch", [1, 7, 299, 1000])
def test_add_many_gives_the_same_windows_as_one_at_a_time(
    data: Any, baseline: Baseline, batch: int
) -> None:
    stream = events(data.current.iloc[: 4 * ROWS + 17])
    one, many = pipeline(baseline, rows=ROWS, buffer_rows=64), pipeline(
        baseline, rows=ROWS, buffer_rows=64)
    expected = run(one, stream)
    got = []
    for start in range(0, len(stream), batch):
        chunk = stream[start:start + batch]
        got += [many.evaluate(c).result for c in many.add_many("1", 0, chunk)]
        assert all(len(w.rows) <= 64 for s in many.streams.values() for w in s.open.values())
    assert len(got) == 4
    assert got == expected


def test_extra_keys_kept_per_window_are_capped_and_the_rest_counted(
        data: Any, baseline: Baseline) -> None:
    p = pipeline(baseline)
    stream = events(data.current.iloc[:ROWS])
    for i, event in enumerate(stream):  # a new unknown key in every event: 300 names
        event.features = {**event.features, f"extra_{i:03d}": 1.0}
    for event in stream[: ROWS // 2]:
        assert p.add(event) == []
    state = as_stored(p.streams[("1", 0)].checkpoint())
    [open_window] = state["open"]
    assert len(open_window["extra_keys"]) == MAX_EXTRA_KEYS
    assert open_window["extra_keys_beyond"] == ROWS // 2 - MAX_EXTRA_KEYS
    restored = pipeline(baseline)
    restored.stream("1", 0).restore(state)
    [result] = run(restored, stream[ROWS // 2:])
    quality = result["quality"]
    assert quality["extra_columns"] == [f"extra_{i:03d}" for i in range(MAX_EXTRA_KEYS)]
    assert quality["extra_columns_not_kept"] == ROWS - MAX_EXTRA_KEYS
    assert f"more than {MAX_EXTRA_KEYS} column(s) not in the baseline" in " ".join(
        quality["violations"])
