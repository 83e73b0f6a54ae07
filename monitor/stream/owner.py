"""The owner of a model (issue 15): merges its partial window summaries and closes windows.

The replica Kafka assigns a model's partition of the partials topic
(:func:`monitor.stream.partials.owner_partition`) owns the model. Per model it keeps:

- ``reports``: the latest watermark reported for each source partition (a heartbeat;
  a partition's watermark never goes back, a re-read or a new holder replaying its
  records cannot move it back) or ``idle``;
- per (version, window index) the window merged so far from the partials received, the
  source partitions it holds and the lowest partials-topic offset among them;
- per version ``closed_below`` (every window below was evaluated) and, for the last
  :data:`KEEP_MERGED` windows evaluated, the source partitions merged into each.

The model's watermark is the lowest report over every source stream partition, idle
ones left out (all idle: every pending window closes); a partition that has not
reported holds it back. The source stream partitions are those of the predictions
topic and, with ``kafka.kserve_split``, those of the kserve topic (stream partition
``SPLIT_STREAMS + q``, :mod:`monitor.stream.kserve_split`), where the KServe pairs
count. A window closes when the watermark passes its end plus the model's allowed
lateness, and is evaluated by ``ModelPipeline.evaluate`` as the per-partition windows
are.

Dedupe, by identity (model, version, source partition, window index): a partial whose
partition is already merged into its pending window, or was merged into its evaluated
one, is a copy (a replay after a crash published it again) and is dropped; one for an
evaluated window that does not hold it came too late and its rows are counted late.

What survives a crash: ``closed_below``, the merged sources and the reports are the
model's checkpoint row (kind ``owner``), written in the persist that stores the windows
they led to, fenced by the ownership epoch of the partials partition like every persist.
The pending windows are not stored: the partials topic's offset is committed no further
than the lowest offset of a pending partial (:meth:`ModelOwner.held_back`), so they are
read again after a restart or by the next owner.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor.stream.partials import Partial, merge_windows, owner_partition
from monitor.stream.pipeline import ModelPipeline
from monitor.stream.window_state import ClosedWindow, OpenWindow

__all__ = ["KEEP_MERGED", "OWNER_KIND", "ModelOwner", "OwnedModel"]

log = logging.getLogger("driftloop.service")

OWNER_KIND = "owner"  # the checkpoint row of an owned model's state
KEEP_MERGED = 64  # evaluated windows per version whose merged sources are kept for dedupe


@dataclass
class _Pending:
    window: OpenWindow
    sources: set[int]
    offset: int  # lowest partials-topic offset of the partials merged here


@dataclass
class OwnedModel:
    """One model's merge state (see the module docstring)."""

    reports: dict[int, int | None] = field(default_factory=dict)
    closed_below: dict[str, int] = field(default_factory=dict)
    merged: dict[str, dict[int, list[int]]] = field(default_factory=dict)
    pending: dict[tuple[str, int], _Pending] = field(default_factory=dict)
    dirty: bool = False

    def watermark(self, sources: Collection[int]) -> int | None:
        """The lowest report over the source stream partitions; None while one is missing."""
        if not sources:
            return None  # the source topics' partitions are not known yet
        found: list[int] = []
        for partition in sources:
            if partition not in self.reports:
                return None
            report = self.reports[partition]
            if report is not None:
                found.append(report)
        return min(found) if found else _ALL_IDLE

    def to_dict(self) -> dict[str, Any]:
        return {"reports": {str(p): w for p, w in self.reports.items()},
                "closed_below": dict(self.closed_below),
                "merged": {v: {str(i): s for i, s in m.items()} for v, m in self.merged.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OwnedModel:
        return cls(reports={int(p): None if w is None else int(w)
                            for p, w in data.get("reports", {}).items()},
                   closed_below={str(v): int(i) for v, i in data.get("closed_below", {}).items()},
                   merged={str(v): {int(i): [int(p) for p in s] for i, s in m.items()}
                           for v, m in data.get("merged", {}).items()})


_ALL_IDLE = 2**62  # every partition idle: nothing more is coming, every window closes


class ModelOwner:
    """Merge state of the models whose partials-topic partitions this replica holds."""

    def __init__(self, pipelines: Mapping[str, ModelPipeline], partitions: int,
                 on_late: Callable[[str, int], None] = lambda model, n: None) -> None:
        self.pipelines = pipelines
        self.partitions = partitions  # of the partials topic
        self.on_late = on_late
        self.models: dict[str, OwnedModel] = {}

    def partition_of(self, model: str) -> int:
        return owner_partition(model, self.partitions)

    def _model(self, name: str) -> OwnedModel:
        return self.models.setdefault(name, OwnedModel())

    # -- partials in ---------------------------------------------------------------------
    def add(self, partial: Partial, offset: int, read_before: bool = False) -> None:
        """A partial read at ``offset`` of the model's partials partition; ``read_before``:
        read again after a restart (its late rows were counted then)."""
        pipeline = self.pipelines.get(partial.model)
        if pipeline is None or pipeline.config.window.duration is None:
            return  # a model this replica is not configured for, or no longer event-time
        state = self._model(partial.model)
        if partial.index is None:
            self._report(state, partial)
            return
        version, index, source = partial.version, partial.index, partial.partition
        closed_below = state.closed_below.get(version)
        if closed_below is not None and index < closed_below:
            if source in state.merged.get(version, {}).get(index, ()) \
                    or index < closed_below - KEEP_MERGED:
                return  # a copy of one merged (or too old to tell: dropped either way)
            if not read_before:
                log.warning("partial of window %s/%s %d from partition %d came after the "
                            "window was evaluated: its %d rows are late", partial.model,
                            version, index, source, partial.n_rows)
                self.on_late(partial.model, partial.n_rows)
            return
        assert partial.window is not None
        window = OpenWindow.from_dict(partial.window, pipeline.baseline_profiles(
            str(partial.window.get("baseline", ""))), str(partial.window.get("baseline", "")))
        pending = state.pending.get((version, index))
        if pending is None:
            state.pending[(version, index)] = _Pending(window, {source}, offset)
            return
        if source in pending.sources:
            return  # a copy
        if window.baseline != pending.window.baseline:
            log.warning("partial of window %s/%s %d from partition %d was binned on baseline "
                        "%r, the others on %r: its %d rows are left out", partial.model,
                        version, index, source, window.baseline, pending.window.baseline,
                        window.n_rows)
            self.on_late(partial.model, window.n_rows)
            return
        pending.window = merge_windows(pending.window, window)
        pending.sources.add(source)
        pending.offset = min(pending.offset, offset)

    @staticmethod
    def _report(state: OwnedModel, partial: Partial) -> None:
        before = state.reports.get(partial.partition)
        if partial.idle or partial.watermark_ms is None:
            # left out of the model's watermark until it reports one again
            if partial.partition not in state.reports or before is not None:
                state.reports[partial.partition] = None
                state.dirty = True
            return
        if before is None or partial.watermark_ms > before:
            state.reports[partial.partition] = partial.watermark_ms
            state.dirty = True

    # -- windows out ---------------------------------------------------------------------
    def due(self, sources: Collection[int]) -> list[ClosedWindow]:
        """The merged windows the models' watermarks (over the source stream partitions
        ``sources``) passed, oldest first per version; their sources are recorded (the
        next persist stores them with the results)."""
        closed: list[ClosedWindow] = []
        for name, state in self.models.items():
            pipeline = self.pipelines[name]
            window_config = pipeline.config.window
            if window_config.duration is None or not state.pending:
                continue
            watermark = state.watermark(sources)
            if watermark is None:
                continue
            duration_ms = int(window_config.duration * 1000)
            limit = watermark - int(window_config.allowed_lateness * 1000)
            for version, index in sorted(state.pending, key=lambda k: (k[1], k[0])):
                if (index + 1) * duration_ms > limit:
                    continue
                pending = state.pending.pop((version, index))
                merged = state.merged.setdefault(version, {})
                merged[index] = sorted(pending.sources)
                below = max(state.closed_below.get(version, 0), index + 1)
                state.closed_below[version] = below
                for old in [i for i in merged if i < below - KEEP_MERGED]:
                    del merged[old]
                state.dirty = True
                closed.append(ClosedWindow(name, version, None, pending.window,
                                           (index * duration_ms, (index + 1) * duration_ms)))
        return closed

    def held_back(self) -> dict[int, int]:
        """Per partials partition, the lowest offset of a partial not evaluated yet: the
        offset committed goes no further, so a restart reads it again."""
        lowest: dict[int, int] = {}
        for name, state in self.models.items():
            partition = self.partition_of(name)
            for pending in state.pending.values():
                lowest[partition] = min(pending.offset, lowest.get(partition, pending.offset))
        return lowest

    # -- checkpoints and ownership ---------------------------------------------------------
    def dirty_states(self) -> list[tuple[str, dict[str, Any]]]:
        return [(name, state.to_dict()) for name, state in self.models.items() if state.dirty]

    def stored(self, names: Iterable[str]) -> None:
        for name in names:
            if name in self.models:
                self.models[name].dirty = False

    def restore(self, name: str, state: Mapping[str, Any]) -> None:
        """A stored state of a model whose partition this replica just took."""
        if name in self.pipelines:
            self.models[name] = OwnedModel.from_dict(state)

    def drop(self, partitions: Iterable[int]) -> None:
        """Partials partitions revoked or lost: their models' pending windows are read again
        by the next owner."""
        gone = set(partitions)
        for name in [n for n in self.models if self.partition_of(n) in gone]:
            del self.models[name]

    def clear(self) -> None:
        self.models.clear()
