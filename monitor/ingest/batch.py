"""A run of predictions of one (model, version, partition) as columns, not objects.

:func:`monitor.ingest.codecs.bulk.decode_native` decodes a poll's native records
into batches; the windows fold their slices with numpy (no per-event Python).
:meth:`PredictionBatch.event` and :meth:`PredictionBatch.events` give the
:class:`~monitor.ingest.events.Prediction` objects the per-record path would have
made, for the consumers that keep rows (drift-report rows, label joins).

Columns: ``offsets`` and ``timestamps_ms`` are int64 arrays; ``features`` maps a
feature name to a float64 array (numeric features: null is NaN) or a list (other
features: the decoded values); the optional fields are lists holding None where an
event has none.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitor.ingest.events import Prediction

__all__ = ["FeatureColumn", "LabelBatch", "PredictionBatch"]

FeatureColumn = np.ndarray | list[Any]


@dataclass(slots=True)
class PredictionBatch:
    model: str
    version: str
    topic: str
    partition: int
    offsets: np.ndarray
    timestamps_ms: np.ndarray
    request_ids: list[str]
    features: dict[str, FeatureColumn]
    predictions: list[float | int | str]
    scores: list[float | None]
    class_scores: list[dict[str, float] | None]
    latency_ms: list[float | None]

    def __len__(self) -> int:
        return len(self.request_ids)

    def slice(self, start: int, stop: int) -> PredictionBatch:
        """Rows ``start:stop`` (arrays are views, lists copies)."""
        return PredictionBatch(
            self.model, self.version, self.topic, self.partition,
            self.offsets[start:stop], self.timestamps_ms[start:stop],
            self.request_ids[start:stop],
            {name: column[start:stop] for name, column in self.features.items()},
            self.predictions[start:stop], self.scores[start:stop],
            self.class_scores[start:stop], self.latency_ms[start:stop])

    def copy(self) -> PredictionBatch:
        """A batch that holds no view of this one's arrays (a slice keeps its parent's)."""
        return PredictionBatch(
            self.model, self.version, self.topic, self.partition, self.offsets.copy(),
            self.timestamps_ms.copy(), list(self.request_ids),
            {name: column.copy() if isinstance(column, np.ndarray) else list(column)
             for name, column in self.features.items()},
            list(self.predictions), list(self.scores), list(self.class_scores),
            list(self.latency_ms))

    def take(self, rows: np.ndarray) -> PredictionBatch:
        """Rows at the positions ``rows``, in that order, as a batch of copies (no view of
        this one's arrays)."""
        picked = rows.tolist()
        return PredictionBatch(
            self.model, self.version, self.topic, self.partition, self.offsets[rows],
            self.timestamps_ms[rows], [self.request_ids[i] for i in picked],
            {name: column[rows] if isinstance(column, np.ndarray) else [column[i] for i in picked]
             for name, column in self.features.items()},
            [self.predictions[i] for i in picked], [self.scores[i] for i in picked],
            [self.class_scores[i] for i in picked], [self.latency_ms[i] for i in picked])

    @classmethod
    def concat(cls, batches: Sequence[PredictionBatch]) -> PredictionBatch:
        """Batches of the same stream and features, in order, as one."""
        if len(batches) == 1:
            return batches[0]
        first = batches[0]
        features: dict[str, FeatureColumn] = {}
        for name, column in first.features.items():
            if isinstance(column, np.ndarray):
                features[name] = np.concatenate([b.features[name] for b in batches])
            else:
                features[name] = [v for b in batches for v in b.features[name]]
        return cls(
            first.model, first.version, first.topic, first.partition,
            np.concatenate([b.offsets for b in batches]),
            np.concatenate([b.timestamps_ms for b in batches]),
            [v for b in batches for v in b.request_ids], features,
            [v for b in batches for v in b.predictions], [v for b in batches for v in b.scores],
            [v for b in batches for v in b.class_scores],
            [v for b in batches for v in b.latency_ms])

    def event(self, i: int) -> Prediction:
        """Row ``i`` as the per-record path makes it (a numeric feature's integer is a
        float here; the windows convert to float64 either way)."""
        features: dict[str, Any] = {}
        for name, column in self.features.items():
            value = column[i]
            if isinstance(column, np.ndarray):
                value = float(value)
                if math.isnan(value):
                    value = None
            features[name] = value
        return Prediction(self.model, self.version, self.request_ids[i],
                          int(self.timestamps_ms[i]), features, self.predictions[i],
                          self.scores[i], self.class_scores[i], self.latency_ms[i],
                          self.topic, self.partition, int(self.offsets[i]))

    def events(self) -> list[Prediction]:
        return [self.event(i) for i in range(len(self))]

    def __iter__(self) -> Iterator[Prediction]:
        return (self.event(i) for i in range(len(self)))


@dataclass(slots=True)
class LabelBatch:
    """Labels of one model, in record order, as columns (the label join's input)."""

    model: str
    request_ids: list[str]
    labels: list[float | int | str]
    timestamps_ms: list[int]

    def __len__(self) -> int:
        return len(self.request_ids)
