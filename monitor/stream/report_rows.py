"""Rows of the open windows, kept for the drift reports of the windows that drift.

A window keeps summaries (counts over the baseline's bins), not rows; an
Evidently report needs rows. :class:`ReportRows` keeps, beside the windows and
without touching them, the rows of every open window of every (model, version,
partition), keyed by the window's index: all of them up to ``max_rows``, then a
uniform sample of that many (reservoir sampling, Algorithm R, seeded by the
window). When a window closes with drift, its rows go to the report writer as a
:class:`ReportJob`; otherwise they are dropped.

The index of each event's window is read off the stream before the events are
added, the way :mod:`monitor.stream.windows` assigns them: count windows fill
``rows`` events in offset order starting at ``next_index`` (less what the open
window already holds); event-time windows take ``timestamp // duration`` and
drop events older than ``closed_below``. After the run, buffers of windows that
are no longer open are dropped, so memory is bounded by the open windows.

After a restart the rows read before it are gone (a checkpoint holds summaries):
a report then covers the rows read since, and says so (:class:`RowsCovered`).

Runs on the consumer thread under the service's lock: the per-event work is a
slice or an append; sampling draws one vector of random numbers per run.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np

from monitor.baseline import Baseline
from monitor.evaluate import RowsCovered, drifted
from monitor.ingest import Prediction
from monitor.ingest.batch import PredictionBatch
from monitor.stream.pipeline import ModelPipeline, WindowOutput

__all__ = ["ReportJob", "ReportRows", "WindowRows"]

StreamKey = tuple[str, str, int]  # model, version, partition


@dataclass(frozen=True)
class ReportJob:
    """A closed drifted window handed to the report writer."""

    model: str
    version: str
    key: str  # the window's identity, p<partition>:<index>
    result: dict[str, Any]
    rows: list[Prediction]
    covered: RowsCovered
    baseline: Baseline  # the baseline the window was evaluated against
    baseline_key: str  # "" for the configured file, else its runs:/ URI


class WindowRows:
    """The rows of one open window: every row up to ``max_rows``, then a uniform sample.

    Rows that came in a batch are kept as (batch, row) until :attr:`rows` is read: an
    event object is made only for a row that reaches a report. The batches are copies of
    the rows drawn into the sample; once they hold more than twice ``max_rows`` rows
    (most of them replaced since) the sample's rows are copied into one batch per feature
    layout, so memory stays bounded by the sample however long the window.
    """

    __slots__ = ("_copied", "_kept", "_rng", "first_offset", "last_offset", "max_rows",
                 "seen")

    def __init__(self, max_rows: int, seed: int) -> None:
        self.max_rows = max_rows
        self._kept: list[Any] = []  # Prediction, or (PredictionBatch, row)
        self.seen = 0
        self.first_offset: int | None = None
        self.last_offset: int | None = None
        self._rng = np.random.default_rng(seed)
        # rows of the batch copies made since the last compaction (an upper bound of what
        # the kept tuples hold on to)
        self._copied = 0

    @property
    def rows(self) -> list[Prediction]:
        """The kept rows as events."""
        kept = self._kept
        for i, row in enumerate(kept):
            if type(row) is tuple:
                kept[i] = row[0].event(row[1])
        return kept

    def __len__(self) -> int:
        return len(self._kept)

    @property
    def held_rows(self) -> int:
        """Rows of the batch copies the sample holds on to (some no longer in it)."""
        return sum(len(batch) for batch in {id(row[0]): row[0] for row in self._kept
                                             if type(row) is tuple}.values())

    def add(self, events: Sequence[Prediction] | PredictionBatch) -> None:
        """Events in offset order."""
        if isinstance(events, PredictionBatch):
            self._add_batch(events)
            return
        if not events:
            return
        if self.first_offset is None:
            self.first_offset = events[0].offset
        self.last_offset = events[-1].offset
        room = self.max_rows - len(self._kept)
        if room > 0:
            taken = events[:room]
            self._kept.extend(taken)
            self.seen += len(taken)
            events = events[room:]
        if not events:
            return
        # Algorithm R: the i-th row seen replaces a uniformly chosen kept row with
        # probability max_rows / i; a later replacement of the same slot wins, as in
        # the one-at-a-time loop
        n = len(events)
        slots = self._rng.integers(0, np.arange(self.seen + 1, self.seen + n + 1))
        for i in np.flatnonzero(slots < self.max_rows):
            self._kept[int(slots[i])] = events[int(i)]
        self.seen += n

    def _add_batch(self, batch: PredictionBatch) -> None:
        n = len(batch)
        if not n:
            return
        if self.first_offset is None:
            self.first_offset = int(batch.offsets[0])
        self.last_offset = int(batch.offsets[-1])
        room = self.max_rows - len(self._kept)
        start = 0
        if room > 0:
            start = min(room, n)
            # a copy: the kept rows must not hold the whole poll's columns
            kept = batch.slice(0, start).copy()
            self._kept.extend(zip(repeat(kept), range(start)))
            self._copied += start
            self.seen += start
        if start == n:
            return
        # as in ``add``: Algorithm R over the rest; the rows drawn in are copied once, as
        # columns, and become events only if the window's report is written (a window
        # longer than ``max_rows`` replaces most of its sample near its end)
        rest = n - start
        slots = self._rng.integers(0, np.arange(self.seen + 1, self.seen + rest + 1))
        drawn = np.flatnonzero(slots < self.max_rows)
        if drawn.size:
            picked = batch.take(drawn + start)
            for j, slot in enumerate(slots[drawn].tolist()):
                self._kept[slot] = (picked, j)
            self._copied += drawn.size
            if self._copied > 2 * self.max_rows:
                self._compact()
        self.seen += rest

    def _compact(self) -> None:
        """The kept (batch, row) pairs as rows of new batches, one per feature layout (a
        window open across a baseline swap may get batches of two)."""
        by_batch: dict[int, tuple[PredictionBatch, list[int], list[int]]] = {}
        for i, row in enumerate(self._kept):
            if type(row) is tuple:
                _, rows, slots = by_batch.setdefault(id(row[0]), (row[0], [], []))
                rows.append(row[1])
                slots.append(i)
        layouts: dict[tuple[tuple[str, bool], ...], list[tuple[PredictionBatch, list[int]]]] = {}
        for batch, rows, slots in by_batch.values():
            layout = tuple((name, isinstance(column, np.ndarray))
                           for name, column in batch.features.items())
            layouts.setdefault(layout, []).append((batch.take(np.array(rows)), slots))
        self._copied = 0
        for parts in layouts.values():
            merged = PredictionBatch.concat([part for part, _ in parts])
            for j, i in enumerate(i for _, slots in parts for i in slots):
                self._kept[i] = (merged, j)
            self._copied += len(merged)


class ReportRows:
    """Rows of open windows by (model, version, partition) and window index.

    ``submit(job)`` hands a closed drifted window to the writer (False when its queue
    is full); ``count(model, outcome)`` counts windows that get no report here
    (``no_rows``: nothing read since a restart).
    """

    def __init__(self, max_rows: int, submit: Callable[[ReportJob], bool],
                 count: Callable[[str, str], None] = lambda model, outcome: None) -> None:
        if max_rows < 1:
            raise ValueError(f"reports max_rows: got {max_rows}, expected a positive integer")
        self.max_rows = max_rows
        self.submit = submit
        self.count = count
        self.open: dict[StreamKey, dict[int, WindowRows]] = {}

    def _window(self, key: StreamKey, index: int) -> WindowRows:
        windows = self.open.setdefault(key, {})
        found = windows.get(index)
        if found is None:
            seed = zlib.crc32(f"{key[0]}\0{key[1]}\0{key[2]}\0{index}".encode())
            found = windows[index] = WindowRows(self.max_rows, seed)
        return found

    def feed(self, pipeline: ModelPipeline, version: str, partition: int,
             run: list[Prediction] | PredictionBatch) -> None:
        """Before ``pipeline.add_many(version, partition, run)``: the same events, in order."""
        if not run:
            return
        key = (pipeline.name, version, partition)
        stream = pipeline.stream(version, partition)
        if stream.duration_ms is None:
            size = stream.rows or 1
            index = stream.next_index
            current = stream.open.get(index)
            filled = current.n_rows if current is not None else 0
            start = 0
            while start < len(run):
                take = min(size - filled, len(run) - start)
                self._window(key, index).add(
                    run.slice(start, start + take) if isinstance(run, PredictionBatch)
                    else run[start:start + take])
                start += take
                index, filled = index + 1, 0
            return
        duration, closed_below = stream.duration_ms, stream.closed_below
        if isinstance(run, PredictionBatch):
            self._feed_timed(key, run, duration, closed_below)
            return
        by_index: dict[int, list[Prediction]] = {}
        for event in run:
            index = event.timestamp_ms // duration
            if closed_below is None or index >= closed_below:  # else late: not in a window
                by_index.setdefault(index, []).append(event)
        for index, events in by_index.items():
            self._window(key, index).add(events)

    def _feed_timed(self, key: StreamKey, run: PredictionBatch, duration: int,
                    closed_below: int | None) -> None:
        """``feed`` of a batch to event-time windows: the rows of each window index in
        offset order (a stable sort by index)."""
        indexes = run.timestamps_ms // duration
        if closed_below is not None:
            keep = np.flatnonzero(indexes >= closed_below)  # else late: not in a window
        else:
            keep = np.arange(len(run))
        order = keep[np.argsort(indexes[keep], kind="stable")]
        sorted_indexes = indexes[order]
        cuts = np.flatnonzero(sorted_indexes[1:] != sorted_indexes[:-1]) + 1
        first_seen: list[tuple[int, int, np.ndarray]] = []
        for rows in np.split(order, cuts):
            if rows.size:
                first_seen.append((int(rows[0]), int(indexes[rows[0]]), rows))
        for _, index, rows in sorted(first_seen):  # windows in order of their first row
            self._window(key, index).add(_take(run, rows))

    def closed(self, pipeline: ModelPipeline, output: WindowOutput) -> None:
        """After ``pipeline.evaluate``: a drifted window's rows go to the writer."""
        # a window merged from partial summaries (issue 15) has no partition: its rows
        # stayed with the replicas that published them
        found = output.result.get("partition", -1)
        partition = -1 if found is None else int(found)
        rows = self.open.get((output.model, output.version, partition), {}).pop(output.index,
                                                                                None)
        if not drifted(output.result):
            return
        if rows is None or not rows.rows:
            self.count(output.model, "no_rows")
            return
        baseline_key = str(output.result.get("baseline") or "")
        covered = RowsCovered(
            shown=len(rows.rows), seen=rows.seen, window_rows=output.result.get("rows"),
            partition=partition, first_offset=rows.first_offset, last_offset=rows.last_offset,
            window_first_offset=output.result.get("first_offset"))
        self.submit(ReportJob(output.model, output.version, output.key, output.result,
                              rows.rows, covered, pipeline.baseline_for(baseline_key),
                              baseline_key))

    def settle(self, pipeline: ModelPipeline, version: str, partition: int) -> None:
        """After the run: forget windows the stream no longer has open (closed ones whose
        result was not drifted were dropped already; this catches late rows)."""
        key = (pipeline.name, version, partition)
        windows = self.open.get(key)
        stream = pipeline.streams.get((version, partition))
        if windows is None:
            return
        if stream is None:
            del self.open[key]
            return
        for index in [i for i in windows if i not in stream.open]:
            del windows[index]

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions revoked: their windows move to another replica."""
        gone = set(partitions)
        for key in [k for k in self.open if k[2] in gone]:
            del self.open[key]

    def clear(self) -> None:
        """After a rewind: the stream replays from the stored offsets."""
        self.open.clear()

    @property
    def n_rows(self) -> int:
        """Rows held, for tests and a gauge."""
        return sum(len(w) for windows in self.open.values() for w in windows.values())


def _take(batch: PredictionBatch, rows: np.ndarray) -> PredictionBatch:
    """Rows ``rows`` (ascending positions) of ``batch``; a contiguous range is a slice."""
    if rows.size and int(rows[-1]) - int(rows[0]) + 1 == rows.size:
        return batch.slice(int(rows[0]), int(rows[-1]) + 1)
    return batch.take(rows)
