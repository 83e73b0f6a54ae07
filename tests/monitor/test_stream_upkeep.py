"""Streams that go quiet, versions that multiply, records that break, halves replayed.

Unit tests of the robustness parts of ``monitor.stream``: idle event-time streams
close their windows on processing time, quiet streams retire and free their
version's place, ``max_versions`` bounds a model's versions, any exception while
decoding a record dead-letters that record, quarantined records are poison, and
a replayed KServe half is parked only when it was still waiting at the last persist.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pytest

from monitor.baseline import Baseline
from monitor.config import ModelConfig
from monitor.ingest import DecodeError, Prediction
from monitor.ingest.codecs.kserve import REQUEST_TYPE, RESPONSE_TYPE
from monitor.stream import ModelPipeline
from monitor.stream.poison import PoisonHunt, transient
from monitor.stream.records import RecordReader
from tests.monitor.test_codecs import decoder, native, record
from tests.monitor.test_windows import ROWS, _timed, baseline, data, events

__all__ = ["baseline", "data"]  # fixtures used here

HOUR = 3_600_000


def pipeline(baseline: Baseline, max_versions: int = 20, **window: Any) -> ModelPipeline:
    config = ModelConfig.model_validate({"baseline": "unused", "window": window or {"rows": ROWS},
                                         "max_versions": max_versions})
    return ModelPipeline("carloan", config, baseline)


def test_an_idle_event_time_stream_closes_its_window_on_processing_time(
        data: Any, baseline: Baseline) -> None:
    p = pipeline(baseline, duration="1h", idle_timeout="5m")
    base = events(data.current.head(10))
    stream = [_timed(i, 10 * HOUR + i * 1000, e) for i, e in enumerate(base)]
    assert p.add_many("1", 0, stream, now_ms=1_000_000) == []
    closed, retired = p.housekeep(1_000_000 + 4 * 60_000)  # idle 4 minutes: not yet
    assert closed == [] and retired == []
    # idle 61 minutes: event time is taken to have moved on with the clock
    closed, retired = p.housekeep(1_000_000 + 61 * 60_000)
    assert [c.window.n_rows for c in closed] == [10] and retired == []
    assert p.streams[("1", 0)].open == {}


def test_idle_timeout_defaults_to_duration_plus_lateness(baseline: Baseline) -> None:
    assert pipeline(baseline, duration="1h", allowed_lateness="10m").idle_timeout_ms() == \
        70 * 60_000
    assert pipeline(baseline, rows=ROWS).idle_timeout_ms() is None


def test_a_quiet_stream_retires_with_its_partial_window_and_frees_its_version(
        data: Any, baseline: Baseline) -> None:
    p = pipeline(baseline, rows=ROWS, retire_after="1h", max_versions=1)
    p.add_many("1", 0, events(data.current.head(120)), now_ms=0)
    assert p.admits("1") and not p.admits("2")  # one live version at most
    closed, retired = p.housekeep(2 * HOUR)
    assert retired == [("1", 0)]
    assert [c.window.n_rows for c in closed] == [120]  # evaluated as it stands
    assert p.streams == {} and p.admits("2")


def _reader(p: ModelPipeline, **kwargs: Any) -> tuple[RecordReader, list[tuple[Any, str]]]:
    written: list[tuple[Any, str]] = []

    class Writer:
        def write(self, rec: Any, error: Any) -> None:
            written.append((rec, error.reason if isinstance(error, DecodeError) else str(error)))

        def flush(self, timeout_seconds: float | None = 30.0) -> int:
            return 0

    d = decoder(**kwargs)
    writer = Writer()
    return RecordReader(d, {"carloan": p}, lambda: writer), written


def test_any_exception_while_decoding_dead_letters_the_record(baseline: Baseline) -> None:
    reader, written = _reader(pipeline(baseline))

    def broken(rec: Any, replayed: bool = False) -> list[Prediction]:
        raise RecursionError("maximum recursion depth exceeded")

    reader.decoder.decode_prediction = broken  # type: ignore[method-assign]
    assert reader.predictions(("predictions", 0), [record(orjson.dumps(native()))], -1) == []
    assert [reason for _, reason in written] == ["undecodable"]
    assert reader.take_invalid() == Counter({"undecodable": 1})


def test_versions_beyond_max_versions_are_dead_letters(baseline: Baseline) -> None:
    reader, written = _reader(pipeline(baseline, max_versions=3))
    records = [record(orjson.dumps(native(version=str(v), request_id=str(v))))
               for v in range(10)]
    decoded = reader.predictions(("predictions", 0), records, -1)
    assert [e.version for e in decoded] == ["0", "1", "2"]
    assert [reason for _, reason in written] == ["too_many_versions"] * 7


def test_a_quarantined_record_is_poison_and_nothing_else_of_it_counts(
        baseline: Baseline) -> None:
    reader, written = _reader(pipeline(baseline))
    records = [record(orjson.dumps(native(request_id=str(i)))) for i in range(3)]
    reader.quarantined.add(("predictions", 0, records[1].offset))
    decoded = reader.predictions(("predictions", 0), records, -1)
    assert [e.request_id for e in decoded] == ["0", "2"]
    assert [(rec.offset, reason) for rec, reason in written] == [(records[1].offset, "poison")]


def _halves(ce_id: str) -> tuple[Any, Any]:
    def headers(kind: str) -> list[tuple[str, bytes]]:
        return [("ce_specversion", b"1.0"), ("ce_id", ce_id.encode()), ("ce_type", kind.encode()),
                ("ce_source", b"t"), ("ce_inferenceservicename", b"carloan")]
    return (record(orjson.dumps({"instances": [[1.0, "a", True]]}), headers(REQUEST_TYPE)),
            record(orjson.dumps({"predictions": [1]}), headers(RESPONSE_TYPE),
                   partition=1))


def test_a_replayed_kserve_half_is_parked_only_if_it_was_waiting_at_the_last_persist() -> None:
    d = decoder()
    joined_before, _ = _halves("joined-before")
    waiting, response_late = _halves("was-waiting")
    d.joiner.expect({("predictions", 0): ["was-waiting"]})
    # replayed after a restart: the first was joined before the crash, the second was not
    assert d.decode_prediction(joined_before, replayed=True) == []
    assert d.decode_prediction(waiting, replayed=True) == []
    assert d.joiner.pending_ids() == {("predictions", 0): ["was-waiting"]}
    assert d.joiner.pending_offsets() == {("predictions", 0): waiting.offset}
    [prediction] = d.decode_prediction(response_late)
    assert prediction.request_id == "was-waiting:0"
    assert d.joiner.pending_ids() == {} and d.joiner.take_evicted() == []


class _Partitions:
    def __init__(self) -> None:
        self.marks: dict[tuple[str, int], int] = {}

    def owns(self, tp: tuple[str, int]) -> bool:
        return True

    def handled(self, tp: tuple[str, int]) -> int:
        return self.marks.get(tp, -1)


class _Reader:
    def __init__(self) -> None:
        self.quarantined: set[tuple[str, int, int]] = set()


class _Service:
    """What the poison hunt reads of the service."""

    def __init__(self) -> None:
        self.last_polled: dict[tuple[str, int], tuple[int, int]] = {}
        self.reader = _Reader()
        self.partitions = _Partitions()


def test_the_poison_hunt_narrows_to_one_record_and_quarantines_it_after_n_failures() -> None:
    from sqlalchemy.exc import DataError, OperationalError

    service: Any = _Service()
    hunt = PoisonHunt(max_attempts=3)
    service.last_polled = {("predictions", 0): (100, 199)}
    hunt.failed(OperationalError("select 1", {}, Exception("server closed")), service)
    assert not hunt.active  # the store was away: retry the batch as is
    hunt.failed(DataError("insert", {}, Exception("invalid byte sequence")), service)
    assert hunt.active and hunt.step_options() == {"max_records": 1, "force_persist": True}
    for _ in range(3):
        service.last_polled = {("predictions", 0): (142, 142)}
        hunt.failed(DataError("insert", {}, Exception("bad value")), service)
    assert service.reader.quarantined == {("predictions", 0, 142)}
    service.partitions.marks[("predictions", 0)] = 150
    hunt.succeeded(service)
    assert hunt.active  # not past the failed poll yet
    service.partitions.marks[("predictions", 0)] = 200
    hunt.succeeded(service)
    assert not hunt.active


@pytest.mark.parametrize(("error", "expected"), [
    (ConnectionRefusedError(), True), (ValueError("x"), False), (TypeError("y"), False),
])
def test_transient_failures_are_told_from_data_failures(error: BaseException,
                                                        expected: bool) -> None:
    assert transient(error) is expected
