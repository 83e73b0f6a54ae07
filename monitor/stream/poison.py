"""Finding the one record whose results cannot be stored, and moving past it.

A step that fails is retried after reloading the stored state. When the failure
is transient (the broker or the state store is away, another member took a
partition over), the same batch is simply retried until it goes through. When it
may lie in the data (the store refused a value, evaluation raised), retrying the
same batch would fail for ever, so the loop hunts for the record:

1. the partitions and offsets of the failed poll are remembered;
2. the loop then polls ONE record at a time and persists after each, so a failure
   names its record;
3. a record that fails ``kafka.max_persist_attempts`` times, each time after a
   reload, is quarantined: it is dead-lettered with reason ``poison`` (counted in
   ``driftloop_events_invalid_total{reason="poison"}``) and the offsets move past it;
4. once every partition of the failed poll is past its end, batches resume.

The codec rejects everything known to hurt the store first; this is the net under it.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING

from kafka.errors import KafkaError
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from monitor.ingest import DeadLetterError
from monitor.store import StaleOwnership

if TYPE_CHECKING:  # annotations only
    from monitor.stream.service import Service

__all__ = ["PoisonHunt", "transient"]

log = logging.getLogger("driftloop.service")

_TRANSIENT = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout, KafkaError,
              DeadLetterError, StaleOwnership, OSError, TimeoutError)


def transient(exc: BaseException) -> bool:
    """True for failures of the surroundings (retry as is), False for ones that may lie
    in the data (hunt for the record)."""
    return isinstance(exc, _TRANSIENT) or bool(getattr(exc, "connection_invalidated", False))


class PoisonHunt:
    def __init__(self, max_attempts: int) -> None:
        self.max_attempts = max_attempts
        self.until: dict[tuple[str, int], int] = {}  # partition -> offset past the failed poll
        self.attempts: Counter[tuple[str, int, int]] = Counter()

    @property
    def active(self) -> bool:
        return bool(self.until)

    def step_options(self) -> dict[str, object]:
        """How the next step runs: one record, persisted at once, while hunting."""
        return {"max_records": 1, "force_persist": True} if self.active else {}

    def failed(self, exc: BaseException, service: Service) -> None:
        """A step raised ``exc``; its poll is ``service.last_polled``."""
        if transient(exc):
            return
        polled = service.last_polled
        if not self.active:
            self.until = {tp: last + 1 for tp, (_, last) in polled.items()}
            if self.until:
                log.warning("a step failed (%s: %s); retrying its records one at a time to "
                            "find the one that cannot be stored", type(exc).__name__, exc)
            return
        if len(polled) != 1:
            return  # nothing was polled: the failure is not a record's
        (topic, partition), (offset, _) = next(iter(polled.items()))
        key = (topic, partition, offset)
        self.attempts[key] += 1
        if self.attempts[key] >= self.max_attempts:
            log.error("%s[%d]@%d: its results failed to store %d times (%s: %s); "
                      "dead-lettering it as poison and moving past it", topic, partition,
                      offset, self.attempts[key], type(exc).__name__, exc)
            service.reader.quarantined.add(key)
            del self.attempts[key]

    def succeeded(self, service: Service) -> None:
        if not self.active:
            return
        done = all(service.partitions.handled(tp) >= end or not service.partitions.owns(tp)
                   for tp, end in self.until.items())
        if done:
            log.info("past the records of the failed step: reading batches again")
            self.until.clear()
            self.attempts.clear()
