"""The native label records of one poll -> a :class:`~monitor.ingest.batch.LabelBatch`
per model, decoded and validated in C (msgspec), or None.

As :func:`monitor.ingest.codecs.bulk.decode_native` for predictions: the whole batch
or nothing. Anything the per-record path (:meth:`Decoder.decode_label`) would
dead-letter, or might read differently, sends the batch back to that path, so every
bad record keeps its own dead letter and reason. The checks are those of the
per-record path: a value of at most ``max_record_bytes`` without a CloudEvents
header; one JSON object of design 3.2's fields and no other (msgspec checks only what
it decodes); a configured ``model``; a ``request_id`` of 1 to 200 printable
characters (an integer id is its text); a ``label`` that is a number or a string
(integers within int64, finite floats); the ``timestamp`` in ``[min_event_time,
broker time + max_future_skew]``, or the broker time when it is missing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from operator import attrgetter
from typing import Any

import msgspec
import numpy as np

from monitor.ingest.batch import LabelBatch
from monitor.ingest.codecs.bulk import Int, clean_values
from monitor.ingest.codecs.fields import MAX_ID_CHARS, DecodeError, parse_timestamp_ms

__all__ = ["decode_labels"]


class _Label(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    model: str
    request_id: str | Int
    label: Int | float | str
    timestamp: Int | float | str | None = None


_DECODE = msgspec.json.Decoder(_Label).decode
_model = attrgetter("model")
_request_id = attrgetter("request_id")
_label = attrgetter("label")
_timestamp = attrgetter("timestamp")
_broker_time = attrgetter("timestamp")  # of a record


def decode_labels(decoder: Any, records: Sequence[Any]) -> list[LabelBatch] | None:
    """One batch per model (models in order of first appearance), or None when the
    records must take the per-record path. ``decoder``: the
    :class:`~monitor.ingest.codecs.decoder.Decoder` (its configuration)."""
    if not records or not decoder.native:
        return None
    values = clean_values(records, decoder.max_record_bytes)
    if values is None:
        return None
    try:
        heads = list(map(_DECODE, values))
        return _batches(decoder, records, heads)
    except (msgspec.DecodeError, msgspec.ValidationError, DecodeError, TypeError,
            ValueError, OverflowError):
        return None


def _batches(decoder: Any, records: Sequence[Any], heads: list[_Label]
             ) -> list[LabelBatch] | None:
    n = len(heads)
    models = list(map(_model, heads))
    for model in set(models):
        decoder.check_model(model, "label")  # DecodeError: unknown model
    request_ids = list(map(_request_id, heads))
    if set(map(type, request_ids)) != {str}:
        request_ids = list(map(str, request_ids))
    sizes = list(map(len, request_ids))
    if min(sizes) == 0 or max(sizes) > MAX_ID_CHARS \
            or not all(map(str.isprintable, request_ids)):
        return None
    labels = list(map(_label, heads))
    if float in set(map(type, labels)) and not all(
            math.isfinite(v) for v in labels if type(v) is float):
        return None  # orjson refuses a double overflow: the per-record path says so
    broker = np.fromiter(map(_broker_time, records), np.int64, n)  # None: TypeError
    written = list(map(_timestamp, heads))
    kinds = set(map(type, written))
    raw = written
    if kinds != {int}:
        # a label written without a time takes the broker's record time, unchecked
        raw = [b if s is None else s if type(s) is int
               else parse_timestamp_ms(s, "label.timestamp")
               for s, b in zip(written, broker.tolist(), strict=True)]
    stamps = np.array(raw, dtype=np.int64)
    limit = broker + decoder.max_future_skew_ms
    if type(None) in kinds:  # only the times the labels give are checked
        given = np.fromiter((s is not None for s in written), bool, n)
        stamps, limit = stamps[given], limit[given]
    if broker.min() < 0 or (stamps.size and (
            stamps.min() < max(0, decoder.min_event_time_ms) or np.any(stamps > limit))):
        return None
    times = raw
    if len(set(models)) == 1:
        return [LabelBatch(models[0], request_ids, labels, times)]
    out: dict[str, LabelBatch] = {}
    for i, model in enumerate(models):
        batch = out.get(model)
        if batch is None:
            batch = out[model] = LabelBatch(model, [], [], [])
        batch.request_ids.append(request_ids[i])
        batch.labels.append(labels[i])
        batch.timestamps_ms.append(times[i])
    return list(out.values())
