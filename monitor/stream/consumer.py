"""The consumer thread: connect, subscribe, step until told to stop, recover on the way.

:class:`ConsumerLoop` owns the Kafka clients and drives :meth:`Service.step`:

1. connect (a broker that is down at start makes the service not ready, not a crash);
2. subscribe with a rebalance listener that only queues what happened; before each
   poll the queued revocations, losses and assignments are applied (restore and
   seek, persist and forget, forget without writing);
3. between batches, apply baseline changes queued by the registry watch (a window
   boundary for every stream);
4. step; a failed step (store or broker trouble half-way) rewinds to the stored
   state and retries after a pause; a failure that may lie in the data starts a
   poison hunt (:mod:`monitor.stream.poison`);
5. replace a consumer whose group join never completes (seen after a broker restart);
6. after a persist, commit its offsets to Kafka for lag tools (the store's are the
   truth); on stop, persist and commit everything (the SIGTERM path).

Broker reachability for ``/readyz`` is probed by a scheduled job
(:mod:`monitor.runtime.jobs`), which sets ``broker_ok``.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Mapping
from typing import Any

from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import MemberState, OffsetAndMetadata

from monitor.baseline import RegistryWatch
from monitor.config import Config
from monitor.ingest import (
    Consumer,
    DeadLetterWriter,
    ensure_topics,
    make_consumer,
    make_producer,
)
from monitor.stream.poison import PoisonHunt, transient
from monitor.stream.service import Service

__all__ = ["CONNECT_TIMEOUT_MS", "STUCK_JOIN_SECONDS", "ConsumerLoop"]

log = logging.getLogger("driftloop")

# how long one attempt to reach the bootstrap servers waits before the loop retries
CONNECT_TIMEOUT_MS = 5000
# a consumer with no partitions this long while the broker answers is replaced
STUCK_JOIN_SECONDS = 30.0


def _log_commit_failure(_offsets: Any, response: Any) -> None:
    if isinstance(response, Exception):
        log.warning("kafka offset commit failed (the state store has them): %s", response)


class _Rebalance(ConsumerRebalanceListener):
    """kafka-python calls these on its IO thread, the one that also sends heartbeats:
    they only record what happened, and the consumer thread acts on it before its next
    poll (a store transaction or a dead-letter flush here could cost the membership)."""

    def __init__(self, events: queue.SimpleQueue[tuple[str, set[tuple[str, int]]]]) -> None:
        self.events = events

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.events.put(("revoke", {(tp.topic, tp.partition) for tp in revoked}))

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.events.put(("assign", {(tp.topic, tp.partition) for tp in assigned}))

    def on_partitions_lost(self, lost: Any) -> None:
        self.events.put(("lose", {(tp.topic, tp.partition) for tp in lost}))


class ConsumerLoop:
    """Runs on the thread that calls :meth:`run`; ``stopping`` ends it cleanly."""

    def __init__(self, config: Config, service: Service, stopping: threading.Event,
                 watch: RegistryWatch | None = None) -> None:
        self.config = config
        self.service = service
        self.stopping = stopping
        self.watch = watch
        self.consumer: Consumer | None = None
        self.producer: Any = None
        self.broker_ok = False  # ready only once the Kafka clients are connected
        self.last_error: str | None = "not connected to the broker yet"
        self.rebalances: queue.SimpleQueue[tuple[str, set[tuple[str, int]]]] = \
            queue.SimpleQueue()
        self.hunt = PoisonHunt(config.kafka.max_persist_attempts)
        self._orphans: set[tuple[str, int]] = set()
        self._held: set[tuple[str, int]] = set()  # what a rewind restores

    def connect(self) -> bool:
        """Create the Kafka clients; False, and not ready, while no broker answers."""
        kafka = self.config.kafka
        try:
            if self.producer is None:
                self.producer = make_producer(kafka, bootstrap_timeout_ms=CONNECT_TIMEOUT_MS)
            if self.consumer is None:
                self.consumer = make_consumer(kafka, bootstrap_timeout_ms=CONNECT_TIMEOUT_MS)
            if self.service.scaleout is not None:
                # not log-compacted: the key is the model, and compaction would keep only a
                # model's last partial, dropping the others before the owner merged them
                ensure_topics(kafka.bootstrap_servers, [kafka.partials_topic_name],
                              partitions=kafka.partials_partitions)
                self.service.scaleout.connected(self.consumer, self.producer)
            if self.service.split is not None:
                # keyed by CloudEvents id: compaction would keep one half of each call
                ensure_topics(kafka.bootstrap_servers, [kafka.kserve_topic_name],
                              partitions=kafka.kserve_partitions)
                self.service.split.producer = self.producer
        except KafkaError as exc:
            self.broker_ok = False
            self.last_error = (f"no broker answers at {', '.join(kafka.bootstrap_servers)} "
                               f"({type(exc).__name__})")
            log.warning("%s; retrying", self.last_error)
            return False
        self.service.consumer = self.consumer
        self.service.dead_letters = DeadLetterWriter(self.producer, kafka.dead_letter_topic)
        self.broker_ok, self.last_error = True, None
        return True

    def run(self) -> None:
        while not self.stopping.is_set() and not self.connect():
            self.stopping.wait(2.0)
        if self.stopping.is_set():
            return
        self._subscribe()
        needs_rewind = False
        unassigned_since: float | None = None
        last_check = 0.0
        while not self.stopping.is_set():
            if needs_rewind:
                needs_rewind = not self._rewind()
                if needs_rewind:
                    self.stopping.wait(1.0)
                    continue
            if self.watch is not None:
                for change in self.watch.take():
                    self.service.swap_baseline(change.model, change.key, change.baseline)
            try:
                self._apply_rebalances()
                stats = self.service.step(**self.hunt.step_options())  # type: ignore[arg-type]
            except Exception as exc:  # stay up: report, back off, reload the stored state
                log.warning("consumer step failed (%s: %s); reloading the stored state and "
                            "retrying", type(exc).__name__, exc)
                self.hunt.failed(exc, self.service)
                self.stopping.wait(1.0 if transient(exc) else 0.1)
                if not needs_rewind:
                    self._held = set(self.service.partitions.owned)
                needs_rewind = True
                continue
            self.hunt.succeeded(self.service)
            if stats.persisted is not None:
                self._commit(stats.persisted.positions, wait=False)
            now = time.monotonic()
            if now - last_check >= 5.0:
                last_check = now
                unassigned_since = self._check_join(now, unassigned_since)
                self._adopt_orphans()
        if not needs_rewind:
            persisted = self.service.persist(force=True)
            if persisted is not None:
                self._commit(persisted.positions, wait=True)

    def _stable(self) -> bool:
        """Whether the consumer is a settled member of its group (joined, heartbeating)."""
        assert self.consumer is not None
        try:
            state = self.consumer.group_metadata().state  # type: ignore[attr-defined]
        except AttributeError:  # a client without group metadata: trust the assignment
            return True
        return bool(state == MemberState.STABLE)

    def _adopt_orphans(self) -> None:
        """Partitions Kafka assigns to this member that it does not hold (dropped when
        another member's claim fenced a write) are taken again once they stay orphaned
        for two checks: by then any revocation would have arrived."""
        assert self.consumer is not None
        if not self._stable():
            return  # mid-rebalance, assignment() may still list what is being taken away
        assigned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
        orphans = assigned - self.service.partitions.owned
        again = orphans & self._orphans
        self._orphans = orphans - again
        if again and self.rebalances.empty():
            log.warning("taking back assigned partitions this member had dropped: %s",
                        ", ".join(f"{t}[{p}]" for t, p in sorted(again)))
            for (topic, partition), offset in self.service.restore(again).items():
                self.consumer.seek(TopicPartition(topic, partition), offset)

    def _apply_rebalances(self) -> None:
        """What the rebalance listener recorded, in order, before the next poll."""
        consumer = self.consumer
        assert consumer is not None
        while True:
            try:
                kind, partitions = self.rebalances.get_nowait()
            except queue.Empty:
                return
            log.info("partitions %s: %s", {"revoke": "revoked", "lose": "lost",
                                           "assign": "assigned"}[kind],
                     ", ".join(f"{t}[{p}]" for t, p in sorted(partitions)) or "none")
            if kind == "revoke":
                self.service.revoke(partitions)
            elif kind == "lose":
                self.service.lose(partitions)
            else:
                assigned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
                seeks = self.service.restore(partitions & assigned)
                for (topic, partition), offset in seeks.items():
                    consumer.seek(TopicPartition(topic, partition), offset)

    def _commit(self, positions: Mapping[tuple[str, int], int], *, wait: bool) -> None:
        """Kafka's copy of the stored offsets, for lag tools (the store's are the truth).

        Asynchronous while running (a round trip per window cost ~5% of the consume
        rate); blocking on shutdown, so a clean stop leaves Kafka's copy equal to the
        store's.
        """
        if not positions or self.consumer is None:
            return
        offsets = {TopicPartition(t, p): OffsetAndMetadata(o, "", -1)
                   for (t, p), o in positions.items()}
        try:
            if wait:
                self.consumer.commit(offsets)
            else:
                self.consumer.commit_async(offsets, callback=_log_commit_failure)
        except Exception as exc:
            log.warning("kafka offset commit failed (the state store has them): %s", exc)

    def _check_join(self, now: float, unassigned_since: float | None) -> float | None:
        """A group join that never completes (seen after a broker restart) leaves the
        consumer unsettled or without partitions for good: start a new one. Returns when the
        consumer was first seen so."""
        assert self.consumer is not None
        if (self._stable() and self.consumer.assignment()) or not self.broker_ok:
            return None
        if unassigned_since is None:
            return now
        if now - unassigned_since > STUCK_JOIN_SECONDS:
            log.warning("not a settled group member with partitions for %.0f s although "
                        "the broker answers: starting a new consumer", now - unassigned_since)
            self._recreate_consumer()
            return None
        return unassigned_since

    def _subscribe(self) -> None:
        assert self.consumer is not None
        kafka = self.config.kafka
        topics = [kafka.predictions_topic, kafka.labels_topic]
        if self.service.scaleout is not None:
            # one group, one assignment: Kafka picks each model's owner with the rest
            topics.append(self.service.scaleout.topic)
        if self.service.split is not None:  # the forwarded KServe halves, paired where read
            topics.append(self.service.split.topic)
        self.consumer.subscribe(topics, listener=_Rebalance(self.rebalances))

    def _recreate_consumer(self) -> None:
        old, self.consumer = self.consumer, None
        with contextlib.suppress(Exception):
            if old is not None:
                old.close(autocommit=False)
        while not self.stopping.is_set() and not self.connect():
            self.stopping.wait(2.0)
        if self.consumer is not None:
            self._subscribe()

    def _rewind(self) -> bool:
        """Reload the stored state and seek to its offsets; False if that failed too."""
        assert self.consumer is not None
        try:
            # only partitions this member held: one dropped because another member's
            # claim fenced a write is not taken back here (see _adopt_orphans)
            assigned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
            assigned &= self._held
            seeks = self.service.rewind(assigned)
            for tp in assigned:
                if tp in seeks:
                    self.consumer.seek(TopicPartition(*tp), seeks[tp])
                else:
                    self.consumer.seek_to_beginning(TopicPartition(*tp))
        except Exception as exc:
            log.warning("could not reload the stored state yet (%s: %s)", type(exc).__name__, exc)
            return False
        return True

    def close(self) -> None:
        for client in (self.consumer, self.producer):
            if client is None:
                continue
            try:
                client.close()
            except Exception as exc:
                log.warning("while closing the Kafka clients: %s", exc)
