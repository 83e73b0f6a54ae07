"""Labels decoded in one call per poll (:func:`decode_labels`) against the per-record
path: for random mixes of good and bad label records, the same labels (model, request
id, label, time, in record order per model) and the same dead letters with the same
reasons and messages. A clean poll must take the batch path; a poll with anything the
per-record path would dead-letter or might read differently must take it whole the
per-record way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.ingest.batch import LabelBatch
from monitor.ingest.codecs.bulk_labels import decode_labels
from tests.monitor.test_codecs_bulk import BROKER_MS, SETTINGS, WINDOWS, Side, record

STAMP = BROKER_MS - 60_000


def good(i: int) -> dict[str, Any]:
    return {"model": "carloan", "request_id": f"r{i}", "label": i % 2, "timestamp": STAMP + i}


def _without(key: str) -> Any:
    return lambda obj: {k: v for k, v in obj.items() if k != key}


def _with(key: str, value: Any) -> Any:
    return lambda obj: {**obj, key: value}


# kind -> a change to a good label object (values both paths read alike, or not)
MUTATIONS: dict[str, Any] = {
    "other_model": _with("model", "other"),
    "unknown_model": _with("model", "nope"),
    "no_label": _without("label"),
    "null_label": _with("label", None),
    "bool_label": _with("label", True),
    "object_label": _with("label", {"a": 1}),
    "string_label": _with("label", "yes"),
    "float_label": _with("label", 0.25),
    "big_int_label": _with("label", 2**64 + 1),
    "int_request_id": lambda obj: {**obj, "request_id": 7},
    "float_request_id": _with("request_id", 7.5),
    "empty_request_id": _with("request_id", ""),
    "nul_request_id": _with("request_id", "a\x00b"),
    "long_request_id": _with("request_id", "x" * 201),
    "no_timestamp": _without("timestamp"),
    "rfc3339": _with("timestamp", "2018-12-31T23:59:00Z"),
    "naive_stamp": _with("timestamp", "2018-12-31T23:59:00"),
    "float_stamp": _with("timestamp", float(STAMP) + 0.5),
    "future_stamp": _with("timestamp", BROKER_MS + 10**9),
    "negative_stamp": _with("timestamp", -5),
    "unknown_field": _with("extra", 1),
    "no_model": _without("model"),
    "int_model": _with("model", 3),
}
RAW: dict[str, bytes] = {
    "array": b"[1, 2]",
    "not_json": b"{nope",
    "overflow_label": b'{"model":"carloan","request_id":"o","label":1e400}',
    "bad_utf8_unknown": b'{"model":"carloan","request_id":"u","label":1,"x":"\xff"}',
}
KINDS = ["good"] * 6 + sorted(MUTATIONS) + sorted(RAW) + ["empty", "ce_header",
                                                            "no_broker_time"]
# what the batch path may take: read alike by both paths
ALIKE = {"good", "other_model", "string_label", "float_label", "int_request_id",
         "no_timestamp", "rfc3339", "float_stamp"}


def build(kind: str, i: int) -> Any:
    if kind in RAW:
        return record(i, RAW[kind])
    if kind == "empty":
        return record(i, b"")
    value = json.dumps(MUTATIONS.get(kind, lambda obj: obj)(good(i))).encode()
    if kind == "ce_header":
        return record(i, value, [("ce_id", b"1")])
    if kind == "no_broker_time":
        return record(i, value, broker_ms=-1)
    return record(i, value)


def columns(batches: list[LabelBatch]) -> dict[str, tuple[list[Any], ...]]:
    return {b.model: (b.request_ids, b.labels, [type(v) for v in b.labels], b.timestamps_ms)
            for b in batches}


def side(tmp: Path, baseline: Path) -> Side:
    return Side(tmp, baseline, WINDOWS["rows"], ("carloan", "other"))


@SETTINGS
@given(polls=st.lists(st.one_of(
    st.integers(1, 80).map(lambda n: ["good"] * n),
    st.lists(st.sampled_from(KINDS), min_size=1, max_size=40)), min_size=1, max_size=6))
def test_batch_path_agrees_with_the_per_record_path(
        tmp_path_factory: pytest.TempPathFactory, example_baseline: Path,
        polls: list[list[str]]) -> None:
    tmp = tmp_path_factory.mktemp("labels")
    per_record, batched = side(tmp / "a", example_baseline), side(tmp / "b", example_baseline)
    offset = 0
    for kinds in polls:
        poll = [build(kind, offset + i) for i, kind in enumerate(kinds)]
        offset += len(kinds)
        expected: dict[str, LabelBatch] = {}
        for label in per_record.service.reader.labels(("labels", 0), poll, 0):
            batch = expected.setdefault(label.model, LabelBatch(label.model, [], [], []))
            batch.request_ids.append(label.request_id)
            batch.labels.append(label.label)
            batch.timestamps_ms.append(label.timestamp_ms)
        took_batch = decode_labels(batched.service.decoder, poll) is not None
        got = batched.service.reader.label_runs(("labels", 0), poll, 0)
        assert columns(got) == columns(list(expected.values()))
        assert batched.letters.written == per_record.letters.written
        if set(kinds) <= {"good"}:
            assert took_batch
        elif took_batch:
            assert set(kinds) <= ALIKE, kinds


def test_a_clean_poll_of_two_models_is_one_batch_per_model(
        example_baseline: Path, tmp_path: Path) -> None:
    s = side(tmp_path, example_baseline)
    poll = [record(i, json.dumps({**good(i), "model": "other" if i % 3 else "carloan"})
                   .encode()) for i in range(9)]
    batches = decode_labels(s.service.decoder, poll)
    assert batches is not None
    assert [(b.model, b.request_ids) for b in batches] == [
        ("carloan", ["r0", "r3", "r6"]), ("other", ["r1", "r2", "r4", "r5", "r7", "r8"])]
    assert batches[0].timestamps_ms == [STAMP, STAMP + 3, STAMP + 6]


@pytest.mark.parametrize("kind", sorted(set(KINDS) - ALIKE))
def test_one_unclean_record_sends_the_poll_the_per_record_way(
        example_baseline: Path, tmp_path: Path, kind: str) -> None:
    s = side(tmp_path, example_baseline)
    poll = [build("good", i) for i in range(5)] + [build(kind, 5)]
    assert decode_labels(s.service.decoder, poll) is None
