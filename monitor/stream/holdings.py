"""What this member holds of its partitions: taken and restored, forgotten, cleared.

Every part of the service that keeps state per partition is reached from here, so
a rebalance or a failed step treats them alike: the pipelines' streams and
performance windows, the report rows, the partition bookkeeping
(:mod:`monitor.stream.partitions`), the held label records, the KServe joiner, the
metrics' partition series, the scale-out owner and the KServe-split copy filters.
The :class:`monitor.stream.service.Service` calls it under its lock, on the consumer
thread (:mod:`monitor.stream.consumer` queues kafka-python's rebalance callbacks).

Ownership: :meth:`Holdings.take` takes newly assigned partitions in the store (their
fencing epoch goes up) *before* reading their checkpoints, and every persist checks
the epochs, so a member that lost a partition never overwrites the new owner's state.

Invariant: every stream checkpoint says the partition offset it covers (the events
folded into it are exactly those below), and the processed mark stored with the
offsets says from where a restart must read again (``replay_from``: the lowest
offset a stream not written since it changed covers) and which streams have no
checkpoint yet (``fresh``). A restart (even ``kill -9``) restores the checkpoints,
seeks to the lower of the stored offset and ``replay_from``, folds each record
below the processed mark only into the streams whose stored state does not hold it
yet (nothing else happens for it), and from the mark on goes on as before: no event
is lost or counted twice. The records read again are at most
``kafka.snapshot_interval_seconds`` of the partition's events.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

from monitor.ingest import Consumer, Decoder
from monitor.metrics import Metrics
from monitor.store import Store
from monitor.stream.alignment import LabelAlignment
from monitor.stream.kserve_split import KServeSplit, stream_partitions
from monitor.stream.partitions import Partitions, TopicPartitionKey, topic_id
from monitor.stream.persist import Persister
from monitor.stream.pipeline import ModelPipeline
from monitor.stream.report_rows import ReportRows
from monitor.stream.scaleout import ScaleOut

__all__ = ["Holdings"]

log = logging.getLogger("driftloop.service")


class Holdings:
    def __init__(
        self,
        store: Store,
        group: str,
        member: str,
        pipelines: Mapping[str, ModelPipeline],
        partitions: Partitions,
        persister: Persister,
        decoder: Decoder,
        metrics: Metrics,
        clock: Callable[[], float],
        predictions_topic: str,
        *,
        report_rows: ReportRows | None,
        alignment: LabelAlignment | None,
        scaleout: ScaleOut | None,
        split: KServeSplit | None,
    ) -> None:
        self.store = store
        self.group = group
        self.member = member
        self.pipelines = pipelines
        self.partitions = partitions
        self.persister = persister
        self.decoder = decoder
        self.metrics = metrics
        self.clock = clock
        self.predictions_topic = predictions_topic
        self.report_rows = report_rows
        self.alignment = alignment
        self.scaleout = scaleout
        self.split = split
        # per partition: the first offset of records polled before this process held it
        self.unread: dict[TopicPartitionKey, int] = {}

    def note_unread(self, key: TopicPartitionKey, first: int) -> None:
        """Records of ``key`` from ``first`` on were polled but not handled (it was not
        held): a later take of it starts there when nothing of it is stored."""
        self.unread[key] = min(first, self.unread.get(key, first))

    def take(self, assigned: Iterable[TopicPartitionKey], consumer: Consumer | None
             ) -> dict[TopicPartitionKey, int]:
        """Take newly assigned partitions and load their checkpoints; returns the offsets
        to seek to. Taking comes first: from then on the previous owner's writes for them
        are refused, so what is read here cannot be overwritten by it."""
        wanted = set(assigned) - self.partitions.owned
        if not wanted:
            return {}
        epochs = self.store.take_partitions(self.group, wanted, self.member)
        marks = self.persister.load(self.stream_partitions(wanted),
                                    first_restore=not self.partitions.owned)
        if self.scaleout is not None:
            owned = self.scaleout.take(wanted, int(self.clock() * 1000))
            self.scaleout.restore(self.persister.owner_states, owned)
        self.decoder.joiner.expect({tp: marks[tp].pending for tp in wanted if tp in marks})
        current = {tp: topic_id(consumer, tp[0]) if consumer else None for tp in wanted}
        if self.split is not None:
            self.split.restore(marks, wanted, current)
        seeks = self.partitions.adopt(wanted, self.store.offsets(self.group), marks,
                                      current, epochs)
        handled = {tp: self.partitions.handled(tp) for tp in wanted if tp in marks}
        self.persister.rebuild(marks, handled)
        for tp in handled:  # the records since the streams' snapshots, read again
            if tp in seeks and self.partitions.handled(tp) == marks[tp].processed:
                seeks[tp] = min(seeks[tp], marks[tp].replay_start)
                if marks[tp].replay_start < marks[tp].processed:
                    log.info("%s[%d]: reading offsets %d..%d again to rebuild its streams",
                             tp[0], tp[1], marks[tp].replay_start, marks[tp].processed - 1)
        for tp in wanted:
            unread = self.unread.pop(tp, None)
            if tp not in seeks and unread is not None:
                seeks[tp] = unread  # never stored: start where the dropped records did
                self.partitions.processed.setdefault(tp, unread)
        return seeks

    def recreated(self, key: TopicPartitionKey, consumer: Consumer | None) -> bool:
        """Whether the topic of a partition this member holds was created again since it
        took it (a broker back without its data, reached before the group noticed)."""
        held = self.partitions.topic_ids.get(key)
        current = topic_id(consumer, key[0]) if held else None
        return current is not None and current != held

    def forget(self, partitions: Iterable[TopicPartitionKey]) -> None:
        """Drop everything held of ``partitions`` (handed over, lost, or taken over by
        another member): nothing of it is written any more."""
        gone = set(partitions)
        predictions = self.stream_partitions(gone)
        for pipeline in self.pipelines.values():
            pipeline.drop_streams(predictions)
        if self.report_rows is not None:
            self.report_rows.forget(predictions)
        self.partitions.forget(gone)
        if self.alignment is not None:
            self.alignment.forget(gone)
        self.decoder.joiner.drop_partitions(gone)
        self.metrics.forget_partitions(gone)
        if self.scaleout is not None:
            self.scaleout.forget(gone)
        if self.split is not None:
            self.split.forget(gone)

    def clear(self, assigned: set[TopicPartitionKey]) -> None:
        """Drop everything not persisted, of every partition (a failed step: memory may be
        half-way); :meth:`take` then reloads the stored state, as a restart would."""
        for pipeline in self.pipelines.values():
            pipeline.drop_streams()
            pipeline.restore_performance({})
        self.decoder.joiner.drop_partitions(assigned | set(self.partitions.processed))
        self.decoder.take_replayed()  # of the failed step: read again after the seek
        self.partitions.clear()
        if self.alignment is not None:
            self.alignment.clear()
        self.persister.discard()
        if self.report_rows is not None:
            self.report_rows.clear()
        if self.scaleout is not None:
            self.scaleout.clear()
        if self.split is not None:
            self.split.forget(None)

    def stream_partitions(self, partitions: Iterable[TopicPartitionKey]) -> set[int]:
        return stream_partitions(partitions, self.predictions_topic,
                                 None if self.split is None else self.split.topic)
