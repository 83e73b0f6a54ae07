"""Prediction and label records as the demo's model server and label feed produce them.

- native (design 3.1): one JSON event per prediction, the model version that
  answered in ``version``, keyed by the request id;
- kserve (design 3.3): what KServe's inference logger sends through a Knative
  KafkaSink in binary mode: a request and a response record per call sharing the
  CloudEvents id, ``ce_*`` headers, V1 bodies (``{"instances": [...]}`` /
  ``{"predictions": [[p0, p1]]}``), ``ce_endpoint`` naming the predictor that
  answered (absent for the default one, as the logger leaves it) and the response's
  ``ce_time`` later by the latency. driftloop names every KServe prediction
  ``<ce_id>:<index>``, so that is the request id labels carry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from monitor.cli.replay import plain

__all__ = [
    "KSERVE_REQUEST",
    "KSERVE_RESPONSE",
    "Record",
    "kserve_records",
    "label_record",
    "native_record",
    "plain",
]

KSERVE_REQUEST = "org.kubeflow.serving.inference.request"
KSERVE_RESPONSE = "org.kubeflow.serving.inference.response"
Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class Record:
    key: bytes
    value: bytes
    headers: Headers


def native_record(*, model: str, version: str, request_id: str, timestamp: str,
                  features: Mapping[str, Any], prediction: int, score: float,
                  latency_ms: float) -> Record:
    event = {"model": model, "version": version, "request_id": request_id,
             "timestamp": timestamp, "features": dict(features), "prediction": prediction,
             "score": score, "latency_ms": latency_ms}
    return Record(request_id.encode(), orjson.dumps(event), [])


def kserve_records(*, model: str, endpoint: str, call_id: str, requested_at: str,
                   answered_at: str, features: Mapping[str, Any],
                   probabilities: tuple[float, float]) -> tuple[Record, Record]:
    """(request, response) of one call to the predictor at ``endpoint`` ("" = default)."""

    def headers(kind: str, moment: str) -> Headers:
        found: Headers = [
            ("ce_specversion", b"1.0"), ("ce_id", call_id.encode()), ("ce_type", kind.encode()),
            ("ce_source", f"http://{model}-predictor.demo/v1/models/{model}:predict".encode()),
            ("ce_time", moment.encode()), ("ce_inferenceservicename", model.encode()),
            ("ce_namespace", b"demo"), ("ce_component", b"predictor"),
            ("content-type", b"application/json")]
        if endpoint:
            found.append(("ce_endpoint", endpoint.encode()))
        return found

    request = Record(call_id.encode(), orjson.dumps({"instances": [dict(features)]}),
                     headers(KSERVE_REQUEST, requested_at))
    response = Record(call_id.encode(), orjson.dumps({"predictions": [list(probabilities)]}),
                      headers(KSERVE_RESPONSE, answered_at))
    return request, response


def label_record(*, model: str, request_id: str, label: int, timestamp: str) -> Record:
    event = {"model": model, "request_id": request_id, "label": label, "timestamp": timestamp}
    return Record(request_id.encode(), orjson.dumps(event), [])
