"""KServe inference-logger CloudEvents (design 3.3) and the request/response join.

The logger emits a request and a response event per call, sharing the
CloudEvents ``id``; they may land on different partitions, in either order.
Each half is validated when it arrives (a bad half is dead-lettered on its
own record) and parked in :class:`monitor.codecs_join.KServeJoiner` until its
partner comes.

Bodies: V1 (``{"instances": [...]}`` / ``{"predictions": [...]}``) and Open
Inference Protocol V2 (``{"inputs": [{name, shape, datatype, data}]}`` /
``{"model_name", "model_version", "outputs": [...]}``), tensor data flattened
row-major. Positional rows take names from ``feature_order(model)``; dict
instances keep their keys. A batch of k rows gives k predictions with request
ids ``<ce_id>:<index>`` (also for k = 1, so label sources have one rule).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from monitor.ingest.codecs.fields import (
    DecodeError,
    Models,
    Record,
    check_features,
    json_type,
    parse_json,
    parse_timestamp_ms,
)

__all__ = [
    "REQUEST_TYPE",
    "RESPONSE_TYPE",
    "CloudEvent",
    "Output",
    "cloudevent_from_envelope",
    "cloudevent_from_record",
    "request_rows",
    "response_rows",
]

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
_SCALARS = (int, float, str, bool)


@dataclass(slots=True)
class CloudEvent:
    id: str
    is_request: bool
    model: str | None  # ce_inferenceservicename, else the OIP body's model_name
    endpoint: str  # ce_endpoint; the logger leaves it empty for the default one
    time_ms: int | None
    body: dict[str, Any]


def _event(attrs: dict[str, Any], body: Any, subject: str) -> CloudEvent:
    event_id = attrs.get("id")
    kind = attrs.get("type")
    if not event_id or not kind:
        missing = "id" if not event_id else "type"
        raise DecodeError("missing_field", f"{subject}: missing CloudEvents attribute {missing!r}")
    if kind not in (REQUEST_TYPE, RESPONSE_TYPE):
        raise DecodeError(
            "unknown_event_type",
            f"{subject}: type {kind!r}, expected {REQUEST_TYPE} or {RESPONSE_TYPE}",
        )
    if type(body) is not dict:
        raise DecodeError(
            "wrong_type", f"{subject} data: got a {json_type(body)}, expected an object"
        )
    stamp = attrs.get("time")
    model = attrs.get("inferenceservicename") or body.get("model_name")
    if model is not None and type(model) is not str:
        raise DecodeError(
            "wrong_type", f"{subject}: model name is a {json_type(model)}, expected text"
        )
    return CloudEvent(
        str(event_id),
        kind == REQUEST_TYPE,
        model,
        str(attrs.get("endpoint") or ""),
        None if stamp is None else parse_timestamp_ms(stamp, f"{subject} time"),
        body,
    )


def cloudevent_from_record(record: Record, raw: bytes) -> CloudEvent | None:
    """A binary- or structured-mode CloudEvent, or None when the headers say neither."""
    attrs: dict[str, Any] = {}
    content_type = ""
    for key, value in record.headers or ():
        name = key.lower()
        if name.startswith("ce_") or name == "content-type":
            try:
                text = (value or b"").decode("utf-8")
            except UnicodeDecodeError:
                raise DecodeError("not_utf8", f"header {key!r}: not valid UTF-8") from None
            if name == "content-type":
                content_type = text.lower()
            else:
                attrs[name[3:]] = text
    if attrs:
        return _event(attrs, parse_json(raw, "CloudEvent data"), "CloudEvent (binary mode)")
    if content_type.startswith("application/cloudevents+json"):
        envelope = parse_json(raw, "CloudEvent envelope")
        if type(envelope) is not dict:
            raise DecodeError(
                "wrong_type",
                f"CloudEvent envelope: got a {json_type(envelope)}, expected an object",
            )
        return cloudevent_from_envelope(envelope)
    return None


def cloudevent_from_envelope(envelope: dict[str, Any]) -> CloudEvent:
    """Structured mode: attributes and ``data`` (or ``data_base64``) in one JSON object."""
    subject = "CloudEvent (structured mode)"
    if "data" in envelope:
        data = envelope["data"]
        if type(data) is str:  # JSON data sent as a string
            data = parse_json(data.encode("utf-8"), f"{subject} data")
    elif "data_base64" in envelope:
        try:
            decoded = base64.b64decode(envelope["data_base64"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise DecodeError("wrong_type", f"{subject}: data_base64 is not valid base64") from None
        data = parse_json(decoded, f"{subject} data_base64")
    else:
        raise DecodeError("missing_field", f"{subject}: missing 'data' or 'data_base64'")
    return _event(envelope, data, subject)


# -- bodies -----------------------------------------------------------------------------
def _flatten(data: Any, out: list[Any]) -> list[Any]:
    for item in data:
        if type(item) is list:
            _flatten(item, out)
        else:
            out.append(item)
    return out


def _rows_bounded(n_rows: int, decoder: Models, where: str) -> None:
    if n_rows > decoder.max_rows_per_record:
        raise DecodeError("too_many_rows", f"{where}: {n_rows} rows, expected at most "
                          f"{decoder.max_rows_per_record} (kafka.max_rows_per_record)")


def _tensor(tensor: Any, where: str, decoder: Models) -> tuple[str, int, int, list[Any]]:
    """(name, rows, width, flat row-major data) of one OIP tensor."""
    if type(tensor) is not dict:
        raise DecodeError(
            "wrong_type", f"{where}: got a {json_type(tensor)}, expected a tensor object"
        )
    try:
        name, shape, data = tensor["name"], tensor["shape"], tensor["data"]
    except KeyError as exc:
        raise DecodeError("missing_field", f"{where}: missing {exc.args[0]!r}") from None
    if type(shape) is not list or not shape or any(type(d) is not int or d < 0 for d in shape):
        raise DecodeError("wrong_type", f"{where}.shape: got {shape!r}, expected a list of sizes")
    if 0 in shape:  # [10**12, 0] holds no values but claims 10**12 rows
        raise DecodeError("shape_mismatch", f"{where} {name!r}: shape {shape} has a zero "
                          "dimension, expected at least one value per row")
    _rows_bounded(shape[0], decoder, f"{where} {name!r}")
    flat = _flatten(data, []) if type(data) is list else [data]
    width = 1
    for size in shape[1:]:
        width *= size
    if len(flat) != shape[0] * width:
        raise DecodeError(
            "shape_mismatch",
            f"{where} {name!r}: shape {shape} holds "
            f"{shape[0] * width} values, data has {len(flat)}",
        )
    for value in flat:
        if not isinstance(value, _SCALARS) and value is not None:
            raise DecodeError("wrong_type", f"{where} {name!r}: a {json_type(value)} in data")
    return str(name), shape[0], width, flat


def _named(model: str, width: int, decoder: Models, where: str) -> list[str]:
    names = decoder.feature_order(model)
    if names is None:
        raise DecodeError(
            "no_feature_order",
            f"{where}: positional rows for model {model!r}, "
            "whose feature order is unknown (no baseline loaded)",
        )
    if len(names) != width:
        raise DecodeError(
            "shape_mismatch",
            f"{where}: {width} positional values, model {model!r} has {len(names)} features",
        )
    return names


def request_rows(event: CloudEvent, model: str, decoder: Models) -> list[dict[str, Any]]:
    body = event.body
    if "instances" in body:
        instances = body["instances"]
        if type(instances) is not list:
            raise DecodeError("wrong_type", "V1 request instances: expected an array")
        _rows_bounded(len(instances), decoder, "V1 request instances")
        rows: list[dict[str, Any]] = []
        names: list[str] | None = None
        for index, instance in enumerate(instances):
            where = f"V1 request instance {index}"
            if type(instance) is dict:
                rows.append(check_features(instance, where))
            elif type(instance) is list:
                names = names or _named(model, len(instance), decoder, where)
                if len(instance) != len(names):
                    raise DecodeError(
                        "shape_mismatch", f"{where}: {len(instance)} values, expected {len(names)}"
                    )
                rows.append(check_features(dict(zip(names, instance, strict=True)), where))
            else:
                raise DecodeError(
                    "wrong_type",
                    f"{where}: got a {json_type(instance)}, expected an array or object",
                )
        return rows
    inputs = body.get("inputs")
    if type(inputs) is not list or not inputs:
        raise DecodeError(
            "unsupported_format", "KServe request: neither V1 'instances' nor OIP 'inputs'"
        )
    tensors = [_tensor(t, f"OIP request input {i}", decoder) for i, t in enumerate(inputs)]
    n_rows = tensors[0][1]
    if any(t[1] != n_rows for t in tensors):
        raise DecodeError(
            "shape_mismatch",
            f"OIP request: inputs disagree on the batch size ({[t[1] for t in tensors]})",
        )
    columns: list[tuple[str, list[Any]]] = []
    for name, _, width, flat in tensors:
        if width == 1:
            columns.append((name, flat))
            continue
        names = (
            _named(model, width, decoder, f"OIP request input {name!r}")
            if len(tensors) == 1
            else [f"{name}[{j}]" for j in range(width)]
        )
        columns.extend((names[j], flat[j::width]) for j in range(width))
    if len(columns) == 1 and len(tensors) == 1:
        order = decoder.feature_order(model)
        if order is not None and len(order) == 1:
            columns = [(order[0], columns[0][1])]
    return [{name: values[i] for name, values in columns} for i in range(n_rows)]


Output = tuple[float | int | str, float | None, dict[str, float] | None]


def _from_probabilities(probabilities: list[Any], where: str) -> Output:
    if not probabilities or any(type(p) is not float and type(p) is not int for p in probabilities):
        raise DecodeError("wrong_type", f"{where}: expected class probabilities (numbers)")
    scores = {str(i): float(p) for i, p in enumerate(probabilities)}
    best = max(range(len(probabilities)), key=probabilities.__getitem__)
    return best, (scores["1"] if len(scores) == 2 else None), scores


def response_rows(event: CloudEvent, decoder: Models) -> list[Output]:
    body = event.body
    if "predictions" in body:
        predictions = body["predictions"]
        if type(predictions) is not list:
            raise DecodeError("wrong_type", "V1 response predictions: expected an array")
        _rows_bounded(len(predictions), decoder, "V1 response predictions")
        rows: list[Output] = []
        for index, item in enumerate(predictions):
            if type(item) is list:
                rows.append(_from_probabilities(item, f"V1 response prediction {index}"))
            elif type(item) in (int, float, str):
                rows.append((item, None, None))
            else:
                raise DecodeError(
                    "wrong_type",
                    f"V1 response prediction {index}: got a "
                    f"{json_type(item)}, expected a number, string or array",
                )
        return rows
    outputs = body.get("outputs")
    if type(outputs) is not list or not outputs:
        raise DecodeError(
            "unsupported_format", "KServe response: neither V1 'predictions' nor OIP 'outputs'"
        )
    tensors = [_tensor(t, f"OIP response output {i}", decoder) for i, t in enumerate(outputs)]
    labels = next((t for t in tensors if t[2] == 1), None)
    probabilities = next((t for t in tensors if t[2] > 1), None)
    n_rows = (labels or probabilities or tensors[0])[1]
    result: list[Output] = []
    for i in range(n_rows):
        if probabilities is not None:
            width = probabilities[2]
            predicted, score, scores = _from_probabilities(
                probabilities[3][i * width : (i + 1) * width], f"OIP output {probabilities[0]!r}"
            )
        else:
            predicted, score, scores = 0, None, None
        if labels is not None:
            value = labels[3][i]
            if type(value) not in (int, float, str):
                raise DecodeError(
                    "wrong_type",
                    f"OIP output {labels[0]!r}: a {json_type(value)}, expected numbers or strings",
                )
            predicted = value
        result.append((predicted, score, scores))
    return result
