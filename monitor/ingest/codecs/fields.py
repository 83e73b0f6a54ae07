"""The pieces every codec shares: :class:`DecodeError`, its reason slugs, JSON and field checks.

The checks raise :class:`DecodeError` with a reason from :data:`REASONS` and a
one-line message naming the field, what was seen and what was expected.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson

__all__ = [
    "MAX_ID_CHARS",
    "MAX_TIMESTAMP_MS",
    "REASONS",
    "SCALAR_TYPES",
    "TARGET_TYPES",
    "VERSION_PATTERN",
    "DecodeError",
    "Models",
    "Record",
    "check_features",
    "check_scores",
    "check_target",
    "id_text",
    "json_type",
    "optional_number",
    "parse_json",
    "parse_timestamp_ms",
    "shown",
    "version_text",
]

# every reason slug of driftloop_events_invalid_total{reason} and the dead-letter header,
# with what it means (docs/reference/events.md is generated from this table)
REASONS: Mapping[str, str] = {
    "oversized": "the value is longer than kafka.max_record_bytes",
    "empty": "no value (a tombstone) or zero bytes",
    "not_utf8": "the value is not valid UTF-8",
    "malformed_json": "the value is not valid JSON",
    "non_finite": "a number is NaN or infinite, written so or by overflowing a double",
    "missing_field": "a required field is absent",
    "wrong_type": "a field has a JSON type the contract does not allow",
    "unknown_model": "the model is not configured under models",
    "bad_timestamp": "the timestamp is not RFC 3339 with a UTC offset or epoch milliseconds",
    "unsupported_format": "a format not enabled in kafka.formats, or not recognised",
    "unknown_event_type": "a CloudEvent that is neither an inference request nor a response",
    "shape_mismatch": "batch sizes or tensor shapes that do not agree",
    "no_feature_order": "positional instances for a model whose feature order is unknown",
    "unknown_version": "a KServe endpoint that maps to no model version",
    "unpaired": "a KServe half evicted before its partner arrived",
    "bad_text": "an id or name that is empty or holds control characters (NUL, line breaks)",
    "too_long": "an id longer than 200 characters",
    "bad_version": "a version outside the pattern ^[A-Za-z0-9_][A-Za-z0-9._+-]{0,63}$",
    "too_deep": "JSON nested deeper than 1024 levels",
    "too_many_rows": "a KServe batch of more rows than kafka.max_rows_per_record",
    "too_many_versions": "a new version of a model that already has models.<name>.max_versions "
                         "live versions",
    "undecodable": "decoding the record failed in a way no other reason names",
    "poison": "a record whose results could not be stored after repeated attempts",
}

_MAX_MESSAGE_CHARS = 500
MAX_ID_CHARS = 200  # the store's id columns are String(200)
# no leading "-" or ".": a version reaches launch argv and file names
VERSION_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9._+-]{0,63}$"
_VERSION = re.compile(VERSION_PATTERN)
MAX_TIMESTAMP_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
SCALAR_TYPES = frozenset({float, int, str, bool, type(None)})
_NUMBERS = (int, float)
TARGET_TYPES = frozenset({int, float, str})


class DecodeError(Exception):
    """A record that cannot be decoded or validated.

    ``reason`` is one of :data:`REASONS`; ``message`` is one line naming the
    subject, what was seen and what was expected.
    """

    def __init__(self, reason: str, message: str) -> None:
        one_line = " ".join(message.split())
        if len(one_line) > _MAX_MESSAGE_CHARS:
            one_line = one_line[: _MAX_MESSAGE_CHARS - 3] + "..."
        super().__init__(one_line)
        self.reason = reason
        self.message = one_line

    def __repr__(self) -> str:
        return f"DecodeError({self.reason!r}, {self.message!r})"


class Record(Protocol):
    """What the codecs read of a kafka-python ``ConsumerRecord``."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes | None]] | None: ...


class Models(Protocol):
    """What the KServe codecs ask of the decoder about configured models."""

    @property
    def feature_order(self) -> Callable[[str], list[str] | None]:
        """Names for positional instances of a model (None when unknown)."""
        ...

    @property
    def endpoint_version(self) -> Callable[[str, str], str | None]:
        """The version a (model, KServe endpoint) maps to (None when unknown)."""
        ...

    def check_model(self, model: Any, subject: str) -> str:
        """``model`` when it is a configured model's name; DecodeError otherwise."""
        ...

    @property
    def max_rows_per_record(self) -> int:
        """Rows one record (a KServe batch) may carry."""
        ...

    def version(self, value: Any, subject: str) -> str:
        """``value`` as a version in the documented pattern; DecodeError otherwise."""
        ...

    def event_time(self, timestamp_ms: int, record: Record, subject: str) -> int:
        """``timestamp_ms`` when it is a believable event time; DecodeError otherwise."""
        ...


def _reject_constant(name: str) -> Any:
    raise DecodeError("non_finite", f"{name} is not a finite number; expected finite numbers only")


def _reject_overflow(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise DecodeError("non_finite", f"{text} overflows a double; expected finite numbers only")
    return number


def _classify_json_error(raw: bytes, subject: str) -> DecodeError:
    # only on the error path: tell the reasons apart without depending on orjson's wording
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return DecodeError("not_utf8", f"{subject}: not valid UTF-8 at byte {exc.start}")
    try:
        json.loads(text, parse_constant=_reject_constant, parse_float=_reject_overflow)
    except DecodeError as exc:
        return DecodeError(exc.reason, f"{subject}: {exc.message}")
    except RecursionError:
        return DecodeError("too_deep", f"{subject}: JSON nested deeper than 1024 levels")
    except ValueError as exc:
        return DecodeError("malformed_json", f"{subject}: not valid JSON ({exc})")
    return DecodeError("malformed_json", f"{subject}: not valid JSON")


def parse_json(raw: bytes, subject: str = "value") -> Any:
    """``orjson.loads`` with failures classified (not_utf8, non_finite, too_deep,
    malformed_json)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):  # orjson stops at 1024 levels
            raise DecodeError("too_deep", f"{subject}: JSON nested deeper than 1024 levels") \
                from None
        raise _classify_json_error(raw, subject) from None


def parse_timestamp_ms(value: Any, subject: str = "timestamp") -> int:
    """RFC 3339 text (with a UTC offset) or epoch milliseconds -> epoch milliseconds."""
    kind = type(value)
    if kind is str:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise DecodeError(
                "bad_timestamp",
                f"{subject}: got {value!r}, expected RFC 3339 or epoch milliseconds",
            ) from None
        if moment.tzinfo is None:
            raise DecodeError(
                "bad_timestamp",
                f"{subject}: got {value!r} without a UTC offset, expected RFC 3339 "
                "like 2018-10-30T18:00:00Z",
            )
        return (moment - _EPOCH) // _ONE_MS
    if kind is int or kind is float:
        if not 0 <= value <= MAX_TIMESTAMP_MS:
            raise DecodeError(
                "bad_timestamp",
                f"{subject}: got {value!r}, expected epoch milliseconds in 0..year 9999",
            )
        return int(value)
    raise DecodeError(
        "wrong_type",
        f"{subject}: got a {json_type(value)}, expected RFC 3339 text or epoch milliseconds",
    )


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, _NUMBERS):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def id_text(value: Any, subject: str) -> str:
    """A request id (string or integer) that every store column can hold: 1 to 200
    printable characters (PostgreSQL text cannot hold NUL; line breaks forge log lines)."""
    kind = type(value)
    if kind is int:
        return str(value)
    if kind is not str:
        raise DecodeError(
            "wrong_type", f"{subject}: got a {json_type(value)}, expected a string or integer"
        )
    if len(value) > MAX_ID_CHARS:
        raise DecodeError("too_long", f"{subject}: {len(value)} characters, expected at most "
                          f"{MAX_ID_CHARS}")
    if not value or not value.isprintable():
        raise DecodeError("bad_text", f"{subject}: {shown(value)}, expected 1 to "
                          f"{MAX_ID_CHARS} printable characters")
    return value


def version_text(value: Any, subject: str) -> str:
    """A model version in the documented pattern (it becomes a metric label, a window
    stream and checkpoint rows, so it must be bounded)."""
    kind = type(value)
    if kind is int:
        value = str(value)
    elif kind is not str:
        raise DecodeError(
            "wrong_type", f"{subject}: got a {json_type(value)}, expected a string or integer"
        )
    if not _VERSION.match(value):
        raise DecodeError("bad_version", f"{subject}: {shown(value)}, expected "
                          f"{VERSION_PATTERN}")
    return str(value)


def shown(value: Any, limit: int = 60) -> str:
    """``repr`` cut to ``limit`` characters: a message names a value, not all of it."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_target(value: Any, subject: str) -> float | int | str:
    kind = type(value)
    if kind is str or kind is int or kind is float:
        return value
    raise DecodeError(
        "wrong_type", f"{subject}: got a {json_type(value)}, expected a number or string"
    )


def optional_number(value: Any, subject: str) -> float | None:
    if value is None:
        return None
    kind = type(value)
    if kind is float or kind is int:
        return value
    raise DecodeError(
        "wrong_type", f"{subject}: got a {json_type(value)}, expected a number or null"
    )


def check_features(features: Any, subject: str) -> dict[str, Any]:
    """A features object: number, string, bool or null values only."""
    if type(features) is not dict:
        raise DecodeError(
            "wrong_type", f"{subject}: got a {json_type(features)}, expected an object"
        )
    if SCALAR_TYPES.issuperset(map(type, features.values())):  # the hot path, in C
        return features
    for name, value in features.items():
        if type(value) not in SCALAR_TYPES:
            raise DecodeError(
                "wrong_type",
                f"{subject}.{name}: got a {json_type(value)}, "
                "expected a number, string, bool or null",
            )
    return features


def check_scores(scores: Any, subject: str) -> dict[str, float] | None:
    if scores is None:
        return None
    if type(scores) is not dict:
        raise DecodeError("wrong_type", f"{subject}: got a {json_type(scores)}, expected an object")
    for name, value in scores.items():
        if type(value) is not float and type(value) is not int:
            raise DecodeError(
                "wrong_type", f"{subject}.{name}: got a {json_type(value)}, expected a number"
            )
    return scores
