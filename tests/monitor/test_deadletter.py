"""monitor.ingest.deadletter against a fake producer (the real broker: test_kafka_integration)."""

from __future__ import annotations

from typing import Any

import pytest
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaTimeoutError, MessageSizeTooLargeError, NotLeaderForPartitionError
from kafka.future import Future

from monitor.ingest import HEADERS, DeadLetterError, DeadLetterWriter, DecodeError


class FakeProducer:
    """Records sends; each send's outcome is decided by ``outcomes`` (None = acknowledged)."""

    def __init__(self, outcomes: list[BaseException | None] | None = None,
                 max_request_size: int = 10_000) -> None:
        self.outcomes = list(outcomes or [])
        self.max_request_size = max_request_size
        self.sent: list[dict[str, Any]] = []
        self._futures: list[tuple[Future, BaseException | None]] = []

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
             headers: list[tuple[str, bytes]] | None = None) -> Future:
        if value is not None and len(value) > self.max_request_size:
            raise MessageSizeTooLargeError(f"{len(value)} bytes")
        self.sent.append({"topic": topic, "value": value, "key": key, "headers": headers})
        future = Future()
        self._futures.append((future, self.outcomes.pop(0) if self.outcomes else None))
        return future

    def flush(self, timeout: float | None = None) -> None:
        for future, outcome in self._futures:
            if outcome is None:
                future.success("ok")
            elif isinstance(outcome, KafkaTimeoutError):
                continue  # never completes
            else:
                future.failure(outcome)
        self._futures = []


def bad_record(value: bytes | None = b'{"model": ', **kw: Any) -> Any:
    return ConsumerRecord(kw.get("topic", "predictions"), kw.get("partition", 4), 0,
                          kw.get("offset", 1234), 0, 0, kw.get("key", b"req-1"), value,
                          kw.get("headers", []), None, -1, -1, -1)


def test_dead_letter_keeps_key_value_and_headers_and_adds_the_source() -> None:
    producer = FakeProducer()
    writer = DeadLetterWriter(producer, "driftloop-dlq")
    rec = bad_record(headers=[("ce_id", b"abc"), ("driftloop_error", b"old reason")])
    writer.write(rec, DecodeError("malformed_json", "value: not valid JSON"))
    [sent] = producer.sent
    assert sent["topic"] == "driftloop-dlq"
    assert sent["value"] == b'{"model": ' and sent["key"] == b"req-1"
    headers = dict(sent["headers"])
    assert [k for k, _ in sent["headers"]].count("driftloop_error") == 1
    assert headers["ce_id"] == b"abc"
    assert headers["driftloop_error"] == b"malformed_json: value: not valid JSON"
    assert headers["driftloop_source_topic"] == b"predictions"
    assert headers["driftloop_source_partition"] == b"4"
    assert headers["driftloop_source_offset"] == b"1234"
    assert set(HEADERS) <= set(headers)
    assert writer.outstanding == 1
    assert writer.flush() == 1 and writer.outstanding == 0


def test_plain_message_is_flattened_to_one_line() -> None:
    producer = FakeProducer()
    DeadLetterWriter(producer, "dlq").write(bad_record(), "two\nlines " + "y" * 3000)
    line = dict(producer.sent[0]["headers"])["driftloop_error"]
    assert b"\n" not in line and len(line) <= 1000 and line.startswith(b"two lines")


def test_flush_raises_and_keeps_unacknowledged_dead_letters() -> None:
    producer = FakeProducer([None, NotLeaderForPartitionError("gone")])
    writer = DeadLetterWriter(producer, "dlq")
    writer.write(bad_record(offset=1), "a")
    writer.write(bad_record(offset=2), "b")
    with pytest.raises(DeadLetterError, match=r"1 record\(s\).*predictions\[4\]@2"):
        writer.flush()
    assert writer.outstanding == 1


def test_flush_timeout_counts_as_a_failure() -> None:
    writer = DeadLetterWriter(FakeProducer([KafkaTimeoutError("slow")]), "dlq")
    writer.write(bad_record(), "a")
    with pytest.raises(DeadLetterError, match="no acknowledgement"):
        writer.flush(timeout_seconds=0.1)


def test_value_too_large_for_the_producer_is_dropped_and_said_so() -> None:
    producer = FakeProducer(max_request_size=100)
    writer = DeadLetterWriter(producer, "dlq")
    writer.write(bad_record(b"x" * 500), DecodeError("oversized", "value: 500 bytes"))
    [sent] = producer.sent
    assert sent["value"] is None and sent["key"] == b"req-1"
    line = dict(sent["headers"])["driftloop_error"].decode()
    assert line.startswith("oversized: value: 500 bytes") and "500 bytes dropped" in line
    assert writer.flush() == 1


def test_value_the_broker_rejects_as_too_large_is_resent_without_it() -> None:
    producer = FakeProducer([MessageSizeTooLargeError("broker says no")])
    writer = DeadLetterWriter(producer, "dlq")
    writer.write(bad_record(b"y" * 50), "oversized: big")
    assert writer.flush() == 1
    assert [s["value"] for s in producer.sent] == [b"y" * 50, None]
    assert b"dropped" in dict(producer.sent[1]["headers"])["driftloop_error"]
