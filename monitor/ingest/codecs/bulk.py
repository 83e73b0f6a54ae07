"""The native records of one poll -> :class:`~monitor.ingest.batch.PredictionBatch` runs,
decoded and validated in C (msgspec with typed structs), or None.

:func:`decode_native` takes the whole batch or nothing: it returns None as soon as
anything in it is not clean (a record the per-record path would dead-letter, or one it
would decode to values this path cannot promise to reproduce exactly), and the
caller then decodes that batch record by record (:meth:`Decoder.decode_prediction`),
so every bad record keeps its own dead letter and reason.

The checks are those of the per-record path, applied to columns:

- record: a value, at most ``max_record_bytes``, no CloudEvents header (``ce_*``,
  ``content-type``), a broker time >= 0;
- JSON: one object per record with the fields of design 3.1 and no other: msgspec
  checks UTF-8 and numbers only in what it decodes, so nothing may be skipped; no
  number the per-record parser (orjson) reads differently: integers within int64
  (orjson makes a float of one beyond 64 bits), no double overflow (``non_finite``
  there), no numeric feature of magnitude 2**63 or more;
- fields: the types of design 3.1 (``bool`` is not a number), ``model`` configured,
  ``version`` in its pattern, ``request_id`` of 1 to 200 printable characters, the
  timestamp in ``[min_event_time, broker time + max_future_skew]``;
- features: exactly the baseline's features (no other key, none missing), numbers or
  null for numeric ones, scalars for the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import chain
from operator import attrgetter
from typing import Annotated, Any

import msgspec
import numpy as np

from monitor.ingest.batch import FeatureColumn, PredictionBatch
from monitor.ingest.codecs.fields import MAX_ID_CHARS, DecodeError, parse_timestamp_ms

__all__ = ["FeatureKinds", "Int", "clean_values", "decode_native"]

# (name, numeric) per feature of a model's baseline, prediction and score columns left out;
# None: the model has no baseline this path can use
FeatureKinds = Callable[[str], Sequence[tuple[str, bool]] | None]

_MAX_FEATURE_STRUCTS = 64
# orjson reads integers up to 2**64 - 1 as int and makes floats of larger ones: within
# int64, msgspec and orjson agree
Int = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
_HUGE = 2.0**63


# gc=False: the structs hold no cycles, and untracked they cost the collector nothing
class _Head(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    model: str
    version: str | Int
    request_id: str | Int
    timestamp: Int | float | str
    features: msgspec.Raw
    prediction: Int | float | str
    score: Int | float | None = None
    scores: dict[str, Int | float] | None = None
    latency_ms: Int | float | None = None


_HEAD = msgspec.json.Decoder(_Head)
_HEAD_FIELDS = [(f.name, f.type, msgspec.NODEFAULT if f.required else f.default)
                for f in msgspec.structs.fields(_Head)]
_values = attrgetter("value")
_headers = attrgetter("headers")
_broker_time = attrgetter("timestamp")  # of a record
_offsets = attrgetter("offset")
_model = attrgetter("model")
_version = attrgetter("version")
_request_id = attrgetter("request_id")
_timestamp = attrgetter("timestamp")  # of an event
_features = attrgetter("features")
_prediction = attrgetter("prediction")
_score = attrgetter("score")
_scores = attrgetter("scores")
_latency = attrgetter("latency_ms")


class _ModelOnly(msgspec.Struct, gc=False):
    model: str


_MODEL_ONLY = msgspec.json.Decoder(_ModelOnly)

Kinds = tuple[tuple[str, bool], ...]
# (names and kinds) -> decoders of a list of feature structs, and of a whole event
_decoders: dict[Kinds, tuple[msgspec.json.Decoder[Any], msgspec.json.Decoder[Any]]] = {}


def _decoders_of(kinds: Kinds) -> tuple[msgspec.json.Decoder[Any], msgspec.json.Decoder[Any]]:
    found = _decoders.get(kinds)
    if found is None:
        fields = [(f"f{i}", float | None if numeric else Int | float | str | bool | None,
                   msgspec.field(name=name))
                  for i, (name, numeric) in enumerate(kinds)]
        features = msgspec.defstruct("Features", fields, forbid_unknown_fields=True, gc=False)
        event = msgspec.defstruct(
            "Event", [(name, features if name == "features" else kind, default)
                      for name, kind, default in _HEAD_FIELDS], forbid_unknown_fields=True,
            gc=False)
        found = (msgspec.json.Decoder(list[features]),  # type: ignore[valid-type]
                 msgspec.json.Decoder(event))
        if len(_decoders) >= _MAX_FEATURE_STRUCTS:
            _decoders.clear()
        _decoders[kinds] = found
    return found


def clean_values(records: Sequence[Any], max_record_bytes: int) -> list[bytes] | None:
    """The records' values when none is empty, oversized or a CloudEvents half."""
    values = list(map(_values, records))
    try:
        sizes = list(map(len, values))
    except TypeError:  # a tombstone (None)
        return None
    if not sizes or min(sizes) == 0 or max(sizes) > max_record_bytes:
        return None
    for headers in filter(None, map(_headers, records)):
        for key, _ in headers:
            name = key.lower()
            if name.startswith("ce_") or name == "content-type":
                return None
    return values


def decode_native(decoder: Any, records: Sequence[Any],
                  feature_kinds: FeatureKinds) -> list[PredictionBatch] | None:
    """Runs of consecutive records of one (model, version), in record order, or None
    when the batch must take the per-record path. ``decoder``: the
    :class:`~monitor.ingest.codecs.decoder.Decoder` (its configuration and caches)."""
    if not records or not decoder.native:
        return None
    values = clean_values(records, decoder.max_record_bytes)
    if values is None:
        return None
    # the usual case first: every record of the model of the first, decoded in one pass
    features: dict[str, tuple[dict[str, FeatureColumn], list[int]]] | None = None
    heads: list[Any] | None = None
    models: list[str] | None = None
    try:
        guess = _MODEL_ONLY.decode(values[0]).model
        kinds = feature_kinds(guess) if decoder.known_models(guess) else None
        if kinds is not None:
            heads = list(map(_decoders_of(tuple(kinds))[1].decode, values))
            models = list(map(_model, heads))
            if models.count(guess) != len(heads):
                heads = models = None
            else:
                features = _event_columns(heads, tuple(kinds))
                if features is None:
                    return None
    except (msgspec.DecodeError, msgspec.ValidationError):
        heads = None
    if heads is None:  # several models, or features of another model: in two passes
        try:
            heads = list(map(_HEAD.decode, values))
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        models = list(map(_model, heads))
    assert models is not None
    n = len(heads)
    try:
        columns = _validate(decoder, records, heads, models)
    except (DecodeError, TypeError, ValueError, OverflowError):
        return None
    if columns is None:
        return None
    versions, request_ids, stamps = columns
    # runs of one (model, version); the usual poll is one run, told without a pair per record
    if models.count(models[0]) == n and versions.count(versions[0]) == n:
        keys, starts = [(models[0], versions[0])], [0]
    else:
        keys = list(zip(models, versions, strict=True))
        starts = [0] + [i for i in range(1, n) if keys[i] != keys[i - 1]]
    if features is None:
        features = _feature_columns(heads, models, feature_kinds)
    if features is None:
        return None
    offsets = np.fromiter(map(_offsets, records), np.int64, n)
    predictions = list(map(_prediction, heads))
    scores = list(map(_score, heads))
    class_scores = list(map(_scores, heads))
    latency = list(map(_latency, heads))
    first = records[0]
    topic, partition = first.topic, first.partition
    runs: list[PredictionBatch] = []
    for j, start in enumerate(starts):
        stop = starts[j + 1] if j + 1 < len(starts) else n
        model, version = keys[start]
        by_model, position = features[model]
        lo = position[start]
        hi = lo + (stop - start)
        runs.append(PredictionBatch(
            model, version, topic, partition, offsets[start:stop], stamps[start:stop],
            request_ids[start:stop],
            {name: column[lo:hi] for name, column in by_model.items()},
            predictions[start:stop], scores[start:stop], class_scores[start:stop],
            latency[start:stop]))
    return runs


def _validate(decoder: Any, records: Sequence[Any], heads: list[_Head], models: list[str]
              ) -> tuple[list[str], list[str], np.ndarray] | None:
    n = len(heads)
    for model in set(models):
        decoder.check_model(model, "prediction")  # DecodeError: unknown model
    raw_versions = list(map(_version, heads))
    checked = {v: decoder.version(v, "prediction.version") for v in set(raw_versions)}
    versions = list(map(checked.__getitem__, raw_versions))
    request_ids = list(map(_request_id, heads))
    if set(map(type, request_ids)) != {str}:
        request_ids = list(map(str, request_ids))  # an integer id is its text
    sizes = list(map(len, request_ids))
    if min(sizes) == 0 or max(sizes) > MAX_ID_CHARS \
            or not all(map(str.isprintable, request_ids)):
        return None
    raw_stamps = list(map(_timestamp, heads))
    if set(map(type, raw_stamps)) != {int}:
        raw_stamps = [s if type(s) is int else parse_timestamp_ms(s, "prediction.timestamp")
                      for s in raw_stamps]
    stamps = np.array(raw_stamps, dtype=np.int64)
    broker = np.fromiter(map(_broker_time, records), np.int64, n)  # None: TypeError
    if broker.min() < 0 or stamps.min() < decoder.min_event_time_ms or \
            np.any(stamps > broker + decoder.max_future_skew_ms):
        return None
    return versions, request_ids, stamps


def _feature_columns(heads: list[_Head], models: list[str], feature_kinds: FeatureKinds
                     ) -> dict[str, tuple[dict[str, FeatureColumn], list[int]]] | None:
    """Per model: its feature columns (its records, in order) and, per record of the
    batch, its position among the records of its model."""
    raws = list(map(_features, heads))
    position = list(range(len(raws)))
    groups: dict[str, list[Any]]
    if len(set(models)) == 1:
        groups = {models[0]: raws}
    else:
        groups = {}
        for i, (model, raw) in enumerate(zip(models, raws, strict=True)):
            group = groups.setdefault(model, [])
            position[i] = len(group)
            group.append(raw)
    out: dict[str, tuple[dict[str, FeatureColumn], list[int]]] = {}
    for model, group in groups.items():
        kinds = feature_kinds(model)
        if kinds is None:
            return None
        kinds = tuple(kinds)
        try:
            rows = _decoders_of(kinds)[0].decode(b"[" + b",".join(group) + b"]")
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        if len(rows) != len(group):
            return None
        columns = _columns(rows, kinds)
        if columns is None:
            return None
        out[model] = (columns, position)
    return out


def _event_columns(heads: list[Any], kinds: Kinds
                   ) -> dict[str, tuple[dict[str, FeatureColumn], list[int]]] | None:
    columns = _columns(list(map(_features, heads)), kinds)
    return None if columns is None else {heads[0].model: (columns, list(range(len(heads))))}


def _columns(rows: list[Any], kinds: Kinds) -> dict[str, FeatureColumn] | None:
    """Feature structs -> a float64 array per numeric feature, a list per other one."""
    n = len(rows)
    columns: dict[str, FeatureColumn] = {}
    numeric = [(i, name) for i, (name, is_numeric) in enumerate(kinds) if is_numeric]
    others = [(i, name) for i, (name, is_numeric) in enumerate(kinds) if not is_numeric]
    if numeric:
        get = attrgetter(*[f"f{i}" for i, _ in numeric])
        cells: Any = map(get, rows)
        if len(numeric) > 1:
            cells = chain.from_iterable(cells)
        table = np.fromiter(cells, np.float64, n * len(numeric))
        if np.any(np.abs(table) >= _HUGE):  # an integer orjson may read otherwise
            return None
        table = table.reshape(n, len(numeric)).T.copy()
        columns.update(zip((name for _, name in numeric), table, strict=True))
    if others:
        get = attrgetter(*[f"f{i}" for i, _ in others])
        if len(others) > 1:
            for (_, name), column in zip(others, zip(*map(get, rows), strict=True),
                                         strict=True):
                columns[name] = list(column)
        else:
            columns[others[0][1]] = list(map(get, rows))
    return {name: columns[name] for name, _ in kinds}
