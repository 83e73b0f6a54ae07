"""Records built to hurt: every one is a DecodeError with a reason slug, never anything else.

The review of the stream issue found records that escaped the codec (RecursionError),
stalled PostgreSQL (NUL and 10 kB ids in String(200) columns), poisoned the event
clock (year-9999 timestamps), exploded cardinality (any string as a version) or
allocated without bound (a KServe tensor with a zero dimension).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from monitor.ingest import REASONS, DecodeError, Decoder
from monitor.ingest.codecs.kserve import REQUEST_TYPE, RESPONSE_TYPE
from tests.monitor.test_codecs import decoder, native, record

BROKER_MS = 1_700_000_000_000  # the records' broker timestamp (2023-11-14)


def reason(call: Any) -> str:
    with pytest.raises(DecodeError) as caught:
        call()
    assert caught.value.reason in REASONS, caught.value.reason
    assert "\n" not in caught.value.message and len(caught.value.message) <= 500
    return caught.value.reason


def predict(d: Decoder, event: dict[str, Any] | bytes, **kwargs: Any) -> Any:
    value = event if isinstance(event, bytes) else orjson.dumps(event)
    return d.decode_prediction(record(value, timestamp=BROKER_MS, **kwargs))


def test_a_timestamp_far_ahead_of_the_broker_time_is_a_bad_timestamp() -> None:
    d = decoder()
    assert reason(lambda: predict(d, native(timestamp="9999-12-31T23:59:59Z"))) == "bad_timestamp"
    two_hours_ahead = BROKER_MS + 2 * 3600 * 1000
    assert reason(lambda: predict(d, native(timestamp=two_hours_ahead))) == "bad_timestamp"
    # within the allowed skew (default 1 h): a clock a little ahead is fine
    [event] = predict(d, native(timestamp=BROKER_MS + 30 * 60 * 1000))
    assert event.timestamp_ms == BROKER_MS + 30 * 60 * 1000


def test_a_timestamp_before_the_minimum_event_time_is_a_bad_timestamp() -> None:
    d = decoder()
    assert reason(lambda: predict(d, native(timestamp="0001-01-01T00:00:00Z"))) == "bad_timestamp"
    assert reason(lambda: predict(d, native(timestamp="1969-12-31T23:59:59Z"))) == "bad_timestamp"
    # backfills of old data are fine: years before the broker time
    [event] = predict(d, native(timestamp="2018-10-30T18:00:00Z"))
    assert event.timestamp_ms < BROKER_MS


def test_the_skew_is_configurable() -> None:
    d = decoder(max_future_skew_seconds=10 * 86400)
    [event] = predict(d, native(timestamp=BROKER_MS + 2 * 86400 * 1000))
    assert event.timestamp_ms > BROKER_MS


def test_label_timestamps_are_bounded_too() -> None:
    d = decoder()
    label = {"model": "carloan", "request_id": "1", "label": 1,
             "timestamp": "9999-01-01T00:00:00Z"}
    assert reason(lambda: d.decode_label(record(orjson.dumps(label), topic="labels",
                                                timestamp=BROKER_MS))) == "bad_timestamp"


@pytest.mark.parametrize(("request_id", "expected"), [
    ("a\x00b", "bad_text"),
    ("x" * 10_000, "too_long"),
    ("", "bad_text"),
    ("line\nbreak", "bad_text"),
])
def test_request_ids_that_no_store_column_can_hold_are_rejected(request_id: str,
                                                                expected: str) -> None:
    d = decoder(max_record_bytes=100_000)
    assert reason(lambda: predict(d, native(request_id=request_id))) == expected
    label = {"model": "carloan", "request_id": request_id, "label": 1}
    assert reason(lambda: d.decode_label(record(orjson.dumps(label), topic="labels",
                                                timestamp=BROKER_MS))) == expected


@pytest.mark.parametrize("version", ["v" * 1000, "a\x00", "has space", "-rm", "", "ä", ".x"])
def test_versions_outside_the_documented_pattern_are_rejected(version: str) -> None:
    assert reason(lambda: predict(decoder(), native(version=version))) == "bad_version"


@pytest.mark.parametrize("version", ["3", 3, "1.2.0", "v2+build.7", "canary_2", "abc-DEF"])
def test_versions_in_the_pattern_pass(version: Any) -> None:
    [event] = predict(decoder(), native(version=version))
    assert event.version == str(version)


def test_five_thousand_nested_brackets_are_a_dead_letter_not_a_crash() -> None:
    d = decoder(max_record_bytes=100_000)
    assert reason(lambda: predict(d, b"[" * 5000)) == "too_deep"
    assert reason(lambda: predict(d, b'{"a":' * 3000 + b"1" + b"}" * 3000)) == "too_deep"


def test_nested_objects_as_feature_values_are_wrong_types() -> None:
    d = decoder()
    event = native(features={"car_value": {"nested": {"deeper": [1, 2]}}})
    assert reason(lambda: predict(d, event)) == "wrong_type"


def test_numbers_beyond_the_double_range_are_non_finite() -> None:
    d = decoder()
    raw = orjson.dumps(native()).replace(b"12638.0", b"1e400")
    assert reason(lambda: predict(d, raw)) == "non_finite"
    raw = orjson.dumps(native()).replace(b"12638.0", b"-1e999")
    assert reason(lambda: predict(d, raw)) == "non_finite"


def test_invalid_utf8_is_not_utf8() -> None:
    raw = orjson.dumps(native()).replace("€".encode(), b"\xff\xfe")
    assert reason(lambda: predict(decoder(), raw)) == "not_utf8"


def _kserve_pair(d: Decoder, request: dict[str, Any], response: dict[str, Any]) -> Any:
    def headers(kind: str) -> list[tuple[str, bytes]]:
        return [("ce_specversion", b"1.0"), ("ce_id", b"poison-1"), ("ce_type", kind.encode()),
                ("ce_source", b"test"), ("ce_inferenceservicename", b"carloan"),
                ("ce_endpoint", b"default")]
    d.decode_prediction(record(orjson.dumps(request), headers(REQUEST_TYPE),
                               timestamp=BROKER_MS))
    return d.decode_prediction(record(orjson.dumps(response), headers(RESPONSE_TYPE),
                                      timestamp=BROKER_MS))


def test_a_kserve_tensor_with_a_zero_dimension_is_rejected_without_allocating() -> None:
    d = decoder()
    huge = {"inputs": [{"name": "x", "shape": [1_000_000_000_000, 0], "datatype": "FP64",
                        "data": []}]}
    head = [("ce_specversion", b"1.0"), ("ce_id", b"zero-dim"),
            ("ce_type", REQUEST_TYPE.encode()), ("ce_source", b"t"),
            ("ce_inferenceservicename", b"carloan")]
    assert reason(lambda: d.decode_prediction(
        record(orjson.dumps(huge), head, timestamp=BROKER_MS))) == "shape_mismatch"
    outputs = {"outputs": [{"name": "y", "shape": [1_000_000_000_000, 0], "datatype": "FP64",
                            "data": []}]}
    head = [(k, v if k != "ce_type" else RESPONSE_TYPE.encode()) for k, v in head]
    assert reason(lambda: d.decode_prediction(
        record(orjson.dumps(outputs), head, timestamp=BROKER_MS))) == "shape_mismatch"


def test_a_kserve_batch_over_the_row_limit_is_too_many_rows() -> None:
    d = decoder(max_rows_per_record=10)
    request = {"instances": [[1.0, "a", True]] * 11}
    head = [("ce_specversion", b"1.0"), ("ce_id", b"big"), ("ce_type", REQUEST_TYPE.encode()),
            ("ce_source", b"t"), ("ce_inferenceservicename", b"carloan")]
    assert reason(lambda: d.decode_prediction(
        record(orjson.dumps(request), head, timestamp=BROKER_MS))) == "too_many_rows"


def test_kserve_without_a_version_map_uses_the_endpoint_name() -> None:
    d = Decoder(("kserve",), max_record_bytes=10_000,
                feature_order=lambda model: ["car_value", "salary_range",
                                             "repaid_loan_on_prev_car"],
                endpoint_version=lambda model, endpoint: None,
                known_models=lambda model: model == "carloan")
    predictions = _kserve_pair(d, {"instances": [[1.0, "a", True]]}, {"predictions": [1]})
    assert [p.version for p in predictions] == ["default"]
