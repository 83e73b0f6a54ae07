"""Pairs KServe request and response halves into predictions (design 3.3).

The halves share the CloudEvents ``id`` and may arrive on different
partitions, in either order; each is validated on arrival by
:mod:`monitor.ingest.codecs.kserve` and parked here until its partner comes.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from monitor.ingest.codecs.fields import MAX_ID_CHARS, DecodeError, Models, Record, id_text
from monitor.ingest.codecs.kserve import CloudEvent, request_rows, response_rows
from monitor.ingest.events import Prediction

__all__ = ["MAX_CE_ID_CHARS", "Evicted", "KServeJoiner"]

log = logging.getLogger("driftloop.ingest")

MAX_CE_ID_CHARS = MAX_ID_CHARS - 8  # room for ":<index>"


@dataclass(frozen=True, slots=True)
class Evicted:
    """A parked half the service should dead-letter (or count) with ``reason``."""

    record: Record
    reason: str
    message: str


@dataclass(slots=True)
class _Half:
    event: CloudEvent
    model: str
    rows: list[Any]
    record: Record
    replayed: bool = False  # handled before a restart (below its partition's mark)


class KServeJoiner:
    """Pairs request and response halves on the CloudEvents id.

    Bounded: at most ``capacity`` halves wait, each at most ``ttl_seconds`` of
    record time (Kafka timestamps, so a replay evicts the same halves). Evicted
    halves collect in :meth:`take_evicted` for the dead-letter topic.

    Delivery: a parked half lives only in memory, so the service must not
    commit an offset past :meth:`pending_offsets` for that partition, and
    must call :meth:`drop_partitions` when partitions are revoked.
    """

    def __init__(self, capacity: int = 100_000, ttl_seconds: float = 300.0) -> None:
        self.capacity = capacity
        self.ttl_ms = int(ttl_seconds * 1000)
        self._pending: OrderedDict[str, _Half] = OrderedDict()
        self._evicted: list[Evicted] = []
        self._clock_ms = 0
        self._named_by_endpoint: set[tuple[str, str]] = set()
        self._expected: dict[tuple[str, int], set[str]] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def expect(self, pending: Mapping[tuple[str, int], Iterable[str]]) -> None:
        """The CloudEvents ids that waited for their partner at the last persist, per
        partition (restored at assignment). A replayed half (below the partition's
        processed mark) is parked only if its id is among them: any other replayed half
        was joined before, and parking it again would wait for a partner that never
        comes, holding the partition's commit offset back for the whole TTL."""
        for tp, ids in pending.items():
            self._expected[tp] = set(ids)

    def pending_ids(self) -> dict[tuple[str, int], list[str]]:
        """The ids of parked halves per partition, to persist with the partition's mark."""
        found: dict[tuple[str, int], list[str]] = {}
        for ce_id, half in self._pending.items():
            found.setdefault((half.record.topic, half.record.partition), []).append(ce_id)
        return found

    def add(self, event: CloudEvent, record: Record, decoder: Models,
            replayed: bool = False) -> list[Prediction]:
        kind = "request" if event.is_request else "response"
        if event.model is None:
            raise DecodeError(
                "missing_field",
                f"KServe {kind} {event.id}: no model name (ce_inferenceservicename or model_name)",
            )
        model = decoder.check_model(event.model, f"KServe {kind}")
        if len(event.id) > MAX_CE_ID_CHARS or not event.id.isprintable():
            # request ids are "<ce_id>:<index>", stored in String(200) columns
            id_text(event.id + ":0", f"KServe {kind} id")
        rows: list[Any] = (
            request_rows(event, model, decoder) if event.is_request
            else response_rows(event, decoder)
        )
        self._clock_ms = max(self._clock_ms, record.timestamp)
        half = _Half(event, model, rows, record, replayed)
        partner = self._pending.get(event.id)
        if replayed and partner is None and \
                event.id not in self._expected.get((record.topic, record.partition), ()):
            return []  # joined before the restart: nothing to wait for
        if partner is None or partner.event.is_request == event.is_request:
            if partner is None:  # a duplicate half (a replay) keeps the earlier record
                self._pending[event.id] = half
            self._evict()
            return []
        del self._pending[event.id]
        if replayed and partner.replayed:
            return []  # both halves were handled before the restart: emitted then
        request, response = (half, partner) if event.is_request else (partner, half)
        return self._join(request, response, record, decoder)

    def _join(
        self, request: _Half, response: _Half, record: Record, decoder: Models
    ) -> list[Prediction]:
        ce_id = request.event.id
        if len(request.rows) != len(response.rows):
            message = (
                f"KServe {ce_id}: request has {len(request.rows)} rows, "
                f"response {len(response.rows)}"
            )
            other = request if record is response.record else response
            self._evicted.append(Evicted(other.record, "shape_mismatch", message))
            raise DecodeError("shape_mismatch", message)
        model = request.model
        endpoint = request.event.endpoint or response.event.endpoint or "default"
        version: Any = decoder.endpoint_version(model, endpoint)
        if version is None:
            body_version = response.event.body.get("model_version")
            version = body_version if body_version not in (None, "") else None
        if version is None:
            # zero configuration: the endpoint is the version (kafka.endpoint_versions maps it)
            version = endpoint
            if (model, endpoint) not in self._named_by_endpoint:
                self._named_by_endpoint.add((model, endpoint))
                log.info("KServe %s: endpoint %r carries no version; monitoring it as version "
                         "%r (map it in kafka.endpoint_versions)", model, endpoint, endpoint)
        try:
            version = decoder.version(version, f"KServe {ce_id} version")
            started, finished = request.event.time_ms, response.event.time_ms
            timestamp_ms = decoder.event_time(
                started if started is not None
                else (finished if finished is not None else request.record.timestamp),
                record, f"KServe {ce_id} time")
        except DecodeError as error:
            other = request if record is response.record else response
            self._evicted.append(Evicted(other.record, error.reason, error.message))
            raise
        latency = (
            float(finished - started) if started is not None and finished is not None else None
        )
        return [
            Prediction(
                model,
                version,
                f"{ce_id}:{i}",
                timestamp_ms,
                features,
                predicted,
                score,
                scores,
                latency,
                record.topic,
                record.partition,
                record.offset,
            )
            for i, (features, (predicted, score, scores)) in enumerate(
                zip(request.rows, response.rows, strict=True)
            )
        ]

    def _evict(self) -> None:
        horizon = self._clock_ms - self.ttl_ms
        pending = self._pending
        while pending:
            ce_id, oldest = next(iter(pending.items()))
            over = len(pending) > self.capacity
            if not over and oldest.record.timestamp >= horizon:
                break
            del pending[ce_id]
            kind = "request" if oldest.event.is_request else "response"
            why = (
                f"over the capacity of {self.capacity}"
                if over
                else (f"older than {self.ttl_ms / 1000:g}s")
            )
            self._evicted.append(
                Evicted(oldest.record, "unpaired", f"KServe {kind} {ce_id}: no partner, {why}")
            )

    def take_evicted(self) -> list[Evicted]:
        """Halves dropped since the last call (unpaired, or the partner of a bad half)."""
        evicted, self._evicted = self._evicted, []
        return evicted

    def pending_offsets(self) -> dict[tuple[str, int], int]:
        """The smallest parked offset per (topic, partition): commit no further than that."""
        lowest: dict[tuple[str, int], int] = {}
        for half in self._pending.values():
            key = (half.record.topic, half.record.partition)
            if key not in lowest or half.record.offset < lowest[key]:
                lowest[key] = half.record.offset
        return lowest

    def drop_partitions(self, partitions: Iterable[tuple[str, int]]) -> int:
        """Forget halves from revoked partitions (their new owner re-reads them)."""
        gone = set(partitions)
        stale = [
            k for k, h in self._pending.items() if (h.record.topic, h.record.partition) in gone
        ]
        for key in stale:
            del self._pending[key]
        for tp in gone:
            self._expected.pop(tp, None)
        return len(stale)
