"""One window's state: ``OpenWindow`` (its summary and buffered rows) and ``ClosedWindow``.

Apart from :mod:`monitor.stream.windows` (which rows go to which window of a stream,
and when a window closes) because more than the stream reads them: the partial
summaries (:mod:`monitor.stream.partials`), the window owner and the loop take
windows as they are, without a ``Stream``; and the state changes with the checkpoint
format rather than with how windows are assigned.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import detectors
from monitor.ingest import Prediction
from monitor.ingest.batch import PredictionBatch

__all__ = ["MAX_EXTRA_KEYS", "ClosedWindow", "OpenWindow"]

# names of columns not in the baseline kept per window: a producer sending a new key
# per event must not grow a window (and its checkpoint) without bound
MAX_EXTRA_KEYS = 100


@dataclass
class OpenWindow:
    index: int
    summary: detectors.WindowSummary
    first_offset: int | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    n_rows: int = 0
    rows: list[Prediction] = field(default_factory=list)
    extra_keys: set[str] = field(default_factory=set)
    baseline: str = ""  # key of the baseline whose bins the summary uses
    # extra names not kept once MAX_EXTRA_KEYS were, counted once per folded chunk
    extra_keys_beyond: int = 0
    # CBPE (issue 14): the label-free estimate's sums over the folded rows; None when the
    # window's baseline has no CBPE reference
    confidence: detectors.ConfidenceCounts | None = None
    # rows not folded yet that came as batch slices (a window buffers either these or
    # ``rows``, never both: order and fold chunks stay those of the per-event path)
    batches: list[PredictionBatch] = field(default_factory=list)
    batched: int = 0  # rows in ``batches``

    @property
    def buffered(self) -> int:
        return len(self.rows) + self.batched

    def to_dict(self, packed: bool = False) -> dict[str, Any]:
        """The window's state; ``packed``: its summary as ``WindowSummary.to_packed`` (bytes
        inside, for MessagePack), else JSON-safe (the format before checkpoint format 2)."""
        return {"index": self.index, "first_offset": self.first_offset,
                "start_ms": self.start_ms, "end_ms": self.end_ms, "n_rows": self.n_rows,
                "extra_keys": sorted(self.extra_keys), "baseline": self.baseline,
                "extra_keys_beyond": self.extra_keys_beyond,
                "summary": self.summary.to_packed() if packed else self.summary.to_dict(),
                "confidence": None if self.confidence is None else self.confidence.to_dict()}

    def add_extra_keys(self, names: set[str]) -> None:
        new = names - self.extra_keys
        room = max(0, MAX_EXTRA_KEYS - len(self.extra_keys))
        kept = new if len(new) <= room else set(sorted(new)[:room])  # sorted: replays agree
        self.extra_keys |= kept
        self.extra_keys_beyond += len(new) - len(kept)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any],
                  profiles: Mapping[str, detectors.FeatureProfile],
                  baseline: str = "") -> OpenWindow:
        return cls(index=int(data["index"]), first_offset=data["first_offset"],
                   start_ms=data["start_ms"], end_ms=data["end_ms"], n_rows=int(data["n_rows"]),
                   extra_keys=set(data.get("extra_keys", [])), baseline=baseline,
                   extra_keys_beyond=int(data.get("extra_keys_beyond", 0)),
                   summary=_summary(data["summary"], profiles),
                   confidence=None if data.get("confidence") is None
                   else detectors.ConfidenceCounts.from_dict(data["confidence"]))


def _summary(data: Mapping[str, Any],
             profiles: Mapping[str, detectors.FeatureProfile]) -> detectors.WindowSummary:
    # a packed summary says its format; one from a JSON checkpoint (format 1) does not
    if "format" in data:
        return detectors.WindowSummary.from_packed(data, profiles)
    return detectors.WindowSummary.from_dict(data, profiles)


@dataclass(frozen=True)
class ClosedWindow:
    model: str
    version: str
    partition: int | None  # None: merged from the partitions' partial summaries (issue 15)
    window: OpenWindow
    # time windows: the window's bounds; count windows: the first and last event times
    bounds_ms: tuple[int | None, int | None]

    @property
    def key(self) -> str:
        if self.partition is None:
            return f"m:{self.window.index}"
        return f"p{self.partition}:{self.window.index}"

