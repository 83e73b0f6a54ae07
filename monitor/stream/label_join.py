"""The label join between two persists, in columns.

Predictions and labels that arrived since the last persist are kept as columns per
model (:class:`JoinBuffer`), not as a row object each: a poll's batch extends a
model's lists in one call per column. At the persist (:meth:`JoinBuffer.join`) the
request ids are matched with dict and set operations, which run in C:

- a prediction and its label that both arrived since the last persist pair in memory;
- a row whose partner already waits in the store takes it out in one
  ``DELETE ... RETURNING`` per chunk of ids;
- only rows without a partner are stored, to wait for it.

The newest copy of a request id stands for it, as the store's upsert would have it,
and a side already past its TTL on its model's clock joins nothing (it is stored,
and expires). The pairs of one model come as :class:`JoinedPairs`, columns ordered
by (prediction time, request id), the order the realized-performance windows and the
canary arms read them in; iterating it yields :class:`~monitor.store.JoinedPair` rows.

A prediction that waits is stored as a row at once, so what a persist commits is in
the store, and a row the store refuses fails the persist of the records it came from
(the poison hunt of :mod:`monitor.stream.poison` needs that). When few labels of the
model wait in the store, the lookup of stored labels reads those few instead of probing
for each prediction (none waiting: one read that finds nothing).

Replicas (issue 15) join through one store: each model's join holds a lock until its
transaction commits (:meth:`monitor.store.JoinOps.lock_join`), so a prediction and its
label persisted at once by two replicas still meet.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np

from monitor.ingest import Prediction
from monitor.ingest.batch import LabelBatch, PredictionBatch
from monitor.store import JoinedPair, PendingLabel, PendingPrediction, Transaction

__all__ = ["JoinBuffer", "JoinedPairs"]


def _pick(column: list[Any], order: list[int]) -> list[Any]:
    """``column`` at the positions ``order`` (one C call instead of a comprehension)."""
    if len(order) > 1:
        return list(itemgetter(*order)(column))
    return [column[i] for i in order]


@dataclass
class JoinedPairs:
    """One model's joined pairs as columns (see the module docstring for their order)."""

    model: str
    request_ids: list[str] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    predictions: list[Any] = field(default_factory=list)
    scores: list[float | None] = field(default_factory=list)
    class_scores: list[Mapping[str, float] | None] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)
    prediction_ms: list[int] = field(default_factory=list)
    label_ms: list[int] = field(default_factory=list)

    @classmethod
    def of(cls, model: str, rows: Iterable[JoinedPair]) -> JoinedPairs:
        pairs = cls(model)
        for row in rows:
            pairs.append(row.request_id, row.version, row.prediction, row.score, row.scores,
                         row.label, row.prediction_timestamp_ms, row.label_timestamp_ms)
        return pairs

    def append(self, request_id: str, version: str, prediction: Any, score: float | None,
               class_scores: Mapping[str, float] | None, label: Any, prediction_ms: int,
               label_ms: int) -> None:
        self.request_ids.append(request_id)
        self.versions.append(version)
        self.predictions.append(prediction)
        self.scores.append(score)
        self.class_scores.append(class_scores)
        self.labels.append(label)
        self.prediction_ms.append(prediction_ms)
        self.label_ms.append(label_ms)

    def __len__(self) -> int:
        return len(self.request_ids)

    def __iter__(self) -> Iterator[JoinedPair]:
        for row in zip(self.request_ids, self.versions, self.predictions, self.scores,
                       self.class_scores, self.labels, self.prediction_ms, self.label_ms,
                       strict=True):
            yield JoinedPair(self.model, *row)

    def take(self, order: list[int]) -> JoinedPairs:
        """The pairs at the positions ``order``, in that order."""
        return JoinedPairs(self.model, *(_pick(column, order) for column in (
            self.request_ids, self.versions, self.predictions, self.scores,
            self.class_scores, self.labels, self.prediction_ms, self.label_ms)))

    def sorted(self) -> JoinedPairs:
        """In (prediction time, request id) order: by time with numpy when no two pairs
        share a time (the usual case), else by both in Python."""
        stamps = np.asarray(self.prediction_ms, dtype=np.int64)
        by_time = np.argsort(stamps, kind="stable")
        if len(stamps) < 2 or np.all(np.diff(stamps[by_time]) > 0):
            order: list[int] = by_time.tolist()
        else:
            order = [i for _, _, i in sorted(zip(self.prediction_ms, self.request_ids,
                                                 range(len(self)), strict=True))]
        return self.take(order)

    def by_version(self) -> dict[str, JoinedPairs]:
        """The pairs of each version, in their order (one version: this object itself)."""
        if len(set(self.versions)) <= 1:
            return {self.versions[0]: self} if self.versions else {}
        positions: dict[str, list[int]] = {}
        for i, version in enumerate(self.versions):
            positions.setdefault(version, []).append(i)
        return {version: self.take(order) for version, order in positions.items()}


@dataclass
class _Predictions:
    """One model's predictions since the last persist, in arrival (offset) order."""

    ttl_ms: int = 0
    request_ids: list[str] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    predictions: list[Any] = field(default_factory=list)
    timestamps: list[int] = field(default_factory=list)
    scores: list[float | None] = field(default_factory=list)
    class_scores: list[Mapping[str, float] | None] = field(default_factory=list)

    def row(self, model: str, i: int) -> PendingPrediction:
        stamp = self.timestamps[i]
        return PendingPrediction(model, self.request_ids[i], self.versions[i],
                                 self.predictions[i], stamp, stamp + self.ttl_ms,
                                 self.scores[i], self.class_scores[i])


@dataclass
class _Labels:
    ttl_ms: int = 0
    request_ids: list[str] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)
    timestamps: list[int] = field(default_factory=list)


def _live(ids: dict[str, int], timestamps: list[int], ttl_ms: int,
          now: int | None) -> dict[str, int]:
    """The ids whose row has not expired at ``now`` (the common case: all of them)."""
    if now is None or not timestamps or min(timestamps) + ttl_ms > now:
        return ids
    return {rid: i for rid, i in ids.items() if timestamps[i] + ttl_ms > now}


class JoinBuffer:
    """Predictions and labels since the last persist, per model, as columns."""

    def __init__(self) -> None:
        self.predictions: dict[str, _Predictions] = {}
        self.labels: dict[str, _Labels] = {}
        self.rows = 0

    def __len__(self) -> int:
        return self.rows

    def add_predictions(self, model: str, version: str, run: list[Prediction] | PredictionBatch,
                        ttl_seconds: float) -> None:
        side = self.predictions.setdefault(model, _Predictions())
        side.ttl_ms = int(ttl_seconds * 1000)
        n = len(run)
        if isinstance(run, PredictionBatch):
            side.request_ids.extend(run.request_ids)
            side.predictions.extend(run.predictions)
            side.timestamps.extend(run.timestamps_ms.tolist())
            side.scores.extend(run.scores)
            side.class_scores.extend(run.class_scores)
        else:
            for e in run:
                side.request_ids.append(e.request_id)
                side.predictions.append(e.prediction)
                side.timestamps.append(e.timestamp_ms)
                side.scores.append(e.score)
                side.class_scores.append(e.scores)
        side.versions.extend(repeat(version, n))
        self.rows += n

    def add_labels(self, batch: LabelBatch, ttl_seconds: float) -> None:
        side = self.labels.get(batch.model)
        if side is None:
            side = self.labels[batch.model] = _Labels()
        side.ttl_ms = int(ttl_seconds * 1000)
        side.request_ids.extend(batch.request_ids)
        side.labels.extend(batch.labels)
        side.timestamps.extend(batch.timestamps_ms)
        self.rows += len(batch)

    def latest_prediction_ms(self) -> dict[str, int]:
        return {model: max(side.timestamps) for model, side in self.predictions.items()
                if side.timestamps}

    def clear(self) -> None:
        self.predictions, self.labels, self.rows = {}, {}, 0

    def join(self, tx: Transaction, clocks: Mapping[str, int]) -> dict[str, JoinedPairs]:
        """Join (see the module docstring), store what waits; the pairs per model.
        ``clocks``: each model's event time for the TTL (no clock: nothing has expired).
        The buffer is emptied by :meth:`clear` once the transaction is stored."""
        joined: dict[str, JoinedPairs] = {}
        for model in sorted(self.predictions.keys() | self.labels.keys()):
            pairs = self._join_model(tx, model, clocks.get(model))
            if pairs:
                joined[model] = pairs.sorted()
        return joined

    def _join_model(self, tx: Transaction, model: str, now: int | None) -> JoinedPairs:
        tx.lock_join(model)  # replicas persisting this model at once join one at a time
        mine = self.predictions.get(model) or _Predictions()
        theirs = self.labels.get(model) or _Labels()
        # the newest copy of each request id: a dict keeps the last position per key
        p_at = dict(zip(mine.request_ids, range(len(mine.request_ids)), strict=True))
        l_at = dict(zip(theirs.request_ids, range(len(theirs.request_ids)), strict=True))
        live_p = _live(p_at, mine.timestamps, mine.ttl_ms, now)
        live_l = _live(l_at, theirs.timestamps, theirs.ttl_ms, now)
        both = list(live_p.keys() & live_l.keys())
        pairs = JoinedPairs(model)
        if both:
            i, j = _pick_keys(live_p, both), _pick_keys(live_l, both)
            pairs = JoinedPairs(model, both, _pick(mine.versions, i), _pick(mine.predictions, i),
                                _pick(mine.scores, i), _pick(mine.class_scores, i),
                                _pick(theirs.labels, j), _pick(mine.timestamps, i),
                                _pick(theirs.timestamps, j))
        # a row takes a stored partner only when no copy of its partner came with it
        alone = live_p.keys() - l_at.keys()
        stored_labels = tx.take_labels(model, list(alone), now) if alone else {}
        for rid, (label, label_ms) in stored_labels.items():
            i_ = live_p[rid]
            pairs.append(rid, mine.versions[i_], mine.predictions[i_], mine.scores[i_],
                         mine.class_scores[i_], label, mine.timestamps[i_], label_ms)
        stored_predictions = tx.take_predictions(model, list(live_l.keys() - p_at.keys()), now)
        for rid, waiting in stored_predictions.items():
            j_ = live_l[rid]
            pairs.append(rid, waiting.version, waiting.prediction, waiting.score,
                         waiting.scores, theirs.labels[j_], waiting.timestamp_ms,
                         theirs.timestamps[j_])
        done = set(pairs.request_ids)
        rest_p = [p_at[rid] for rid in p_at.keys() - done]
        if rest_p:
            tx.add_predictions(mine.row(model, i) for i in sorted(rest_p))
        rest_l = [l_at[rid] for rid in l_at.keys() - done]
        if rest_l:
            tx.add_labels(PendingLabel(model, theirs.request_ids[j], theirs.labels[j],
                                       theirs.timestamps[j], theirs.timestamps[j] + theirs.ttl_ms)
                          for j in sorted(rest_l))
        return pairs


def _pick_keys(positions: dict[str, int], keys: list[str]) -> list[int]:
    if len(keys) > 1:
        return list(itemgetter(*keys)(positions))
    return [positions[k] for k in keys]
