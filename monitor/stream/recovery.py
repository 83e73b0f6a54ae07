"""Start-up, rebalances and recovery of the consumer loop: checkpoints back into memory.

A partition's open windows, its "processed" mark and its commit offset live in
the state store (``monitor.stream.service``); these methods load them when partitions
are assigned, persist and forget them when partitions are revoked, and reload
everything after a failed step, as a restart would.

A re-created topic (deleted and created again; a broker without durable storage,
such as Tansu's memory engine, restarts with empty topics) starts again at offset
0 under a new topic id. The stored offsets count records of the old log, so a
partition whose stored topic id differs from the broker's is read from its start
(and its open windows carry on). Without the id check the seek would land past
records of the new log, or out of range, where kafka-python's
``auto_offset_reset`` rewinds to 0 and the records below the old position would be
skipped as already handled: lost either way. Brokers that send no topic ids
(before metadata v10) keep the old behaviour.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from monitor.config import Config
from monitor.ingest import Decoder
from monitor.metrics import Metrics
from monitor.store import PendingLabel, PendingPrediction, Store
from monitor.stream.pipeline import ModelPipeline, WindowOutput

__all__ = ["ALL_MODELS", "ALL_VERSIONS", "PERFORMANCE_KIND", "Recovery", "topic_id"]

log = logging.getLogger("driftloop.service")

PERFORMANCE_KIND = "performance"
ALL_VERSIONS = "*"
ALL_MODELS = "*"  # checkpoint rows of a partition rather than of a model


def topic_id(consumer: Any, topic: str) -> str | None:
    """The broker's id of ``topic`` (KIP-516) from the consumer's metadata, or None.

    kafka-python keeps topic ids in its cluster metadata without a public accessor;
    brokers before metadata v10 send none (or the zero id).
    """
    try:
        found = consumer._client.cluster.topic_id(topic)
    except AttributeError:
        return None
    return str(found) if found is not None and getattr(found, "int", 1) != 0 else None


class Recovery:
    """Mixed into ``monitor.service.Service``, whose state it restores."""

    config: Config
    pipelines: Mapping[str, ModelPipeline]
    store: Store
    metrics: Metrics
    decoder: Decoder
    consumer: Any
    lock: threading.RLock
    group: str
    processed: dict[tuple[str, int], int]
    _dirty_positions: bool
    _pending_predictions: list[PendingPrediction]
    _pending_labels: list[PendingLabel]
    _outputs: list[WindowOutput]
    _restored_partitions: set[tuple[str, int]]
    _topic_ids: dict[tuple[str, int], str | None]

    def persist(self, force: bool = False, *, commit_kafka: bool = True) -> list[WindowOutput]:
        raise NotImplementedError

    def restore(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """Load the checkpoints of newly assigned partitions; returns offsets to seek to."""
        with self.lock:
            return self._restore(partitions)

    def _restore(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        wanted = set(partitions) - self._restored_partitions
        if not wanted:
            return {}
        stored = self.store.offsets(self.group)
        predictions_topic = self.config.kafka.predictions_topic
        wanted_prediction_partitions = {p for t, p in wanted if t == predictions_topic}
        first_restore = not self._restored_partitions
        recreated: set[tuple[str, int]] = set()
        for checkpoint in self.store.load_checkpoints():
            if not isinstance(checkpoint.state, dict):
                continue
            if checkpoint.model == ALL_MODELS:
                tp = (checkpoint.version, int(checkpoint.kind.removeprefix("processed:p")))
                if tp in wanted:
                    stored_id = checkpoint.state.get("topic_id")
                    current_id = topic_id(self.consumer, tp[0])
                    if stored_id and current_id and stored_id != current_id:
                        recreated.add(tp)
                    else:
                        self.processed[tp] = int(checkpoint.state["processed"])
                continue
            pipeline = self.pipelines.get(checkpoint.model)
            if pipeline is None:
                continue
            if checkpoint.kind == PERFORMANCE_KIND:
                if first_restore:
                    pipeline.restore_performance(checkpoint.state)
                continue
            partition = int(checkpoint.kind.lstrip("p"))
            if partition in wanted_prediction_partitions:
                pipeline.stream(checkpoint.version, partition).restore(checkpoint.state)
        self._restored_partitions |= wanted
        seeks = {tp: offset for tp, offset in stored.items() if tp in wanted}
        for tp in recreated:
            # the topic was deleted and created again (a broker without durable storage
            # restarted, or an operator re-created it): the stored offsets count records
            # of the old log, so the new log is read from its start. Without this, the
            # seek lands past records of the new log (lost), or out of range, where
            # auto_offset_reset rewinds to 0 and the records below the old position
            # would be skipped as "already handled" (lost too). Open windows carry on.
            log.warning("topic %s partition %d was re-created (topic id changed): reading "
                        "it from the start instead of the stored offset %s", tp[0], tp[1],
                        seeks.get(tp))
            seeks[tp] = 0
            self.processed[tp] = 0
        for tp, offset in seeks.items():
            self.processed.setdefault(tp, offset)
        for tp in wanted:
            self._topic_ids[tp] = topic_id(self.consumer, tp[0])
        return seeks

    def revoke(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Persist everything before partitions leave; forget their streams."""
        with self.lock:
            self._revoke(partitions)

    def _revoke(self, partitions: Iterable[tuple[str, int]]) -> None:
        self.persist(force=True, commit_kafka=False)
        gone = set(partitions)
        topic = self.config.kafka.predictions_topic
        for pipeline in self.pipelines.values():
            for key in [k for k in pipeline.streams if (topic, k[1]) in gone]:
                del pipeline.streams[key]
        for tp in gone:
            self.processed.pop(tp, None)
            self._topic_ids.pop(tp, None)
        self.decoder.joiner.drop_partitions(gone)
        self._restored_partitions -= gone
        self.metrics.forget_partitions(gone)

    def rewind(self, assigned: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        with self.lock:
            return self._rewind(assigned)

    def _rewind(self, assigned: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """Forget everything not persisted and reload from the store, as a restart would.

        Used after a failed step (store or broker trouble half-way): the stored state
        and offsets are consistent, memory may not be. Returns offsets to seek to.
        """
        for pipeline in self.pipelines.values():
            pipeline.streams.clear()
            pipeline.restore_performance({})
        assigned = set(assigned)
        self.decoder.joiner.drop_partitions(assigned | set(self.processed))
        self.processed.clear()
        self._pending_predictions, self._pending_labels, self._outputs = [], [], []
        self._dirty_positions = False
        self._restored_partitions = set()
        return self.restore(assigned)
