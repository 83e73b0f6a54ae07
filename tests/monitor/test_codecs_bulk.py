"""The batch path (one msgspec call per poll into columns, windows folding column slices)
against the per-record path: for random mixes of good and bad records, the same events,
the same dead letters with the same reasons and messages, the same versions admitted,
the same window results and checkpoints, and the same rows kept for drift reports.

A clean poll must take the batch path (else this compares the per-record path with
itself); a poll with a record the per-record path would dead-letter, or would decode
to values the batch path cannot promise, must take the per-record path whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from kafka.consumer.fetcher import ConsumerRecord
from prometheus_client import CollectorRegistry

from monitor.baseline import Baseline
from monitor.cli.examples import FEATURES, sample_features
from monitor.config import Config
from monitor.ingest import DecodeError, Decoder, Prediction
from monitor.ingest.batch import PredictionBatch
from monitor.ingest.codecs.bulk import decode_native
from monitor.metrics import Metrics
from monitor.store import Store
from monitor.stream import ModelPipeline, ReportJob, ReportRows, Service
from monitor.stream.records import runs_of

TOPIC = "predictions"
BROKER_MS = 1_546_300_800_000  # 2019-01-01
MAX_BYTES = 4000
POOL = sample_features(np.random.default_rng(3), 400, 0).to_dict("records")


def _clean(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


POOL = [{k: _clean(v) for k, v in row.items() if k in FEATURES} for row in POOL]


class Letters:
    """A dead-letter writer that remembers (offset, reason, message)."""

    def __init__(self) -> None:
        self.written: list[tuple[int, str, str]] = []

    def write(self, record: Any, error: DecodeError | str) -> None:
        assert isinstance(error, DecodeError)
        self.written.append((record.offset, error.reason, error.message))

    def flush(self, timeout_seconds: float | None = 30.0) -> int:
        return 0


class Side:
    """One service without Kafka: a pipeline, a reader and report rows."""

    def __init__(self, tmp_path: Path, baseline: Path, window: dict[str, Any],
                 models: tuple[str, ...] = ("carloan",)) -> None:
        self.config = Config.model_validate({"models": {model: {
            "baseline": str(baseline), "window": window, "max_versions": 2}
            for model in models}})
        self.pipelines = {model: ModelPipeline(model, self.config.models[model],
                                               Baseline.load(baseline)) for model in models}
        self.pipeline = self.pipelines["carloan"]
        self.jobs: list[ReportJob] = []
        self.rows = ReportRows(40, self._submit)
        decoder = Decoder(["native"], max_record_bytes=MAX_BYTES,
                          feature_order=lambda m: None, endpoint_version=lambda m, e: None,
                          known_models=lambda m: m in models)
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.letters = Letters()
        self.service = Service(self.config, self.pipelines,
                               Store(f"sqlite:///{tmp_path / 'state.db'}"),
                               Metrics(CollectorRegistry()), decoder, None,
                               self.letters,  # type: ignore[arg-type]
                               report_rows=self.rows)
        self.late = 0
        for pipeline in self.pipelines.values():
            pipeline._on_late = self._count_late

    def _count_late(self, model: str, n: int) -> None:
        self.late += n

    def _submit(self, job: ReportJob) -> bool:
        self.jobs.append(job)
        return True

    def feed(self, records: list[Any], bulk: bool) -> tuple[list[Prediction], bool]:
        """The poll's events, and whether the batch path took it."""
        reader = self.service.reader
        key = (TOPIC, 0)
        if bulk:
            runs = reader.prediction_runs(key, records, 0)
        else:
            runs = list(runs_of(reader.predictions(key, records, 0)))
        events: list[Prediction] = []
        batched = bool(runs) and all(isinstance(run, PredictionBatch) for _, run in runs)
        for (model, version), run in runs:
            self.service.feed.add_run(model, version, 0, run)
            events += run.events() if isinstance(run, PredictionBatch) else run
        return events, batched

    def state(self) -> Any:
        results = [(o.key, o.start_ms, o.end_ms, o.result) for o in
                   self.service.persister.outputs]
        streams = {(m, *k): s.checkpoint() for m, p in self.pipelines.items()
                   for k, s in p.streams.items()}
        reports = [(job.key, [e.offset for e in job.rows], job.covered) for job in self.jobs]
        return (results, streams, reports,
                {m: sorted(p.versions) for m, p in self.pipelines.items()}, self.late,
                self.rows.n_rows)


def record(offset: int, value: bytes | None, headers: list[tuple[str, bytes]] | None = None,
           broker_ms: int = BROKER_MS) -> Any:
    return ConsumerRecord(TOPIC, 0, 0, offset, broker_ms, 0, None, value, headers or [],
                          None, -1, -1, -1)


def good(i: int, stamp: int, version: Any = "1") -> dict[str, Any]:
    features = dict(POOL[i % len(POOL)])
    return {"model": "carloan", "version": version, "request_id": f"r{i}",
            "timestamp": stamp, "features": features, "prediction": i % 2,
            "score": (i % 97) / 97}


def dumps(obj: Any) -> bytes:
    # the standard library: integers of any size, non-ASCII text as UTF-8
    return json.dumps(obj, ensure_ascii=False).encode()


# (name, how the event changes); each returns the value bytes and headers
def _mutations() -> dict[str, Any]:
    def field(name: str, value: Any) -> Any:
        def change(event: dict[str, Any]) -> dict[str, Any]:
            return {**event, name: value}
        return change

    def feature(name: str, value: Any) -> Any:
        def change(event: dict[str, Any]) -> dict[str, Any]:
            return {**event, "features": {**event["features"], name: value}}
        return change

    def drop(name: str) -> Any:
        return lambda event: {k: v for k, v in event.items() if k != name}

    def drop_feature(name: str) -> Any:
        return lambda event: {**event, "features": {k: v for k, v in event["features"].items()
                                                    if k != name}}

    return {
        # valid for both paths, but only the per-record path reproduces them
        "int_version": field("version", 2),
        "int_request_id": field("request_id", 123),
        "rfc3339": field("timestamp", "2019-01-01T00:00:05+00:00"),
        "float_stamp": field("timestamp", 1_546_300_801_500.0),
        "string_prediction": field("prediction", "yes"),
        "int_score": field("score", 1),
        "null_score": field("score", None),
        "class_scores": field("scores", {"0": 0.25, "1": 0.75}),
        "latency": field("latency_ms", 12.5),
        "unknown_field": field("trace", {"a": [1, 2, {"b": None}]}),
        "string_in_numeric": feature("car_value", "n/a"),
        "bool_in_numeric": feature("age", True),
        "null_feature": feature("credit_score", None),
        "int_category": feature("salary_range", 3),
        "big_int_category": feature("salary_range", 2**70),
        "u64_prediction": field("prediction", 2**63 + 5),
        "big_int_score": field("score", 2**64 + 1),
        "below_int64_latency": field("latency_ms", -(2**63) - 1),
        "huge_numeric": feature("car_value", 1e19),
        "big_int_numeric": feature("car_value", 2**64 + 1),
        "missing_feature": drop_feature("age"),
        "extra_feature": feature("colour", "red"),
        "version_3": field("version", "3"),  # a third version: too_many_versions
        # dead letters
        "bool_version": field("version", True),
        "bad_version": field("version", "-1"),
        "unknown_model": field("model", "other"),
        "model_number": field("model", 5),
        "nul_id": field("request_id", "a\x00b"),
        "long_id": field("request_id", "x" * 201),
        "empty_id": field("request_id", ""),
        "float_id": field("request_id", 1.5),
        "old_stamp": field("timestamp", 5),
        "future_stamp": field("timestamp", BROKER_MS + 10**9),
        "naive_stamp": field("timestamp", "2019-01-01T00:00:00"),
        "bool_stamp": field("timestamp", False),
        "bool_prediction": field("prediction", True),
        "null_prediction": field("prediction", None),
        "string_score": field("score", "high"),
        "bad_scores": field("scores", {"0": "x"}),
        "list_feature": feature("age", [1]),
        "features_list": field("features", [1, 2]),
        "no_features": drop("features"),
        "no_model": drop("model"),
        "no_timestamp": drop("timestamp"),
    }


MUTATIONS = _mutations()


def marked(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "features": {**event["features"], "salary_range": "MARK"}}
RAW = {  # values that are not a dumped dict
    "empty": b"",
    "tombstone": None,
    "not_json": b'{"model": "carloan",',
    "array": b"[1, 2]",
    "nan": None,  # filled per event below
    "overflow_unknown": None,
    "bad_utf8_unknown": None,
    "deep_unknown": None,
    "duplicate_key": None,
    "oversized": None,
    "ce_header": None,
    "other_header": None,
    "content_type": None,
    "two_values": None,
    "bad_utf8_feature": None,
    "overflow_feature": None,
    "overflow_score": None,
}


def build(kind: str, i: int, stamp: int) -> Any:
    event = good(i, stamp)
    headers: list[tuple[str, bytes]] = []
    broker = BROKER_MS
    if kind == "good":
        value: bytes | None = dumps(event)
    elif kind in MUTATIONS:
        value = dumps(MUTATIONS[kind](event))
    elif kind == "nan":
        value = dumps(event).replace(b'"score": ', b'"score": NaN, "x": ', 1)
    elif kind == "overflow_unknown":
        value = dumps(event)[:-1] + b', "x": 1e400}'
    elif kind == "bad_utf8_unknown":
        value = dumps(event)[:-1] + b', "x": "\xff"}'
    elif kind == "deep_unknown":
        value = dumps(event)[:-1] + b', "x": ' + b"[" * 1100 + b"]" * 1100 + b"}"
    elif kind == "duplicate_key":
        value = dumps(event)[:-1] + b', "version": "2"}'
    elif kind == "oversized":
        value = dumps({**event, "pad": "x" * MAX_BYTES})
    elif kind == "ce_header":
        value, headers = dumps(event), [("ce_type", b"x")]
    elif kind == "content_type":
        value, headers = dumps(event), [("Content-Type", b"application/json")]
    elif kind == "other_header":
        value, headers = dumps(event), [("traceparent", b"00-abc")]
    elif kind == "bad_utf8_feature":
        value = dumps(marked(event)).replace(b'"MARK"', b'"\xc0\xaf"')
    elif kind == "overflow_feature":
        value = dumps({**event, "features": {**event["features"], "car_value": 12345.5}})
        value = value.replace(b"12345.5", b"-1e400")
    elif kind == "overflow_score":
        value = dumps({**event, "score": 0.125}).replace(b"0.125", b"1E+309")
    elif kind == "two_values":
        value = dumps(event) + b" " + dumps(event)
    elif kind == "no_broker_time":
        value, broker = dumps(event), -1
    else:
        value = RAW[kind]
    return kind, value, headers, broker


KINDS = ["good"] * 6 + sorted(MUTATIONS) + sorted(RAW) + ["no_broker_time"]
SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


def polls_strategy() -> Any:
    kinds = st.lists(st.sampled_from(KINDS), min_size=1, max_size=60)
    clean = st.integers(min_value=1, max_value=90).map(lambda n: ["good"] * n)
    return st.lists(st.one_of(clean, clean, kinds), min_size=1, max_size=8)


def make_polls(kind_lists: list[list[str]], timed: bool, seed: int) -> list[list[Any]]:
    rng = np.random.default_rng(seed)
    polls, offset = [], 0
    stamp = BROKER_MS - 600_000
    for kinds in kind_lists:
        poll = []
        for kind in kinds:
            # event time moves on, with disorder (late rows) for event-time windows
            stamp += int(rng.integers(0, 4000))
            jitter = int(rng.integers(-90_000, 1)) if timed and rng.random() < 0.2 else 0
            _, value, headers, broker = build(kind, offset, stamp + jitter)
            poll.append(record(offset, value, headers, broker))
            offset += 1
        polls.append(poll)
    return polls


WINDOWS = {
    "rows": {"rows": 50, "buffer_rows": 7},
    "duration": {"duration": 60, "allowed_lateness": 20, "buffer_rows": 7},
}


@pytest.mark.parametrize("kind", sorted(WINDOWS))
@SETTINGS
@given(kind_lists=polls_strategy(), seed=st.integers(0, 2**16))
# two versions live after the first poll (max_versions 2): the clean poll's version is a
# third, a dead letter, which only the per-record path writes
@example(kind_lists=[["int_version", "version_3"], ["good"]], seed=0)
def test_batch_path_agrees_with_the_per_record_path(
        tmp_path_factory: pytest.TempPathFactory, example_baseline: Path, kind: str,
        kind_lists: list[list[str]], seed: int) -> None:
    tmp = tmp_path_factory.mktemp("bulk")
    per_record = Side(tmp / "a", example_baseline, WINDOWS[kind])
    batched = Side(tmp / "b", example_baseline, WINDOWS[kind])
    for kinds, poll in zip(kind_lists, make_polls(kind_lists, kind == "duration", seed),
                           strict=True):
        letters_before = len(per_record.letters.written)
        expected, _ = per_record.feed(poll, bulk=False)
        got, took_batch = batched.feed(poll, bulk=True)
        assert got == expected
        assert batched.letters.written == per_record.letters.written
        clean = len(per_record.letters.written) == letters_before  # every version admitted
        if set(kinds) <= {"good", "other_header"} and clean:
            assert took_batch, kinds
        elif took_batch:
            # only values both paths read alike may take the batch path
            assert set(kinds) <= {"good", "other_header", "latency", "class_scores",
                                  "int_score", "null_score", "null_feature",
                                  "int_version", "int_request_id", "rfc3339", "float_stamp",
                                  "string_prediction", "unknown_field", "int_category", "version_3",
                                  "duplicate_key"}, kinds
    assert batched.state() == per_record.state()


def test_a_clean_poll_is_decoded_into_one_batch_per_version(example_baseline: Path,
                                                             tmp_path: Path) -> None:
    side = Side(tmp_path, example_baseline, WINDOWS["rows"])
    poll = [record(i, dumps(good(i, BROKER_MS - 1000, version="1" if i < 5 else 2)))
            for i in range(8)]
    runs = decode_native(side.service.decoder, poll, lambda m: side.pipeline.feature_kinds())
    assert runs is not None
    assert [(b.model, b.version, b.offsets.tolist()) for b in runs] == [
        ("carloan", "1", [0, 1, 2, 3, 4]), ("carloan", "2", [5, 6, 7])]
    first = runs[0]
    assert isinstance(first.features["car_value"], np.ndarray)
    assert first.features["car_value"][0] == POOL[0]["car_value"]
    assert first.features["salary_range"][1] == POOL[1]["salary_range"]
    assert first.timestamps_ms.tolist() == [BROKER_MS - 1000] * 5


@pytest.mark.parametrize("kind", ["string_in_numeric", "nul_id", "overflow_unknown",
                                  "bad_utf8_unknown", "big_int_category", "two_values",
                                  "ce_header", "future_stamp", "missing_feature",
                                  "unknown_field", "u64_prediction", "big_int_numeric",
                                  "huge_numeric", "bad_utf8_feature", "overflow_feature"])
def test_one_unclean_record_sends_the_poll_the_per_record_way(
        example_baseline: Path, tmp_path: Path, kind: str) -> None:
    side = Side(tmp_path, example_baseline, WINDOWS["rows"])
    poll = [record(i, dumps(good(i, BROKER_MS - 1000))) for i in range(5)]
    _, value, headers, broker = build(kind, 5, BROKER_MS - 1000)
    poll.append(record(5, value, headers, broker))
    assert decode_native(side.service.decoder, poll,
                         lambda m: side.pipeline.feature_kinds()) is None


def test_a_poll_of_two_models_takes_the_batch_path_in_runs(example_baseline: Path,
                                                           tmp_path: Path) -> None:
    sides = [Side(tmp_path / side, example_baseline, WINDOWS["rows"], ("carloan", "other"))
             for side in "ab"]
    pattern = ["carloan"] * 3 + ["other"] * 2 + ["carloan"] * 60 + ["other"] * 70
    for start in (0, len(pattern)):
        poll = [record(start + i, dumps({**good(start + i, BROKER_MS - 1000), "model": model}))
                for i, model in enumerate(pattern)]
        expected, _ = sides[0].feed(poll, bulk=False)
        got, took_batch = sides[1].feed(poll, bulk=True)
        assert took_batch and got == expected
    runs = decode_native(sides[1].service.decoder, poll,
                         lambda m: sides[1].pipelines[m].feature_kinds())
    assert runs is not None
    assert [(b.model, len(b)) for b in runs] == [("carloan", 3), ("other", 2), ("carloan", 60),
                                                 ("other", 70)]
    assert sides[1].state() == sides[0].state()
