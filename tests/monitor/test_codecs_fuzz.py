"""Every decoder fuzzed: whatever the bytes, the codec answers events or a DecodeError with
a known reason slug, never another exception (which would stop the loop on one record).

Native predictions and labels, KServe binary mode (CloudEvents headers) and structured
mode (an envelope), V1 and Open Inference Protocol bodies; random bytes and near-valid
JSON (valid shapes with values swapped for anything JSON can hold).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.ingest import REASONS, DecodeError, Decoder
from monitor.ingest.codecs.kserve import REQUEST_TYPE, RESPONSE_TYPE
from tests.monitor.test_codecs import decoder, native, record


def _dumps(value: Any) -> bytes:
    # the standard library writes integers of any size (orjson refuses beyond 64 bits)
    return json.dumps(value).encode()


FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def outcome(call: Any) -> str:
    """"ok" or the reason slug; anything else fails the test."""
    try:
        call()
    except DecodeError as error:
        assert error.reason in REASONS, error.reason
        assert error.message and "\n" not in error.message
        return error.reason
    return "ok"


def mutated(template: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    """The template with some fields replaced, removed or nested."""
    out = dict(template)
    for key in data.draw(st.lists(st.sampled_from(sorted(template)), max_size=3, unique=True)):
        action = data.draw(st.sampled_from(["replace", "remove", "nest"]))
        if action == "remove":
            del out[key]
        elif action == "replace":
            out[key] = data.draw(json_values)
        else:
            out[key] = {"nested": out[key]}
    return out


def fresh() -> Decoder:
    return decoder(max_record_bytes=1_000_000)


@FUZZ
@given(st.binary(max_size=300))
def test_native_decoder_on_any_bytes(raw: bytes) -> None:
    d = fresh()
    outcome(lambda: d.decode_prediction(record(raw)))
    outcome(lambda: d.decode_label(record(raw, topic="labels")))


@FUZZ
@given(st.data())
def test_native_decoder_on_near_valid_json(data: st.DataObject) -> None:
    d = fresh()
    event = mutated(native(), data)
    features = data.draw(st.dictionaries(st.text(max_size=8), json_values, max_size=4))
    if data.draw(st.booleans()) and isinstance(event.get("features"), dict):
        event["features"] = {**event["features"], **features}
    outcome(lambda: d.decode_prediction(record(_dumps(event))))
    label = mutated({"model": "carloan", "request_id": "7", "label": 1,
                     "timestamp": "2023-11-14T00:00:00Z"}, data)
    outcome(lambda: d.decode_label(record(_dumps(label), topic="labels")))


def _headers(kind: str, ce_id: str, extra: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    return [("ce_specversion", b"1.0"), ("ce_id", ce_id.encode()), ("ce_type", kind.encode()),
            ("ce_source", b"fuzz"), ("ce_inferenceservicename", b"carloan"), *extra]


REQUESTS = [
    {"instances": [[1.0, "a", True], [2.0, "b", False]]},
    {"instances": [{"car_value": 1.0, "salary_range": "a", "repaid_loan_on_prev_car": True}]},
    {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "BYTES",
                 "data": [1.0, "a", True, 2.0, "b", False]}]},
]
RESPONSES = [
    {"predictions": [1, 0]},
    {"predictions": [[0.2, 0.8], [0.9, 0.1]]},
    {"model_name": "carloan", "model_version": "3",
     "outputs": [{"name": "p", "shape": [2, 2], "datatype": "FP32",
                  "data": [0.2, 0.8, 0.9, 0.1]}]},
]


@FUZZ
@given(st.data())
def test_kserve_binary_mode_on_near_valid_bodies_and_headers(data: st.DataObject) -> None:
    d = fresh()
    request = data.draw(st.sampled_from(REQUESTS))
    response = data.draw(st.sampled_from(RESPONSES))
    if data.draw(st.booleans()):
        request = mutated(request, data)
    if data.draw(st.booleans()):
        response = mutated(response, data)
    extra = data.draw(st.lists(st.tuples(
        st.sampled_from(["ce_endpoint", "ce_time", "ce_type", "content-type", "ce_id"]),
        st.binary(max_size=20)), max_size=2))
    ce_id = data.draw(st.text(min_size=1, max_size=20))
    for body, kind in ((request, REQUEST_TYPE), (response, RESPONSE_TYPE)):
        raw = _dumps(body) if data.draw(st.booleans()) else data.draw(st.binary(max_size=60))
        outcome(lambda raw=raw, kind=kind: d.decode_prediction(
            record(raw, _headers(kind, ce_id, extra))))
    outcome(lambda: d.joiner.take_evicted())


@FUZZ
@given(st.data())
def test_kserve_structured_mode_on_near_valid_envelopes(data: st.DataObject) -> None:
    d = fresh()
    envelope: dict[str, Any] = {"specversion": "1.0", "id": "e1", "source": "fuzz",
                                "type": data.draw(st.sampled_from([REQUEST_TYPE, RESPONSE_TYPE])),
                                "inferenceservicename": "carloan",
                                "data": data.draw(st.sampled_from([*REQUESTS, *RESPONSES]))}
    envelope = mutated(envelope, data)
    headers = [("content-type", b"application/cloudevents+json")] if data.draw(
        st.booleans()) else []
    outcome(lambda: d.decode_prediction(record(_dumps(envelope), headers)))
