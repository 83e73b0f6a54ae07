"""Dead letters (design 3.4): bad records go, unchanged, to the dead-letter topic.

The record's key and value are produced as they were read, with the record's
own headers (so a binary-mode CloudEvent keeps its ``ce_*`` attributes and can
be replayed) plus ``driftloop_error`` (one line), ``driftloop_source_topic``,
``driftloop_source_partition`` and ``driftloop_source_offset``. Headers of an
earlier trip through the dead-letter topic are replaced, not repeated.

No data loss: :meth:`DeadLetterWriter.flush` returns only when every dead
letter written so far is acknowledged by the broker (``acks=all`` from
:func:`monitor.kafka.make_producer`) and raises :class:`DeadLetterError`
otherwise, so the service flushes before it stores or commits the offset of a
bad record. A value too large for the producer or the broker is replaced by
an empty value and the ``driftloop_error`` line says so: the only case where
the value does not survive, and it is written down instead of retried forever.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Protocol

from kafka.errors import KafkaError, KafkaTimeoutError, MessageSizeTooLargeError

from monitor.ingest.codecs.decoder import DecodeError, Record

__all__ = ["HEADERS", "DeadLetterError", "DeadLetterWriter", "DeadLetters"]

HEADERS = (
    "driftloop_error",
    "driftloop_source_topic",
    "driftloop_source_partition",
    "driftloop_source_offset",
)
_MAX_ERROR_BYTES = 1000


class DeadLetters(Protocol):
    """Where the consumer loop sends bad records (``DeadLetterWriter``, or a test double)."""

    def write(self, record: Record, error: DecodeError | str) -> Any: ...

    def flush(self, timeout_seconds: float | None = 30.0) -> int: ...


class DeadLetterError(RuntimeError):
    """Dead letters the broker did not acknowledge; do not commit past their records."""


@dataclass(slots=True)
class _Sent:
    future: Any
    record: Record
    error: str


def _error_line(error: DecodeError | str) -> str:
    line = f"{error.reason}: {error.message}" if isinstance(error, DecodeError) else str(error)
    line = " ".join(line.split())
    encoded = line.encode("utf-8")
    if len(encoded) > _MAX_ERROR_BYTES:
        line = encoded[: _MAX_ERROR_BYTES - 3].decode("utf-8", "ignore") + "..."
    return line


class DeadLetterWriter:
    """Writes bad records to ``topic`` through a kafka-python ``KafkaProducer``."""

    def __init__(self, producer: Any, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self._outstanding: list[_Sent] = []
        self.written = 0

    @property
    def outstanding(self) -> int:
        """Dead letters sent but not yet confirmed by :meth:`flush`."""
        return len(self._outstanding)

    def write(self, record: Record, error: DecodeError | str) -> Any:
        """Queue ``record`` for the dead-letter topic; returns the producer's future.

        ``error`` is the :class:`DecodeError` (its reason slug leads the header
        line) or a one-line message.
        """
        line = _error_line(error)
        try:
            future = self._send(record, line, record.value)
        except MessageSizeTooLargeError as exc:  # raised before sending when over max_request_size
            future = self._send(record, _dropped(line, record, exc), None)
        self._outstanding.append(_Sent(future, record, line))
        self.written += 1
        return future

    def _send(self, record: Record, line: str, value: bytes | None) -> Any:
        headers = [(k, v) for k, v in (record.headers or ()) if k not in HEADERS]
        headers += [
            ("driftloop_error", line.encode("utf-8")),
            ("driftloop_source_topic", record.topic.encode("utf-8")),
            ("driftloop_source_partition", str(record.partition).encode("ascii")),
            ("driftloop_source_offset", str(record.offset).encode("ascii")),
        ]
        return self.producer.send(self.topic, value=value, key=record.key, headers=headers)

    def flush(self, timeout_seconds: float | None = 30.0) -> int:
        """Wait until every dead letter is acknowledged; returns how many were.

        Raises :class:`DeadLetterError` naming the first failure; the failed
        ones stay outstanding, so a later flush retries them.
        """
        if not self._outstanding:
            return 0
        self._flush_producer(timeout_seconds)
        failed: list[tuple[_Sent, BaseException]] = []
        retried: list[_Sent] = []
        for sent in self._outstanding:
            exc = _failure(sent.future)
            if exc is None:
                continue
            if isinstance(exc, MessageSizeTooLargeError) or "too large" in str(exc).lower():
                line = _dropped(sent.error, sent.record, exc)
                retried.append(_Sent(self._send(sent.record, line, None), sent.record, line))
            else:
                failed.append((sent, exc))
        if retried:
            self._flush_producer(timeout_seconds)
            for sent in retried:
                exc = _failure(sent.future)
                if exc is not None:
                    failed.append((sent, exc))
        confirmed = len(self._outstanding) - len(failed)
        self._outstanding = [sent for sent, _ in failed]
        if failed:
            sent, exc = failed[0]
            raise DeadLetterError(
                f"dead-letter topic {self.topic!r}: {len(failed)} record(s) not acknowledged, "
                f"first from {sent.record.topic}[{sent.record.partition}]@{sent.record.offset}: "
                f"{exc}"
            )
        return confirmed

    def _flush_producer(self, timeout_seconds: float | None) -> None:
        # unfinished futures are reported as failures by flush()
        with contextlib.suppress(KafkaTimeoutError):
            self.producer.flush(timeout=timeout_seconds)


def _failure(future: Any) -> BaseException | None:
    if not future.is_done:
        return KafkaError("no acknowledgement before the flush timeout")
    return future.exception if future.failed() else None


def _dropped(line: str, record: Record, exc: BaseException) -> str:
    size = len(record.value or b"")
    return _error_line(
        f"{line} [value of {size} bytes dropped: too large for the dead-letter "
        f"topic ({type(exc).__name__})]"
    )
