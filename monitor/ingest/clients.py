"""kafka-python clients with driftloop's defaults, topic set-up, lag and a broker probe.

Precedence of client settings: :data:`CONSUMER_DEFAULTS` /
:data:`PRODUCER_DEFAULTS`, then the user's ``kafka.consumer`` /
``kafka.producer`` dicts, then keyword overrides from the caller.

Measured against Tansu with kafka-python 3.0.12 (see the report of issue 3):

- a consumer-group's first join waits about half of ``session_timeout_ms``
  (23 s with the default 45 s; 3 s with 6 s), whatever ``max_poll_interval_ms``
  is, so the session timeout is set to 6 s, the smallest real Kafka accepts by
  default (``group.min.session.timeout.ms``);
- ``fetch_max_wait_ms=500`` (the default) stalls half a second whenever a
  partition runs dry; 50 ms removes the stalls;
- ``end_offsets()`` reports the start of the last batch, not the end of the
  log, so :func:`consumer_lag` prefers the high-water mark of fetch responses.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from monitor.config import ConfigError, KafkaConfig

__all__ = [
    "CONSUMER_DEFAULTS",
    "PRODUCER_DEFAULTS",
    "Consumer",
    "broker_reachable",
    "consumer_lag",
    "consumer_settings",
    "ensure_topics",
    "make_consumer",
    "make_producer",
    "producer_settings",
]

CONSUMER_DEFAULTS: dict[str, Any] = {
    "client_id": "driftloop",
    # offsets move only when the service has persisted what they cover
    "enable_auto_commit": False,
    "auto_offset_reset": "earliest",
    "fetch_max_wait_ms": 50,
    "max_partition_fetch_bytes": 4 * 1024 * 1024,
    "fetch_max_bytes": 64 * 1024 * 1024,
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 1000,
    # the loop polls at least every commit interval; a slow evaluation or store
    # hiccup must not cost the partitions, so this stays well above that
    "max_poll_interval_ms": 60_000,
}

PRODUCER_DEFAULTS: dict[str, Any] = {
    "client_id": "driftloop",
    # dead letters must be durable before the bad record's offset is committed
    "acks": "all",
    "linger_ms": 10,
    "batch_size": 256 * 1024,
    # a dead letter carries the bad record unchanged, oversized ones included
    "max_request_size": 16 * 1024 * 1024,
}


class Consumer(Protocol):
    """What the consumer loop uses of kafka-python's ``KafkaConsumer`` (not thread-safe:
    call it from the thread that polls, except where a method says otherwise)."""

    config: dict[str, Any]

    def subscribe(self, topics: Sequence[str], listener: Any = None) -> None: ...

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[Any, list[Any]]:
        ...

    def assignment(self) -> set[TopicPartition]: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...

    def seek_to_beginning(self, *partitions: TopicPartition) -> None: ...

    def commit(self, offsets: Any = None) -> None: ...

    def commit_async(self, offsets: Any = None, callback: Any = None) -> Any: ...

    def highwater(self, partition: TopicPartition) -> int | None: ...

    def pause(self, *partitions: TopicPartition) -> None: ...

    def resume(self, *partitions: TopicPartition) -> None: ...

    def paused(self) -> set[TopicPartition]: ...

    def close(self, autocommit: bool = True) -> None: ...


def _settings(
    kind: str,
    known: Iterable[str],
    defaults: dict[str, Any],
    user: dict[str, Any],
    overrides: dict[str, Any],
) -> dict[str, Any]:
    unknown = sorted(set(user) - set(known))
    if unknown:
        raise ConfigError(
            f"config kafka.{kind}.{unknown[0]}: unknown kafka-python setting; see "
            f"the Kafka{kind.capitalize()} documentation for the accepted names"
        )
    return {**defaults, **user, **overrides}


def consumer_settings(kafka_config: KafkaConfig, **overrides: Any) -> dict[str, Any]:
    """The keyword arguments :func:`make_consumer` passes to ``KafkaConsumer``."""
    base = {
        **CONSUMER_DEFAULTS,
        "bootstrap_servers": list(kafka_config.bootstrap_servers),
        "group_id": kafka_config.group_id,
        "max_poll_records": kafka_config.poll_max_records,
    }
    return _settings(
        "consumer", KafkaConsumer.DEFAULT_CONFIG, base, kafka_config.consumer, overrides
    )


def producer_settings(kafka_config: KafkaConfig, **overrides: Any) -> dict[str, Any]:
    """The keyword arguments :func:`make_producer` passes to ``KafkaProducer``."""
    base = {**PRODUCER_DEFAULTS, "bootstrap_servers": list(kafka_config.bootstrap_servers)}
    return _settings(
        "producer", KafkaProducer.DEFAULT_CONFIG, base, kafka_config.producer, overrides
    )


def make_consumer(kafka_config: KafkaConfig, **overrides: Any) -> KafkaConsumer:
    """An unsubscribed consumer; call ``subscribe(topics, listener=...)`` or ``assign()``.

    ``group_id=None`` in ``overrides`` gives a group-less consumer for manual
    assignment (no join delay; used by tests and benchmarks).
    """
    return KafkaConsumer(**consumer_settings(kafka_config, **overrides))


def make_producer(kafka_config: KafkaConfig, **overrides: Any) -> KafkaProducer:
    """A producer for dead letters (``acks=all``); ``acks=1`` suits bulk test data."""
    return KafkaProducer(**producer_settings(kafka_config, **overrides))


def ensure_topics(
    bootstrap_servers: str | Sequence[str],
    topics: Iterable[str],
    partitions: int = 1,
    *,
    timeout: float = 10.0,
    **client_config: Any,
) -> list[str]:
    """Create the topics that do not exist yet; returns the ones created.

    Tansu (like Kafka with ``auto.create.topics.enable``) also creates a topic
    on first use, but with its own partition count; creating it first pins the
    count. Existing topics are left as they are.
    """
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, **client_config)
    try:
        wanted = {name: {"num_partitions": partitions, "replication_factor": -1} for name in topics}
        if not wanted:
            return []
        response = admin.create_topics(wanted, timeout_ms=int(timeout * 1000), raise_errors=False)
        created, failures = [], []
        for topic in response["topics"]:
            code = topic["error_code"]
            if code == 0:
                created.append(topic["name"])
            elif code != 36:  # TOPIC_ALREADY_EXISTS
                failures.append(f"{topic['name']} (error {code}: {topic.get('error_message')})")
        if failures:
            raise RuntimeError(f"could not create Kafka topics: {', '.join(failures)}")
        if created:
            admin.wait_for_topics(created, timeout_ms=int(timeout * 1000))
        return created
    finally:
        admin.close()


def consumer_lag(consumer: KafkaConsumer) -> dict[tuple[str, int], int]:
    """Records behind the log end per assigned (topic, partition), never negative.

    Position-based (what the consumer has fetched, not what is committed).
    The end is the high-water mark of the last fetch response; partitions not
    fetched yet fall back to ``end_offsets()``, which reads low against Tansu.
    Call it from the thread that polls: kafka-python consumers are not
    thread-safe.
    """
    assigned = list(consumer.assignment())
    ends: dict[TopicPartition, int | None] = {tp: consumer.highwater(tp) for tp in assigned}
    unknown = [tp for tp, end in ends.items() if end is None]
    if unknown:
        ends.update(consumer.end_offsets(unknown, timeout_ms=2000))
    lag: dict[tuple[str, int], int] = {}
    for tp in assigned:
        end = ends.get(tp)
        position = consumer.position(tp, timeout_ms=2000)
        if end is None or position is None:
            continue
        lag[(tp.topic, tp.partition)] = max(0, end - position)
    return lag


# ApiVersions v0: the first request every Kafka client sends, allowed before SASL
_API_VERSIONS = 18
_CLIENT_ID = b"driftloop-probe"


def _api_versions_ok(host: str, port: int, timeout: float) -> bool:
    correlation_id = 0x0D1F
    request = struct.pack(">hhih", _API_VERSIONS, 0, correlation_id, len(_CLIENT_ID)) + _CLIENT_ID
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(request)) + request)
        head = b""
        while len(head) < 10:
            chunk = sock.recv(10 - len(head))
            if not chunk:
                return False
            head += chunk
    _size, seen_id, error_code = struct.unpack(">iih", head)
    return seen_id == correlation_id and error_code == 0


def _split(server: str) -> tuple[str, int]:
    host, _, port = server.rpartition(":")
    return (host.strip("[]") or "localhost", int(port)) if port.isdigit() else (server, 9092)


def broker_reachable(target: KafkaConsumer | str | Sequence[str], timeout: float = 1.0) -> bool:
    """Whether any bootstrap server answers, within ``timeout`` seconds each (for ``/readyz``).

    ``target`` is a consumer (its bootstrap servers and security protocol are
    used; the consumer itself is not touched, so this is safe from another
    thread) or bootstrap servers. Plaintext and SASL plaintext listeners get a
    Kafka ApiVersions request; TLS listeners only a TCP connect.
    """
    protocol = "PLAINTEXT"
    if isinstance(target, KafkaConsumer):
        protocol = str(target.config.get("security_protocol", "PLAINTEXT"))
        servers: Any = target.config["bootstrap_servers"]
    else:
        servers = target
    if isinstance(servers, str):
        servers = servers.split(",")
    for server in servers:
        host, port = _split(server.strip())
        try:
            if protocol in ("PLAINTEXT", "SASL_PLAINTEXT"):
                if _api_versions_ok(host, port, timeout):
                    return True
            else:
                socket.create_connection((host, port), timeout=timeout).close()
                return True
        except (OSError, struct.error):
            continue
    return False
