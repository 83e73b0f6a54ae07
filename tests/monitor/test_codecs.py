"""monitor.ingest.codecs: every format path and every bad-record kind."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from kafka.consumer.fetcher import ConsumerRecord

from monitor.ingest import REASONS, DecodeError, Decoder, KServeJoiner
from monitor.ingest.codecs.fields import parse_timestamp_ms
from monitor.ingest.codecs.kserve import REQUEST_TYPE, RESPONSE_TYPE

FEATURES = ["car_value", "salary_range", "repaid_loan_on_prev_car"]
_offsets = iter(range(10**9))


def record(
    value: bytes | None,
    headers: list[tuple[str, bytes]] | None = None,
    *,
    topic: str = "predictions",
    partition: int = 0,
    timestamp: int = 1_700_000_000_000,
    key: bytes | None = None,
) -> Any:
    return ConsumerRecord(
        topic,
        partition,
        0,
        next(_offsets),
        timestamp,
        0,
        key,
        value,
        headers or [],
        None,
        -1,
        -1,
        -1,
    )


def decoder(formats: tuple[str, ...] = ("native", "kserve", "oip"), **kwargs: Any) -> Decoder:
    versions = {"default": "3", "canary": "4"}
    return Decoder(
        formats,
        max_record_bytes=kwargs.pop("max_record_bytes", 10_000),
        feature_order=lambda model: FEATURES if model == "carloan" else None,
        endpoint_version=lambda model, endpoint: versions.get(endpoint),
        known_models=lambda model: model in ("carloan", "iris"),
        **kwargs,
    )


def native(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "model": "carloan",
        "version": "3",
        "request_id": "50000",
        "timestamp": "2018-10-30T18:00:00Z",
        "features": {
            "car_value": 12638.0,
            "salary_range": "0 - 20K €",
            "repaid_loan_on_prev_car": False,
            "missing": None,
        },
        "prediction": 1,
        "score": 0.99,
    }
    for name, value in changes.items():
        if value is ...:
            del event[name]
        else:
            event[name] = value
    return event


def encode(obj: Any) -> bytes:
    return orjson.dumps(obj)


def reason_of(call: Any) -> str:
    with pytest.raises(DecodeError) as caught:
        call()
    assert "\n" not in caught.value.message
    assert caught.value.reason in REASONS
    return caught.value.reason


# -- native predictions ----------------------------------------------------------------------
def test_native_prediction_decodes_every_field() -> None:
    rec = record(
        encode(native(scores={"0": 0.01, "1": 0.99}, latency_ms=4.5, extra="ignored")), partition=2
    )
    [p] = decoder().decode_prediction(rec)
    assert (p.model, p.version, p.request_id) == ("carloan", "3", "50000")
    assert p.timestamp_ms == 1540922400000
    assert p.features["salary_range"] == "0 - 20K €" and p.features["missing"] is None
    assert p.features["repaid_loan_on_prev_car"] is False
    assert (p.prediction, p.score, p.scores, p.latency_ms) == (1, 0.99, {"0": 0.01, "1": 0.99}, 4.5)
    assert (p.topic, p.partition, p.offset) == ("predictions", 2, rec.offset)


def test_native_prediction_accepts_integer_ids_and_epoch_milliseconds() -> None:
    [p] = decoder().decode_prediction(
        record(encode(native(version=3, request_id=50000, timestamp=1540922400123)))
    )
    assert (p.version, p.request_id, p.timestamp_ms) == ("3", "50000", 1540922400123)
    assert p.score == 0.99 and p.scores is None and p.latency_ms is None


def test_native_prediction_with_string_prediction_and_no_score() -> None:
    [p] = decoder().decode_prediction(record(encode(native(prediction="approved", score=...))))
    assert p.prediction == "approved" and p.score is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2018-10-30T18:00:00Z", 1540922400000),
        ("2018-10-30T20:00:00.250+02:00", 1540922400250),
        ("2021-04-10T00:23:26.080736102Z", 1618014206080),
        (0, 0),
    ],
)
def test_parse_timestamp_reads_rfc3339_and_epoch_ms(text: Any, expected: int) -> None:
    assert parse_timestamp_ms(text) == expected


# -- bad records --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b'{"model": "carloan", "version": ', "malformed_json"),
        (b"not json at all", "malformed_json"),
        (b'{"model": "carloan", "features": {"a": "\xff\xfe"}}', "not_utf8"),
        (b'{"model": "carloan", "features": {"a": NaN}}', "non_finite"),
        (b'{"model": "carloan", "features": {"a": Infinity}}', "non_finite"),
        (b'{"model": "carloan", "features": {"a": -Infinity}}', "non_finite"),
        (b'{"model": "carloan", "features": {"a": 1e400}}', "non_finite"),
        (b"[1, 2, 3]", "wrong_type"),
        (b'"a string"', "wrong_type"),
        (b"", "empty"),
        (None, "empty"),
    ],
)
def test_bad_bytes_are_classified(value: bytes | None, reason: str) -> None:
    assert reason_of(lambda: decoder().decode_prediction(record(value))) == reason


@pytest.mark.parametrize(
    "field", ["model", "version", "request_id", "timestamp", "features", "prediction"]
)
def test_missing_required_field_names_it(field: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decoder().decode_prediction(record(encode(native(**{field: ...}))))
    assert caught.value.reason == "missing_field"
    assert repr(field) in caught.value.message


@pytest.mark.parametrize(
    "changes",
    [
        {"model": 7},
        {"version": 3.5},
        {"version": True},
        {"request_id": None},
        {"request_id": ["a"]},
        {"features": [1, 2]},
        {"features": {"car_value": [1.0]}},
        {"features": {"car_value": {"x": 1}}},
        {"prediction": True},
        {"prediction": None},
        {"score": "high"},
        {"scores": {"0": "x"}},
        {"scores": [0.1, 0.9]},
        {"latency_ms": "4ms"},
        {"timestamp": True},
    ],
)
def test_mistyped_fields_are_wrong_type(changes: dict[str, Any]) -> None:
    assert reason_of(lambda: decoder().decode_prediction(record(encode(native(**changes))))) == (
        "wrong_type"
    )


@pytest.mark.parametrize(
    "stamp", ["yesterday", "2018-10-30T18:00:00", "2018-13-30T18:00:00Z", -5, 10**16]
)
def test_bad_timestamps_are_rejected(stamp: Any) -> None:
    reason = reason_of(lambda: decoder().decode_prediction(record(encode(native(timestamp=stamp)))))
    assert reason == "bad_timestamp"


def test_unknown_model_is_rejected() -> None:
    with pytest.raises(DecodeError) as caught:
        decoder().decode_prediction(record(encode(native(model="fraud"))))
    assert caught.value.reason == "unknown_model" and "'fraud'" in caught.value.message


def test_oversized_value_is_rejected_before_parsing() -> None:
    value = encode(native(features={f"f{i}": 1.0 for i in range(2000)}))
    with pytest.raises(DecodeError) as caught:
        decoder(max_record_bytes=1000).decode_prediction(record(value))
    assert caught.value.reason == "oversized"
    assert f"{len(value)} bytes" in caught.value.message and "1000" in caught.value.message


def test_native_events_are_unsupported_when_only_cloudevents_are_enabled() -> None:
    assert reason_of(lambda: decoder(("kserve",)).decode_prediction(record(encode(native())))) == (
        "unsupported_format"
    )


def test_cloudevents_are_unsupported_when_only_native_is_enabled() -> None:
    rec = record(encode({"instances": [[1, 2, 3]]}), ce_headers(REQUEST_TYPE, "r1"))
    assert reason_of(lambda: decoder(("native",)).decode_prediction(rec)) == "unsupported_format"


def test_error_message_is_one_bounded_line() -> None:
    error = DecodeError("wrong_type", "first line\nsecond line " + "x" * 2000)
    assert "\n" not in error.message and len(error.message) <= 500
    assert str(error) == error.message


# -- labels --------------------------------------------------------------------------------
def test_label_decodes_and_defaults_its_time_to_the_record() -> None:
    rec = record(
        encode({"model": "carloan", "request_id": 50000, "label": 1}),
        topic="labels",
        timestamp=1_600_000_000_000,
    )
    label = decoder().decode_label(rec)
    assert (label.model, label.request_id, label.label) == ("carloan", "50000", 1)
    assert label.timestamp_ms == 1_600_000_000_000 and label.topic == "labels"
    timed = decoder().decode_label(
        record(
            encode(
                {
                    "model": "carloan",
                    "request_id": "a",
                    "label": "yes",
                    "timestamp": "2018-11-29T09:00:00Z",
                }
            )
        )
    )
    assert timed.timestamp_ms == 1543482000000 and timed.label == "yes"


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ({"request_id": "a", "label": 1}, "missing_field"),
        ({"model": "carloan", "label": 1}, "missing_field"),
        ({"model": "carloan", "request_id": "a"}, "missing_field"),
        ({"model": "fraud", "request_id": "a", "label": 1}, "unknown_model"),
        ({"model": "carloan", "request_id": "a", "label": [1]}, "wrong_type"),
        ({"model": "carloan", "request_id": "a", "label": 1, "timestamp": "soon"}, "bad_timestamp"),
    ],
)
def test_bad_labels_are_classified(obj: dict[str, Any], reason: str) -> None:
    assert reason_of(lambda: decoder().decode_label(record(encode(obj)))) == reason


def test_malformed_label_is_classified() -> None:
    assert reason_of(lambda: decoder().decode_label(record(b'{"label": NaN}'))) == "non_finite"


# -- KServe CloudEvents ------------------------------------------------------------------------
def ce_headers(
    kind: str, ce_id: str, *, model: str = "carloan", endpoint: str = "", time: str | None = None
) -> list[tuple[str, bytes]]:
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", ce_id.encode()),
        ("ce_type", kind.encode()),
        ("ce_source", b"http://localhost:9081/"),
        ("ce_inferenceservicename", model.encode()),
        ("ce_namespace", b"default"),
        ("ce_component", b"predictor"),
        ("ce_endpoint", endpoint.encode()),
        ("content-type", b"application/json"),
    ]
    if time is not None:
        headers.append(("ce_time", time.encode()))
    return headers


def structured(
    kind: str,
    ce_id: str,
    data: Any,
    *,
    base64_data: bool = False,
    model: str = "carloan",
    endpoint: str = "canary",
) -> Any:
    envelope: dict[str, Any] = {
        "specversion": "1.0",
        "id": ce_id,
        "type": kind,
        "source": "http://localhost:9081/",
        "inferenceservicename": model,
        "endpoint": endpoint,
        "datacontenttype": "application/json",
        "time": "2021-04-10T00:23:26Z",
    }
    if base64_data:
        envelope["data_base64"] = base64.b64encode(encode(data)).decode()
    else:
        envelope["data"] = data
    return record(encode(envelope), [("content-type", b"application/cloudevents+json")])


def test_binary_mode_v1_batch_joins_into_one_prediction_per_instance() -> None:
    dec = decoder()
    request = record(
        encode({"instances": [[12638.0, "0 - 20K €", False], [9000.5, "20K+", True]]}),
        ce_headers(REQUEST_TYPE, "abc", time="2021-04-10T00:23:26.078Z"),
    )
    response = record(
        encode({"predictions": [1, 0]}),
        ce_headers(RESPONSE_TYPE, "abc", time="2021-04-10T00:23:26.080Z"),
        partition=3,
    )
    assert dec.decode_prediction(request) == []
    assert len(dec.joiner) == 1 and dec.joiner.pending_offsets() == {
        ("predictions", 0): request.offset
    }
    first, second = dec.decode_prediction(response)
    assert (first.request_id, second.request_id) == ("abc:0", "abc:1")
    assert first.features == {
        "car_value": 12638.0,
        "salary_range": "0 - 20K €",
        "repaid_loan_on_prev_car": False,
    }
    assert second.features["repaid_loan_on_prev_car"] is True
    assert (first.prediction, second.prediction) == (1, 0)
    assert first.version == "3" and first.model == "carloan"  # empty endpoint is the default one
    assert first.timestamp_ms == 1618014206078 and first.latency_ms == 2.0
    assert (first.partition, first.offset) == (3, response.offset)
    assert len(dec.joiner) == 0 and dec.joiner.pending_offsets() == {}


def test_response_before_request_joins_too_and_dict_instances_keep_their_keys() -> None:
    dec = decoder()
    assert (
        dec.decode_prediction(
            record(
                encode({"predictions": [[0.2, 0.8]]}),
                ce_headers(RESPONSE_TYPE, "x", endpoint="canary"),
            )
        )
        == []
    )
    [p] = dec.decode_prediction(
        record(
            encode({"instances": [{"car_value": 1.5, "other": "y"}]}),
            ce_headers(REQUEST_TYPE, "x", endpoint="canary"),
        )
    )
    assert p.features == {"car_value": 1.5, "other": "y"}
    assert (p.version, p.prediction, p.score, p.scores) == ("4", 1, 0.8, {"0": 0.2, "1": 0.8})


@pytest.mark.parametrize("base64_data", [False, True])
def test_structured_mode_with_data_or_data_base64(base64_data: bool) -> None:
    dec = decoder()
    assert (
        dec.decode_prediction(
            structured(
                REQUEST_TYPE, "s1", {"instances": [[1.0, "a", True]]}, base64_data=base64_data
            )
        )
        == []
    )
    [p] = dec.decode_prediction(
        structured(RESPONSE_TYPE, "s1", {"predictions": ["yes"]}, base64_data=base64_data)
    )
    assert (p.request_id, p.version, p.prediction) == ("s1:0", "4", "yes")
    assert p.features == dict(zip(FEATURES, [1.0, "a", True], strict=True))


def test_structured_envelope_without_content_type_header_is_recognised() -> None:
    dec = decoder()
    plain = structured(REQUEST_TYPE, "s2", {"instances": [[1.0, "a", True]]})
    dec.decode_prediction(record(plain.value))
    [p] = dec.decode_prediction(record(structured(RESPONSE_TYPE, "s2", {"predictions": [0]}).value))
    assert p.request_id == "s2:0"


def test_oip_batch_is_flattened_row_major() -> None:
    dec = decoder()
    request = {
        "id": "r",
        "inputs": [
            {
                "name": "input-0",
                "shape": [2, 3],
                "datatype": "FP32",
                "data": [[1.0, "a", True], [4.0, "b", False]],
            }
        ],
    }
    response = {
        "model_name": "carloan",
        "model_version": "7",
        "id": "r",
        "outputs": [
            {"name": "predict", "shape": [2], "datatype": "INT64", "data": [1, 0]},
            {"name": "proba", "shape": [2, 2], "datatype": "FP32", "data": [0.3, 0.7, 0.9, 0.1]},
        ],
    }
    dec.decode_prediction(record(encode(request), ce_headers(REQUEST_TYPE, "o1", endpoint="blue")))
    first, second = dec.decode_prediction(
        record(encode(response), ce_headers(RESPONSE_TYPE, "o1", endpoint="blue"))
    )
    assert first.features == {
        "car_value": 1.0,
        "salary_range": "a",
        "repaid_loan_on_prev_car": True,
    }
    assert second.features == {
        "car_value": 4.0,
        "salary_range": "b",
        "repaid_loan_on_prev_car": False,
    }
    # an endpoint the mapping does not know falls back to the OIP model_version
    assert (first.version, first.prediction, first.score) == ("7", 1, 0.7)
    assert (second.prediction, second.score) == (0, 0.1)


def test_oip_named_column_inputs_and_probability_only_outputs() -> None:
    dec = decoder()
    request = {
        "inputs": [
            {"name": "car_value", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]},
            {"name": "salary_range", "shape": [2, 1], "datatype": "BYTES", "data": ["a", "b"]},
        ]
    }
    response = {
        "outputs": [
            {
                "name": "p",
                "shape": [2, 3],
                "datatype": "FP32",
                "data": [0.1, 0.2, 0.7, 0.5, 0.3, 0.2],
            }
        ]
    }
    dec.decode_prediction(record(encode(request), ce_headers(REQUEST_TYPE, "o2")))
    first, second = dec.decode_prediction(record(encode(response), ce_headers(RESPONSE_TYPE, "o2")))
    assert first.features == {"car_value": 1.0, "salary_range": "a"}
    assert (first.prediction, second.prediction) == (2, 0)
    assert first.score is None and first.scores == {"0": 0.1, "1": 0.2, "2": 0.7}


@pytest.mark.parametrize(
    ("body", "headers", "reason"),
    [
        ({"instances": [[1]]}, ce_headers("com.example.other", "e1"), "unknown_event_type"),
        (
            {"instances": [[1]]},
            [("ce_specversion", b"1.0"), ("ce_type", REQUEST_TYPE.encode())],
            "missing_field",
        ),
        (
            {"instances": [[1.0, "a", True]]},
            ce_headers(REQUEST_TYPE, "e2", model="fraud"),
            "unknown_model",
        ),
        ({"instances": [[1.0, 2.0]]}, ce_headers(REQUEST_TYPE, "e3"), "shape_mismatch"),
        ({"instances": [[1.0]]}, ce_headers(REQUEST_TYPE, "e4", model="iris"), "no_feature_order"),
        ({"instances": [[1.0, [2], True]]}, ce_headers(REQUEST_TYPE, "e5"), "wrong_type"),
        ({"instances": ["x"]}, ce_headers(REQUEST_TYPE, "e6"), "wrong_type"),
        ({"queries": [1]}, ce_headers(REQUEST_TYPE, "e7"), "unsupported_format"),
        (
            {"inputs": [{"name": "x", "shape": [2, 3], "data": [1, 2, 3]}]},
            ce_headers(REQUEST_TYPE, "e8"),
            "shape_mismatch",
        ),
        ({"inputs": [{"name": "x", "data": [1]}]}, ce_headers(REQUEST_TYPE, "e9"), "missing_field"),
        ({"predictions": [{"label": 1}]}, ce_headers(RESPONSE_TYPE, "e10"), "wrong_type"),
        (
            {"instances": [[1.0, "a", True]]},
            ce_headers(REQUEST_TYPE, "e11", time="noon"),
            "bad_timestamp",
        ),
    ],
)
def test_bad_kserve_halves_are_classified(
    body: Any, headers: list[tuple[str, bytes]], reason: str
) -> None:
    assert reason_of(lambda: decoder().decode_prediction(record(encode(body), headers))) == reason


def test_binary_mode_with_malformed_body_is_malformed_json() -> None:
    rec = record(b'{"instances": [[1.0, ', ce_headers(REQUEST_TYPE, "m1"))
    assert reason_of(lambda: decoder().decode_prediction(rec)) == "malformed_json"


def test_batch_size_mismatch_dead_letters_both_halves() -> None:
    dec = decoder()
    request = record(
        encode({"instances": [[1.0, "a", True], [2.0, "b", False]]}), ce_headers(REQUEST_TYPE, "mm")
    )
    dec.decode_prediction(request)
    response = record(encode({"predictions": [1]}), ce_headers(RESPONSE_TYPE, "mm"))
    assert reason_of(lambda: dec.decode_prediction(response)) == "shape_mismatch"
    [evicted] = dec.joiner.take_evicted()
    assert evicted.record is request and evicted.reason == "shape_mismatch"


def test_unmapped_endpoint_without_model_version_is_monitored_as_its_endpoint() -> None:
    """Zero configuration for KServe users: the V1 logger carries no version."""
    dec = decoder()
    dec.decode_prediction(
        record(
            encode({"instances": [[1.0, "a", True]]}),
            ce_headers(REQUEST_TYPE, "uv", endpoint="blue"),
        )
    )
    response = record(
        encode({"predictions": [1]}), ce_headers(RESPONSE_TYPE, "uv", endpoint="blue")
    )
    assert [p.version for p in dec.decode_prediction(response)] == ["blue"]


def test_joiner_evicts_by_record_time_and_capacity() -> None:
    dec = decoder(joiner=KServeJoiner(capacity=2, ttl_seconds=60))
    body = encode({"instances": [[1.0, "a", True]]})
    old = record(body, ce_headers(REQUEST_TYPE, "a"), timestamp=1_000_000)
    dec.decode_prediction(old)
    late = record(body, ce_headers(REQUEST_TYPE, "b"), timestamp=1_000_000 + 61_000)
    dec.decode_prediction(late)
    [expired] = dec.joiner.take_evicted()
    assert expired.record is old and expired.reason == "unpaired" and "60s" in expired.message
    for ce_id in ("c", "d"):
        dec.decode_prediction(record(body, ce_headers(REQUEST_TYPE, ce_id), timestamp=1_061_000))
    [overflow] = dec.joiner.take_evicted()
    assert overflow.record is late and "capacity" in overflow.message
    assert len(dec.joiner) == 2 and dec.joiner.take_evicted() == []


def test_joiner_keeps_the_earlier_duplicate_and_drops_revoked_partitions() -> None:
    dec = decoder()
    body = encode({"instances": [[1.0, "a", True]]})
    first = record(body, ce_headers(REQUEST_TYPE, "d"), partition=1)
    dec.decode_prediction(first)
    dec.decode_prediction(record(body, ce_headers(REQUEST_TYPE, "d"), partition=1))
    assert dec.joiner.pending_offsets() == {("predictions", 1): first.offset}
    assert dec.joiner.drop_partitions([("predictions", 1)]) == 1
    assert len(dec.joiner) == 0


def test_decoder_rejects_unknown_format_names() -> None:
    with pytest.raises(ValueError, match="kservee"):
        decoder(("native", "kservee"))
