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

Predictions whose label has not come yet wait in memory first (*carried*) until the
next persist (``CARRY_PERSISTS``), at most ``MAX_CARRIED`` rows per model: where a
label follows its prediction within seconds, a row that never enters the store costs
no upsert and no ``DELETE ... RETURNING``. Where labels come later (hours, days), a
carried row would only be written twice; so a model carries while at least half of
what it carried found its label by the next persist, and otherwise tries again every
``CARRY_PROBE`` persists. What is carried is stored too, but as one
checkpoint per (model, predictions partition) in the persist's transaction (the
restart source, fenced like the partition's other state, and handed over with the
partition at a rebalance); a row carried longer, one past its TTL, and the oldest
beyond the cap are stored as rows (the spill), where expiry and the cap of
``performance.max_pending_labels`` apply as before.
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

__all__ = ["CARRY_PERSISTS", "CARRY_PROBE", "MAX_CARRIED", "JoinBuffer", "JoinResult",
           "JoinedPairs", "carry_kind", "carry_partition"]

CARRY_PERSISTS = 1
CARRY_PROBE = 16
MAX_CARRIED = 50_000
_CARRY_PREFIX = "join:p"


def carry_kind(partition: int) -> str:
    """The checkpoint kind of the predictions carried from one partition."""
    return f"{_CARRY_PREFIX}{partition}"


def carry_partition(kind: str) -> int | None:
    return int(kind[len(_CARRY_PREFIX):]) if kind.startswith(_CARRY_PREFIX) else None


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


_COLUMNS = ("request_ids", "versions", "predictions", "timestamps", "scores", "class_scores",
            "partitions", "born")


@dataclass
class _Predictions:
    """One model's predictions in arrival (offset) order: ``partitions`` is each row's
    predictions partition, ``born`` the join generation it came in."""

    ttl_ms: int = 0
    request_ids: list[str] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    predictions: list[Any] = field(default_factory=list)
    timestamps: list[int] = field(default_factory=list)
    scores: list[float | None] = field(default_factory=list)
    class_scores: list[Mapping[str, float] | None] = field(default_factory=list)
    partitions: list[int] = field(default_factory=list)
    born: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.request_ids)

    def row(self, model: str, i: int) -> PendingPrediction:
        stamp = self.timestamps[i]
        return PendingPrediction(model, self.request_ids[i], self.versions[i],
                                 self.predictions[i], stamp, stamp + self.ttl_ms,
                                 self.scores[i], self.class_scores[i])

    def take(self, order: list[int]) -> _Predictions:
        return _Predictions(self.ttl_ms, *(_pick(getattr(self, name), order)
                                           for name in _COLUMNS))

    def then(self, other: _Predictions) -> _Predictions:
        """These rows followed by ``other``'s (the newer ttl)."""
        if not len(self):
            return other
        if not len(other):
            return self
        return _Predictions(other.ttl_ms or self.ttl_ms,
                            *(getattr(self, name) + getattr(other, name) for name in _COLUMNS))

    def state(self) -> dict[str, Any]:
        return {"ttl_ms": self.ttl_ms, **{name: getattr(self, name) for name in _COLUMNS
                                          if name != "born"}}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], born: int) -> _Predictions:
        rows = cls(int(state["ttl_ms"]), *(list(state[name]) for name in _COLUMNS[:-1]))
        rows.born = [born] * len(rows)
        return rows


@dataclass
class _Labels:
    ttl_ms: int = 0
    request_ids: list[str] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)
    timestamps: list[int] = field(default_factory=list)


@dataclass
class JoinResult:
    """What one persist's join found; :meth:`JoinBuffer.commit` makes it the buffer's
    state once its transaction is stored."""

    pairs: dict[str, JoinedPairs]
    carried: dict[str, _Predictions]
    # (model, partition) -> the carried rows' checkpoint state, None: delete it
    states: dict[tuple[str, int], dict[str, Any] | None]
    carrying: dict[str, bool] = field(default_factory=dict)


def _live(ids: dict[str, int], timestamps: list[int], ttl_ms: int,
          now: int | None) -> dict[str, int]:
    """The ids whose row has not expired at ``now`` (the common case: all of them)."""
    if now is None or not timestamps or min(timestamps) + ttl_ms > now:
        return ids
    return {rid: i for rid, i in ids.items() if timestamps[i] + ttl_ms > now}


class JoinBuffer:
    """Predictions and labels since the last persist and the carried predictions, per
    model, as columns."""

    def __init__(self) -> None:
        self.predictions: dict[str, _Predictions] = {}
        self.labels: dict[str, _Labels] = {}
        self.carried: dict[str, _Predictions] = {}
        # per model: whether carrying pays (what it carried mostly joined by the next persist)
        self.carrying: dict[str, bool] = {}
        self.generation = 0
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
            side.partitions.extend(repeat(run.partition, n))
        else:
            for e in run:
                side.request_ids.append(e.request_id)
                side.predictions.append(e.prediction)
                side.timestamps.append(e.timestamp_ms)
                side.scores.append(e.score)
                side.class_scores.append(e.scores)
                side.partitions.append(e.partition)
        side.versions.extend(repeat(version, n))
        side.born.extend(repeat(self.generation, n))
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

    def carried_counts(self) -> dict[str, int]:
        return {model: len(rows) for model, rows in self.carried.items()}

    # -- the join, at a persist ---------------------------------------------------------
    def join(self, tx: Transaction, clocks: Mapping[str, int]) -> JoinResult:
        """Join (see the module docstring) and store what is spilled; changes nothing
        in this buffer until :meth:`commit`. ``clocks``: each model's event time for the
        TTL (no clock: nothing has expired)."""
        result = JoinResult({}, {}, {})
        for model in sorted(self.predictions.keys() | self.labels.keys() | self.carried.keys()):
            pairs, carried = self._join_model(tx, model, clocks.get(model), result.carrying)
            if pairs:
                result.pairs[model] = pairs.sorted()
            before = self.carried.get(model)
            touched = set(before.partitions) if before is not None else set()
            if len(carried):
                result.carried[model] = carried
            positions: dict[int, list[int]] = {}
            for i, partition in enumerate(carried.partitions):
                positions.setdefault(partition, []).append(i)
            for partition in touched - positions.keys():
                result.states[(model, partition)] = None
            for partition, order in positions.items():
                result.states[(model, partition)] = carried.take(order).state()
        return result

    def commit(self, result: JoinResult) -> None:
        self.carried = result.carried
        self.carrying.update(result.carrying)
        self.predictions, self.labels, self.rows = {}, {}, 0
        self.generation += 1

    def _join_model(self, tx: Transaction, model: str, now: int | None,
                    carrying: dict[str, bool]) -> tuple[JoinedPairs, _Predictions]:
        mine = (self.carried.get(model) or _Predictions()).then(
            self.predictions.get(model) or _Predictions())
        theirs = self.labels.get(model) or _Labels()
        # the newest copy of each request id: a dict keeps the last position per key
        p_at = dict(zip(mine.request_ids, range(len(mine)), strict=True))
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
        # a row takes a stored partner only when no copy of its partner came with it (also
        # a carried row: another replica may have stored the label it read)
        alone = live_p.keys() - l_at.keys()
        stored_labels = tx.take_labels(model, list(alone), now) \
            if alone and tx.waiting_labels(model) else {}
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
        waiting_p = sorted(p_at[rid] for rid in p_at.keys() - done)
        before = self.carried.get(model)
        if before is not None and len(before):
            found = len(done.intersection(before.request_ids))
            carrying[model] = 2 * found >= len(before)
        if carrying.get(model, self.carrying.get(model, True)) \
                or self.generation % CARRY_PROBE == 0:
            keep = [i for i in waiting_p if mine.request_ids[i] in live_p
                    and self.generation - mine.born[i] < CARRY_PERSISTS]
        else:
            keep = []
        if len(keep) > MAX_CARRIED:
            keep = keep[-MAX_CARRIED:]  # the newest
        kept = set(keep)
        spill = [i for i in waiting_p if i not in kept]
        if spill:
            tx.add_predictions(mine.row(model, i) for i in spill)
        rest_l = [l_at[rid] for rid in l_at.keys() - done]
        if rest_l:
            tx.add_labels(PendingLabel(model, theirs.request_ids[j], theirs.labels[j],
                                       theirs.timestamps[j], theirs.timestamps[j] + theirs.ttl_ms)
                          for j in sorted(rest_l))
        return pairs, mine.take(keep)

    # -- restart and rebalance ----------------------------------------------------------
    def restore_carried(self, model: str, state: Mapping[str, Any]) -> None:
        """Carried rows of one (model, partition) read back from its checkpoint."""
        rows = _Predictions.from_state(state, self.generation)
        self.carried[model] = (self.carried.get(model) or _Predictions()).then(rows)

    def drop_partitions(self, partitions: set[int]) -> None:
        """Forget the carried rows of partitions this process no longer owns (their
        checkpoints, written before, are their new owner's)."""
        for held in (self.carried, self.predictions):
            for model, rows in list(held.items()):
                keep = [i for i, p in enumerate(rows.partitions) if p not in partitions]
                if len(keep) < len(rows):
                    held[model] = rows.take(keep)

    def clear(self) -> None:
        self.predictions, self.labels, self.carried, self.rows = {}, {}, {}, 0


def _pick_keys(positions: dict[str, int], keys: list[str]) -> list[int]:
    if len(keys) > 1:
        return list(itemgetter(*keys)(positions))
    return [positions[k] for k in keys]
