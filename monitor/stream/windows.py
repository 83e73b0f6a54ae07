"""Windows of one stream: the predictions of one (model, version, partition).

Two kinds, chosen by ``window`` in the model's config:

- count windows (``rows``): tumbling windows of exactly ``rows`` events in
  offset order; identity = the window's sequence number in its stream.
- event-time windows (``duration``): tumbling windows aligned to multiples of
  the duration since the epoch; identity = ``start // duration``. A window
  closes when the stream's watermark (highest event time seen, less
  ``allowed_lateness``) passes its end; an event for a closed window is late
  and is counted, not evaluated.

Streams are per partition so that a partition's open windows move with the
partition at a rebalance (its checkpoint lives in the state store next to the
partition's offset); see design section 10 for the merge of partial windows.

Memory per open window is bounded whatever the window's length: rows are
buffered only up to ``buffer_rows`` and then folded into the window's
:class:`detectors.WindowSummary` (counts over the baseline's bins).

A window is binned with the baseline current when it opened (its ``baseline``
key) and is evaluated against that baseline, also when the model's baseline was
replaced meanwhile (an MLflow alias moved): ``profiles_for(key)`` gives a key's
profiles; new windows take the stream's ``baseline_key``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from itertools import pairwise
from typing import Any

import numpy as np

import detectors
from monitor.evaluate import WindowEstimator
from monitor.ingest import Prediction
from monitor.ingest.batch import PredictionBatch
from monitor.stream.fold import fold
from monitor.stream.window_state import ClosedWindow, OpenWindow

__all__ = ["CHECKPOINT_FORMAT", "Stream"]

# a stream checkpoint's format: 1 JSON-safe dicts (read still), 2 packed window summaries
CHECKPOINT_FORMAT = 2


class Stream:
    """Open windows of one (model, version, partition); checkpointable."""

    def __init__(
        self,
        model: str,
        version: str,
        partition: int,
        profiles: Mapping[str, detectors.FeatureProfile],
        *,
        rows: int | None,
        duration_seconds: float | None,
        allowed_lateness_seconds: float = 0.0,
        buffer_rows: int = 2048,
        prediction_column: str | None = None,
        score_column: str | None = None,
        on_late: Callable[[int], None] = lambda n: None,
        baseline_key: str = "",
        profiles_for: Callable[[str], Mapping[str, detectors.FeatureProfile]] | None = None,
        estimator_for: Callable[[str], WindowEstimator | None] = lambda key: None,  # CBPE
    ) -> None:
        self.model, self.version, self.partition = model, version, partition
        self._estimator_for = estimator_for
        self.profiles = profiles  # of the current baseline: new windows use them
        self.baseline_key = baseline_key
        self._profiles_for = profiles_for
        self.rows = rows
        self.duration_ms = None if duration_seconds is None else int(duration_seconds * 1000)
        self.lateness_ms = int(allowed_lateness_seconds * 1000)
        self.buffer_rows = buffer_rows
        self.prediction_column = prediction_column
        self.score_column = score_column
        self.on_late = on_late
        self._reset()
        # snapshots (monitor.stream.persist): the partition offset the stored checkpoint
        # covers (None: never stored); while never stored, the offset of the first record
        # (the state before it was empty). A restart rebuilds the state from there.
        self.covers: int | None = None
        self.first_offset: int | None = None
        self.snapshot_s: float | None = None  # clock of the last write (or of the first look)
        # changed by something a replay of the partition cannot repeat (the clock, a
        # baseline swap): the next persist writes it whatever the snapshot interval
        self.must_snapshot = False
        self.replay_baseline: str | None = None  # see restore
        self.late_rows = 0  # late events seen by this process (partial summaries carry them)

    def _reset(self) -> None:
        self.open: dict[int, OpenWindow] = {}
        self.next_index = 0  # count windows: the index of the next window to open
        # processing time (ms) of the last event: idle and retired streams are found by it
        self.touched_ms: int | None = None
        self.watermark_ms: int | None = None
        self.closed_below: int | None = None  # time windows: every index below is closed
        self.dirty = False

    # -- the per-event path: as little as possible ---------------------------------
    def replays(self, offset: int) -> bool:
        """Whether a record read again after a restart folds into this stream: it comes at
        or after the state restored (the stored checkpoint's, or nothing before the first
        record); earlier ones are in that state already or belong to a retired stream."""
        start = self.covers if self.covers is not None else self.first_offset
        return start is not None and offset >= start

    def _started(self, offset: int) -> None:
        if self.covers is None and self.first_offset is None:
            self.first_offset = offset

    def add(self, event: Prediction) -> list[ClosedWindow]:
        self.dirty = True
        self._started(event.offset)
        if self.duration_ms is None:
            return self._fill_counted(1, lambda i: event.offset,
                                      lambda window, i, j: _extend(window, [event]))
        return self._add_timed(event)

    def add_many(self, events: list[Prediction]) -> list[ClosedWindow]:
        """``add`` for a run of events in offset order, without a call per event.

        Count windows take slices; buffered rows still never exceed ``buffer_rows``.
        """
        if self.duration_ms is not None:
            return [closed for event in events for closed in self.add(event)]
        if not events:
            return []
        self.dirty = True
        self._started(events[0].offset)
        return self._fill_counted(len(events), lambda i: events[i].offset,
                                  lambda window, i, j: _extend(window, events[i:j]))

    # -- the batch path: slices of columns, numpy per chunk --------------------------
    def add_batch(self, batch: PredictionBatch) -> list[ClosedWindow]:
        """``add_many`` for a batch of this stream's events in offset order: the same
        windows, chunks and closings, without an object per event."""
        n = len(batch)
        if not n:
            return []
        self.dirty = True
        self._started(int(batch.offsets[0]))
        if self.duration_ms is not None:
            return self._add_timed_batch(batch)
        return self._fill_counted(n, lambda i: int(batch.offsets[i]),
                                  lambda window, i, j: _put(window, batch.slice(i, j)))

    def _fill_counted(self, n: int, offset_at: Callable[[int], int],
                      put: Callable[[OpenWindow, int, int], None]) -> list[ClosedWindow]:
        """Rows ``0..n`` of a run (events or a batch: ``put`` buffers rows ``i:j`` in a
        window) into count windows, a slice per window and fold: a window takes at most
        what fills it and what fills its buffer, so windows and fold chunks are those of
        one event at a time."""
        closed: list[ClosedWindow] = []
        size, limit = self.rows or 1, self.buffer_rows
        i = 0
        while i < n:
            window = self.open.get(self.next_index)
            if window is None:
                window = self.open[self.next_index] = self._new(self.next_index)
                window.first_offset = offset_at(i)
            take = min(size - window.n_rows, limit - window.buffered, n - i)
            put(window, i, i + take)
            window.n_rows += take
            i += take
            if window.n_rows >= size:
                del self.open[self.next_index]
                self.next_index += 1
                self._fold(window)  # sets the first and last event times
                closed.append(self._close(window, (window.start_ms, window.end_ms)))
            elif window.buffered >= limit:
                self._fold(window)
        return closed

    def _add_timed_batch(self, batch: PredictionBatch) -> list[ClosedWindow]:
        """Runs of rows of one window index in turn. Within a run the watermark can only
        close other windows (a row's own window ends after it), and closing happens when
        the watermark rises, so closing once after each run closes the same windows in
        the same order as closing after each row."""
        assert self.duration_ms is not None
        stamps = batch.timestamps_ms
        indexes = stamps // self.duration_ms
        cuts = (np.flatnonzero(indexes[1:] != indexes[:-1]) + 1).tolist()
        closed: list[ClosedWindow] = []
        limit = self.buffer_rows
        for start, stop in pairwise([0, *cuts, len(batch)]):
            index = int(indexes[start])
            if self.closed_below is not None and index < self.closed_below:
                self._late(stop - start)
                continue
            window = self.open.get(index)
            if window is None:
                window = self.open[index] = self._new(index)
                window.first_offset = int(batch.offsets[start])
            i = start
            while i < stop:
                take = min(limit - window.buffered, stop - i)
                _put(window, batch.slice(i, i + take))
                window.n_rows += take
                i += take
                if window.buffered >= limit:
                    self._fold(window)
            top = int(stamps[start:stop].max())
            if self.watermark_ms is None or top > self.watermark_ms:
                self.watermark_ms = top
                closed += self._close_due()
        return closed

    def _add_timed(self, event: Prediction) -> list[ClosedWindow]:
        assert self.duration_ms is not None
        index = event.timestamp_ms // self.duration_ms
        if self.closed_below is not None and index < self.closed_below:
            self._late(1)
            return []
        window = self.open.get(index)
        if window is None:
            window = self.open[index] = self._new(index)
            window.first_offset = event.offset
        self._append(window, event)
        if self.watermark_ms is None or event.timestamp_ms > self.watermark_ms:
            self.watermark_ms = event.timestamp_ms
            return self._close_due()
        return []

    def _late(self, n: int) -> None:
        self.late_rows += n
        self.on_late(n)

    def _append(self, window: OpenWindow, event: Prediction) -> None:
        _extend(window, [event])
        window.n_rows += 1
        if len(window.rows) >= self.buffer_rows:
            self._fold(window)

    # -- chunked work ---------------------------------------------------------------
    def _new(self, index: int) -> OpenWindow:
        estimator = self._estimator_for(self.baseline_key)  # CBPE
        return OpenWindow(index=index, summary=detectors.WindowSummary.empty(self.profiles),
                          baseline=self.baseline_key,
                          confidence=None if estimator is None else estimator.empty())

    def set_baseline(self, key: str, profiles: Mapping[str, detectors.FeatureProfile]) -> None:
        """New windows use this baseline; open ones keep theirs."""
        self.baseline_key, self.profiles = key, profiles

    def profiles_of(self, key: str) -> Mapping[str, detectors.FeatureProfile]:
        if key == self.baseline_key or self._profiles_for is None:
            return self.profiles
        return self._profiles_for(key)

    def _fold(self, window: OpenWindow) -> None:
        fold(window, self.profiles_of, self._estimator_for,
             prediction_column=self.prediction_column, score_column=self.score_column)

    def _close(self, window: OpenWindow, bounds: tuple[int | None, int | None]) -> ClosedWindow:
        self._fold(window)
        return ClosedWindow(self.model, self.version, self.partition, window, bounds)

    def close_idle(self, now_ms: int, idle_ms: int) -> list[ClosedWindow]:
        """Event-time windows of a stream without events for ``idle_ms`` (processing time)
        close as if event time had moved on with the clock since the last event: an idle
        partition must not hold its last window open for ever."""
        if self.duration_ms is None or self.watermark_ms is None or self.touched_ms is None:
            return []
        idle_for = now_ms - self.touched_ms
        if idle_for < idle_ms or not self.open:
            return []
        closed = self._close_due(self.watermark_ms + idle_for)
        self.must_snapshot = self.must_snapshot or bool(closed)  # by the clock: no replay
        return closed

    def close_all(self) -> list[ClosedWindow]:
        """Close every open window as it stands (a stream that retires)."""
        closed = []
        for index in sorted(self.open):
            window = self.open.pop(index)
            if self.duration_ms is None:
                self.next_index = max(self.next_index, index + 1)
                self._fold(window)  # sets the first and last event times
                closed.append(self._close(window, (window.start_ms, window.end_ms)))
            else:
                bounds = (index * self.duration_ms, (index + 1) * self.duration_ms)
                closed.append(self._close(window, bounds))
                self.closed_below = max(self.closed_below or 0, index + 1)
        self.dirty = self.must_snapshot = True
        return closed

    def _close_due(self, watermark_ms: int | None = None) -> list[ClosedWindow]:
        assert self.duration_ms is not None and self.watermark_ms is not None
        limit = (self.watermark_ms if watermark_ms is None else watermark_ms) - self.lateness_ms
        due = sorted(i for i in self.open if (i + 1) * self.duration_ms <= limit)
        closed = []
        for index in due:
            window = self.open.pop(index)
            bounds = (index * self.duration_ms, (index + 1) * self.duration_ms)
            closed.append(self._close(window, bounds))
        if due:
            self.closed_below = max(self.closed_below or 0, due[-1] + 1)
            self.dirty = True  # also when closed by the clock (close_idle), not by an event
        return closed

    # -- checkpoints --------------------------------------------------------------------
    def checkpoint(self, packed: bool = True) -> dict[str, Any]:
        """The stream's state; folds buffered rows first so it is complete.

        ``packed`` (format 2): window summaries as bytes (``WindowSummary.to_packed``), for
        a MessagePack checkpoint; else JSON-safe (format 1, what checkpoints were before).
        The caller marks the stream clean (``dirty = False``) once the state is stored, and
        adds ``covers``, the partition offset the state covers (read back by ``restore``).
        """
        for window in self.open.values():
            self._fold(window)
        windows = sorted(self.open.values(), key=lambda w: w.index)
        return {"format": CHECKPOINT_FORMAT if packed else 1,
                "next_index": self.next_index, "watermark_ms": self.watermark_ms,
                "closed_below": self.closed_below, "baseline": self.baseline_key,
                "open": [w.to_dict(packed) for w in windows]}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Open windows from a ``checkpoint`` of either format."""
        if int(state.get("format", 1)) > CHECKPOINT_FORMAT:
            raise ValueError(f"stream checkpoint: got format {state['format']}, expected at "
                             f"most {CHECKPOINT_FORMAT} (written by a newer driftloop)")
        self._reset()
        covers = state.get("covers")  # none in checkpoints written before snapshots
        self.covers = None if covers is None else int(covers)
        self.first_offset = None
        # the baseline new windows took when the state was written: a replay of the records
        # since opens its windows on it, as they were opened then (none: the current one)
        self.replay_baseline = state.get("baseline")
        self.next_index = int(state["next_index"])
        self.watermark_ms = state.get("watermark_ms")
        self.closed_below = state.get("closed_below")
        for data in state["open"]:
            key = data.get("baseline", self.baseline_key)
            window = OpenWindow.from_dict(data, self.profiles_of(key), key)
            self.open[window.index] = window


def _put(window: OpenWindow, batch: PredictionBatch) -> None:
    """Buffer a batch slice; a window holding events takes it as events."""
    if window.rows:
        window.rows.extend(batch.events())
        return
    window.batches.append(batch)
    window.batched += len(batch)


def _extend(window: OpenWindow, events: list[Prediction]) -> None:
    """Buffer events; a window holding batch slices takes them as events first (order and
    fold chunks stay those of the per-event path)."""
    if window.batches:
        _unbatch(window)
    window.rows.extend(events)


def _unbatch(window: OpenWindow) -> None:
    """The window's buffered batch slices as events, before events are appended."""
    for batch in window.batches:
        window.rows.extend(batch.events())
    window.batches, window.batched = [], 0
