"""Step 2 of the loop: the records of one partition become events, or dead letters.

Nothing a record holds can stop the loop: every failure while decoding one record
dead-letters that record with a reason slug (``undecodable`` for what no other
reason names), and a record the loop has quarantined (its results could not be
stored, see :mod:`monitor.stream.consumer`) is dead-lettered as ``poison``.

Records below their partition's processed mark were handled before a restart:
they emit nothing, but KServe halves among them rebuild the joiner's state and native
ones rebuild streams whose state was not written since (``Decoder.take_replayed``).

Versions are bounded per model (``models.<name>.max_versions``): an event of a
further version is a dead letter (``too_many_versions``), so a producer cannot
explode metric series, streams and checkpoint rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from monitor.ingest import DeadLetters, DecodeError, Decoder, Label, Prediction
from monitor.ingest.batch import LabelBatch, PredictionBatch
from monitor.ingest.codecs.bulk import decode_native
from monitor.ingest.codecs.bulk_labels import decode_labels
from monitor.stream.partitions import TopicPartitionKey
from monitor.stream.pipeline import ModelPipeline

__all__ = ["RecordReader", "Run", "RunEvents", "runs_of"]

# the events of one (model, version): columns from the batch path, objects otherwise
RunEvents = list[Prediction] | PredictionBatch
Run = tuple[tuple[str, str], RunEvents]


class RecordReader:
    """Decodes the records of one partition, dead-lettering what cannot be used."""

    def __init__(self, decoder: Decoder, pipelines: Mapping[str, ModelPipeline],
                 dead_letters: Callable[[], DeadLetters | None], *,
                 on_dead_letter: Callable[[Any], None] | None = None) -> None:
        self.decoder = decoder
        self.pipelines = pipelines
        self._dead_letters = dead_letters
        self._on_dead_letter = on_dead_letter  # e.g. the canary's invalid count per version
        # (topic, partition, offset) of records to dead-letter as poison when seen again
        self.quarantined: set[tuple[str, int, int]] = set()
        self.invalid: Counter[str] = Counter()

    def take_invalid(self) -> Counter[str]:
        """Dead letters per reason since the last call."""
        invalid, self.invalid = self.invalid, Counter()
        return invalid

    def dead_letter(self, record: Any, error: DecodeError) -> None:
        writer = self._dead_letters()
        assert writer is not None, "dead letters before the broker connection"
        self.invalid[error.reason] += 1
        writer.write(record, error)
        if self._on_dead_letter is not None:
            self._on_dead_letter(record)

    def _quarantined(self, key: TopicPartitionKey, record: Any) -> bool:
        if (key[0], key[1], record.offset) not in self.quarantined:
            return False
        self.dead_letter(record, DecodeError(
            "poison", f"{key[0]}[{key[1]}]@{record.offset}: its results could not be stored "
            "after repeated attempts; moved past it"))
        return True

    def labels(self, key: TopicPartitionKey, records: list[Any], handled: int) -> list[Label]:
        decode = self.decoder.decode_label
        labels: list[Label] = []
        for record in records:
            if record.offset < handled:
                continue  # handled before a restart
            if self.quarantined and self._quarantined(key, record):
                continue
            try:
                labels.append(decode(record))
            except DecodeError as error:
                self.dead_letter(record, error)
            except Exception as exc:  # nothing a record holds may stop the loop
                self.dead_letter(record, _undecodable(exc))
        return labels

    def label_runs(self, key: TopicPartitionKey, records: list[Any],
                   handled: int) -> list[LabelBatch]:
        """The partition's labels per model, in record order: decoded in one call when the
        whole batch is clean (:func:`decode_labels`), else record by record
        (:meth:`labels`) with a dead letter per bad record."""
        if records and records[0].offset >= handled and not (
                self.quarantined and any((key[0], key[1], r.offset) in self.quarantined
                                         for r in records)):
            batches = decode_labels(self.decoder, records)
            if batches is not None:
                return batches
        out: dict[str, LabelBatch] = {}
        for label in self.labels(key, records, handled):
            batch = out.get(label.model)
            if batch is None:
                batch = out[label.model] = LabelBatch(label.model, [], [], [])
            batch.request_ids.append(label.request_id)
            batch.labels.append(label.label)
            batch.timestamps_ms.append(label.timestamp_ms)
        return list(out.values())

    def prediction_runs(self, key: TopicPartitionKey, records: list[Any],
                        handled: int) -> list[Run]:
        """Runs of the partition's predictions in record order: decoded in one call into
        columns when the whole batch is clean (:func:`decode_native`), else record by
        record (:meth:`predictions`) with a dead letter per bad record."""
        if records and records[0].offset >= handled and not (
                self.quarantined and any((key[0], key[1], r.offset) in self.quarantined
                                         for r in records)):
            batches = decode_native(self.decoder, records, self._feature_kinds)
            if batches is not None and self._admits(batches):
                return [((b.model, b.version), b) for b in batches]
        return list(runs_of(self.predictions(key, records, handled)))

    def _feature_kinds(self, model: str) -> tuple[tuple[str, bool], ...] | None:
        pipeline = self.pipelines.get(model)
        return None if pipeline is None else pipeline.feature_kinds()

    def _admits(self, batches: list[PredictionBatch]) -> bool:
        """Every version admitted (``max_versions``), checked in the order the
        per-record path checks them; False sends the batch that way for its dead letters."""
        seen: set[tuple[str, str]] = set()
        for batch in batches:
            if (batch.model, batch.version) in seen:
                continue
            seen.add((batch.model, batch.version))
            if not self.pipelines[batch.model].admits(batch.version):
                return False
        return True

    def predictions(self, key: TopicPartitionKey, records: list[Any],
                    handled: int) -> list[Prediction]:
        """The per-event path: decode and admit only; windows take the batch in runs."""
        decode = self.decoder.decode_prediction
        batch: list[Prediction] = []
        extend = batch.extend
        for record in records:
            replayed = record.offset < handled
            if self.quarantined and (key[0], key[1], record.offset) in self.quarantined:
                if not replayed:  # read again after a rewind: skipped, as it was then
                    self._quarantined(key, record)
                continue
            try:
                predictions = decode(record, replayed)
            except DecodeError as error:
                if not replayed:
                    self.dead_letter(record, error)
                continue
            except Exception as exc:
                if not replayed:
                    self.dead_letter(record, _undecodable(exc))
                continue
            if not predictions:
                continue  # a half waiting for its partner, or a record handled before
            first = predictions[0]  # one record carries one model and version
            if not self.pipelines[first.model].admits(first.version):
                self.dead_letter(record, DecodeError(
                    "too_many_versions",
                    f"{first.model} version {first.version!r}: the model already has "
                    f"{self.pipelines[first.model].config.max_versions} live versions "
                    f"(models.{first.model}.max_versions)"))
                continue
            extend(predictions)
        return batch


def _undecodable(exc: Exception) -> DecodeError:
    return DecodeError("undecodable", f"decoding failed: {type(exc).__name__}: {exc}")


def runs_of(batch: list[Prediction]) -> list[tuple[tuple[str, str], list[Prediction]]]:
    """Consecutive events of the same (model, version), in order; one run in the usual
    case of a partition that carries one model version."""
    if not batch:
        return []
    first = batch[0]
    model, version = first.model, first.version
    if all(e.model == model and e.version == version for e in batch):
        return [((model, version), batch)]
    runs: list[tuple[tuple[str, str], list[Prediction]]] = []
    for e in batch:
        key = (e.model, e.version)
        if not runs or runs[-1][0] != key:
            runs.append((key, []))
        runs[-1][1].append(e)
    return runs
