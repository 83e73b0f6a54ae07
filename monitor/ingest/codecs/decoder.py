"""Kafka record -> :class:`~monitor.events.Prediction` / :class:`~monitor.events.Label`.

Formats (``kafka.formats`` in the config):

- ``native``: one UTF-8 JSON object per record (design 3.1, 3.2);
- ``kserve`` / ``oip``: the KServe inference logger's CloudEvents, binary mode
  (``ce_*`` Kafka headers, raw HTTP body as value) or structured mode
  (``content-type: application/cloudevents+json``), with V1 or Open Inference
  Protocol V2 bodies (design 3.3). Either name turns CloudEvents decoding on;
  the body protocol is recognised by its shape. Request and response events
  are paired by :class:`monitor.codecs_join.KServeJoiner`.

Every failure raises :class:`DecodeError` with ``reason``, a short stable slug
for ``driftloop_events_invalid_total{reason}`` (all slugs are in
:data:`REASONS`), and ``message``, one line for the ``driftloop_error`` header
of the dead letter. Nothing else escapes :meth:`Decoder.decode_prediction` or
:meth:`Decoder.decode_label`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from monitor.ingest.codecs.fields import (
    MAX_ID_CHARS,
    REASONS,
    SCALAR_TYPES,
    TARGET_TYPES,
    DecodeError,
    Record,
    check_features,
    check_scores,
    check_target,
    id_text,
    json_type,
    optional_number,
    parse_json,
    parse_timestamp_ms,
    version_text,
)
from monitor.ingest.codecs.join import KServeJoiner
from monitor.ingest.codecs.kserve import cloudevent_from_envelope, cloudevent_from_record
from monitor.ingest.events import Label, Prediction

__all__ = ["KNOWN_FORMATS", "REASONS", "DecodeError", "Decoder", "KServeJoiner", "Record"]

KNOWN_FORMATS = ("native", "kserve", "oip")
MIN_EVENT_TIME_MS = 946_684_800_000  # 2000-01-01T00:00:00Z


def iso(ms: int) -> str:
    try:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError):
        return f"{ms} ms"


class Decoder:
    """Decodes records of the predictions and labels topics.

    ``feature_order(model)`` names positional KServe instances (None when
    unknown); ``endpoint_version(model, endpoint)`` maps a KServe endpoint
    (``default``, ``canary``) to a model version (None when unknown);
    ``known_models(model)`` says whether a model is configured. The joiner
    that pairs KServe halves is ``self.joiner`` (see its docstring for the
    offsets the service must not commit past, and for evicted halves).
    """

    def __init__(
        self,
        formats: Sequence[str],
        *,
        max_record_bytes: int,
        feature_order: Callable[[str], list[str] | None],
        endpoint_version: Callable[[str, str], str | None],
        known_models: Callable[[str], bool],
        joiner: KServeJoiner | None = None,
        max_future_skew_seconds: float = 3600.0,
        min_event_time_ms: int = MIN_EVENT_TIME_MS,
        max_rows_per_record: int = 10_000,
    ) -> None:
        unknown = sorted(set(formats) - set(KNOWN_FORMATS))
        if unknown:
            raise ValueError(f"unknown formats {unknown}; known: {', '.join(KNOWN_FORMATS)}")
        self.formats = tuple(formats)
        self.native = "native" in self.formats
        self.cloudevents = "kserve" in self.formats or "oip" in self.formats
        self.max_record_bytes = max_record_bytes
        self.feature_order = feature_order
        self.endpoint_version = endpoint_version
        self.known_models = known_models
        self.joiner = joiner if joiner is not None else KServeJoiner()
        # models once known stay known (the service never unloads one while running)
        self._known: set[str] = set()
        self.max_future_skew_ms = int(max_future_skew_seconds * 1000)
        self.min_event_time_ms = min_event_time_ms
        self.max_rows_per_record = max_rows_per_record
        self._versions: set[str] = set()  # versions already checked against the pattern
        # native predictions of records handled before a restart: they rebuild streams
        self._replayed: list[Prediction] = []

    def event_time(self, timestamp_ms: int, record: Record, subject: str) -> int:
        """``timestamp_ms`` when it is a believable event time: not before
        ``min_event_time_ms`` and not more than ``max_future_skew`` ahead of the record's
        broker time (one far-future event would close every open window and make every
        later event late)."""
        if timestamp_ms < self.min_event_time_ms:
            raise DecodeError("bad_timestamp", f"{subject}: {iso(timestamp_ms)} is before "
                              f"{iso(self.min_event_time_ms)} (kafka.min_event_time)")
        broker_ms = record.timestamp
        if broker_ms is not None and broker_ms >= 0 and \
                timestamp_ms - broker_ms > self.max_future_skew_ms:
            raise DecodeError(
                "bad_timestamp",
                f"{subject}: {iso(timestamp_ms)} is more than "
                f"{self.max_future_skew_ms / 1000:g}s ahead of the record's broker time "
                f"{iso(broker_ms)} (kafka.max_future_skew)")
        return timestamp_ms

    def version(self, value: Any, subject: str) -> str:
        if type(value) is str and value in self._versions:
            return value
        checked = version_text(value, subject)
        if len(self._versions) < 10_000:
            self._versions.add(checked)
        return checked

    # -- the two entry points -----------------------------------------------------------
    def decode_prediction(self, record: Record, replayed: bool = False) -> list[Prediction]:
        """Zero or more predictions: a KServe half waiting for its partner gives none.

        ``replayed``: the record was handled before a restart (below its partition's
        processed mark): it emits nothing, except a KServe half that was still waiting
        then and now meets a partner that was not handled yet. A replayed native record is
        decoded into :meth:`take_replayed` (it may rebuild a stream's state since its last
        snapshot, and nothing else).
        """
        raw = self._raw(record)
        if record.headers:
            if self.cloudevents:
                event = cloudevent_from_record(record, raw)
                if event is not None:
                    return self.joiner.add(event, record, self, replayed)
            elif any(key.lower().startswith("ce_") for key, _ in record.headers):
                raise DecodeError(
                    "unsupported_format",
                    "value: a binary-mode CloudEvent, "
                    "but kafka.formats enables neither kserve nor oip",
                )
        obj = parse_json(raw)
        if type(obj) is not dict:
            raise DecodeError(
                "wrong_type", f"value: got a JSON {json_type(obj)}, expected an object"
            )
        if "specversion" in obj and "model" not in obj:
            if not self.cloudevents:
                raise DecodeError(
                    "unsupported_format",
                    "value: a structured CloudEvent, "
                    "but kafka.formats enables neither kserve nor oip",
                )
            return self.joiner.add(cloudevent_from_envelope(obj), record, self, replayed)
        if not self.native:
            raise DecodeError(
                "unsupported_format",
                f"value: a plain JSON object without CloudEvents headers, but kafka.formats is "
                f"{list(self.formats)} (add native to accept design 3.1 events)",
            )
        if replayed:
            self._replayed.append(self._native_prediction(obj, record))
            return []  # counted before the restart
        return [self._native_prediction(obj, record)]

    def take_replayed(self) -> list[Prediction]:
        """Predictions of the replayed native records decoded since the last call, in order."""
        replayed, self._replayed = self._replayed, []
        return replayed

    def decode_label(self, record: Record) -> Label:
        obj = parse_json(self._raw(record))
        if type(obj) is not dict:
            raise DecodeError(
                "wrong_type", f"label: got a JSON {json_type(obj)}, expected an object"
            )
        try:
            model = obj["model"]
            request_id = obj["request_id"]
            label = obj["label"]
        except KeyError as exc:
            raise DecodeError(
                "missing_field", f"label: missing required field {exc.args[0]!r}"
            ) from None
        model = self.check_model(model, "label")
        stamp = obj.get("timestamp")
        # labels written without a time take the broker's record time
        timestamp_ms = (
            record.timestamp if stamp is None else self.event_time(
                parse_timestamp_ms(stamp, "label.timestamp"), record, "label.timestamp")
        )
        return Label(
            model,
            id_text(request_id, "label.request_id"),
            check_target(label, "label.label"),
            timestamp_ms,
            record.topic,
            record.partition,
            record.offset,
        )

    # -- helpers ------------------------------------------------------------------------
    def _raw(self, record: Record) -> bytes:
        raw = record.value
        if not raw:
            raise DecodeError("empty", "value: empty record, expected a JSON object")
        if len(raw) > self.max_record_bytes:
            raise DecodeError(
                "oversized",
                f"value: {len(raw)} bytes, expected at most {self.max_record_bytes} "
                "(kafka.max_record_bytes)",
            )
        return raw

    def check_model(self, model: Any, subject: str) -> str:
        if type(model) is not str:
            raise DecodeError(
                "wrong_type", f"{subject}.model: got a {json_type(model)}, expected a string"
            )
        if not self.known_models(model):
            raise DecodeError(
                "unknown_model", f"{subject}.model: {model!r} is not a configured model"
            )
        self._known.add(model)
        return model

    def _native_prediction(self, obj: dict[str, Any], record: Record) -> Prediction:
        try:
            model = obj["model"]
            version = obj["version"]
            request_id = obj["request_id"]
            stamp = obj["timestamp"]
            features = obj["features"]
            prediction = obj["prediction"]
        except KeyError as exc:
            raise DecodeError(
                "missing_field", f"prediction: missing required field {exc.args[0]!r}"
            ) from None
        # fast paths inline (this runs for every event); the helpers explain failures
        if type(model) is not str or model not in self._known:
            model = self.check_model(model, "prediction")
        if type(version) is not str or version not in self._versions:
            version = self.version(version, "prediction.version")
        if type(request_id) is not str or not 0 < len(request_id) <= MAX_ID_CHARS \
                or not request_id.isprintable():
            request_id = id_text(request_id, "prediction.request_id")
        timestamp_ms = stamp if type(stamp) is int else \
            parse_timestamp_ms(stamp, "prediction.timestamp")
        if not self.min_event_time_ms <= timestamp_ms <= record.timestamp + \
                self.max_future_skew_ms:
            timestamp_ms = self.event_time(timestamp_ms, record, "prediction.timestamp")
        if type(features) is not dict or not SCALAR_TYPES.issuperset(map(type, features.values())):
            features = check_features(features, "prediction.features")
        if type(prediction) not in TARGET_TYPES:
            prediction = check_target(prediction, "prediction.prediction")
        get = obj.get
        score = get("score")
        if score is not None and type(score) is not float:
            score = optional_number(score, "prediction.score")
        scores = get("scores")
        if scores is not None:
            scores = check_scores(scores, "prediction.scores")
        latency = get("latency_ms")
        if latency is not None and type(latency) is not float:
            latency = optional_number(latency, "prediction.latency_ms")
        return Prediction(
            model,
            version,
            request_id,
            timestamp_ms,
            features,
            prediction,
            score,
            scores,
            latency,
            record.topic,
            record.partition,
            record.offset,
        )
