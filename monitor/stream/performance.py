"""One model's realized performance: joined (prediction, label) pairs in tumbling windows.

Labels arrive later than their predictions, so realized performance runs apart from
the drift windows: the label join of a persist (:mod:`monitor.stream.label_join`)
hands its :class:`JoinedPairs` here, each version fills windows of
``performance.window_rows`` pairs, and a full window is evaluated with
:func:`monitor.evaluate.evaluate_performance_window` on the model's current baseline.
The latest result of each version is what a closed drift window reports as its
``performance``. The open windows and the latest results are checkpointed with every
persist that joined pairs (:meth:`RealizedPerformance.state`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from monitor.baseline import Baseline
from monitor.config import ModelConfig
from monitor.evaluate import LabeledRows, evaluate_performance_window
from monitor.stream.label_join import JoinedPairs
from monitor.tables import canonical_category

__all__ = ["PERFORMANCE_KIND", "PerformanceWindow", "RealizedPerformance"]

PERFORMANCE_KIND = "performance"  # the checkpoint row of a model's performance windows


@dataclass
class PerformanceWindow:
    """Joined pairs of one (model, version) waiting to fill a performance window, as
    columns (label, prediction, score)."""

    index: int = 0
    labels: list[Any] = field(default_factory=list)
    predictions: list[Any] = field(default_factory=list)
    scores: list[float | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "labels": self.labels, "predictions": self.predictions,
                "scores": self.scores}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PerformanceWindow:
        if "pairs" in data:  # written before the columns: [[label, prediction, score], ...]
            pairs = [tuple(p) for p in data["pairs"]]
            return cls(int(data["index"]), [p[0] for p in pairs], [p[1] for p in pairs],
                       [p[2] for p in pairs])
        return cls(int(data["index"]), list(data["labels"]), list(data["predictions"]),
                   list(data["scores"]))


class RealizedPerformance:
    """The performance windows of one model's versions (``windows``) and the latest
    result of each (``last``)."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.windows: dict[str, PerformanceWindow] = {}
        self.last: dict[str, dict[str, Any]] = {}

    def add_pairs(self, pairs: JoinedPairs, baseline: Baseline
                  ) -> list[tuple[str, int, dict[str, Any]]]:
        """Feed joined pairs; returns (version, index, performance dict) per closed window,
        evaluated against ``baseline``."""
        size = self.config.performance.window_rows
        done: list[tuple[str, int, dict[str, Any]]] = []
        for version, mine in pairs.by_version().items():
            window = self.windows.setdefault(version, PerformanceWindow())
            at, n = 0, len(mine)
            while at < n:
                take = min(n - at, size - len(window))
                window.labels.extend(mine.labels[at:at + take])
                window.predictions.extend(mine.predictions[at:at + take])
                window.scores.extend(mine.scores[at:at + take])
                at += take
                if len(window) < size:
                    break
                result = self._evaluate(window, baseline)
                if result is not None:
                    # the window's number travels with the result, so evidence read back
                    # from a stored window result has the same identity as it had live
                    result = {**result, "window": window.index}
                    self.last[version] = result
                    done.append((version, window.index, result))
                self.windows[version] = window = PerformanceWindow(window.index + 1)
        return done

    def _evaluate(self, window: PerformanceWindow, baseline: Baseline) -> dict[str, Any] | None:
        if baseline.task == "regression":
            y_true = np.asarray([float(v) for v in window.labels], dtype=np.float64)
            y_pred = np.asarray([float(v) for v in window.predictions], dtype=np.float64)
        else:
            y_true = _categories(window.labels)
            y_pred = _categories(window.predictions)
        scores = window.scores
        score = (None if any(s is None for s in scores)
                 else np.asarray(scores, dtype=np.float64))
        return evaluate_performance_window(baseline, self.config,
                                           LabeledRows(y_true=y_true, y_pred=y_pred, score=score))

    # -- checkpoints ----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"windows": {v: w.to_dict() for v, w in self.windows.items()},
                "last": self.last}

    def restore(self, state: dict[str, Any]) -> None:
        self.windows = {version: PerformanceWindow.from_dict(data)
                        for version, data in state.get("windows", {}).items()}
        self.last = dict(state.get("last", {}))


def _categories(values: list[Any]) -> np.ndarray:
    """``canonical_category`` of each value, computed once per distinct value."""
    out = np.empty(len(values), dtype=object)
    kinds = set(map(type, values))
    if len(kinds) == 1 and kinds <= {int, str}:  # one kind: the values themselves are keys
        canon_of = {v: canonical_category(v) for v in set(values)}
        out[:] = list(map(canon_of.__getitem__, values))
        return out
    # keyed by (type, value): 1, 1.0 and True are one dict key but may not be one category
    keys = list(zip(map(type, values), values, strict=True))
    try:
        canon = {key: canonical_category(key[1]) for key in set(keys)}
    except TypeError:  # an unhashable value (a label that is a list): one at a time
        return np.array([canonical_category(v) for v in values], dtype=object)
    out[:] = [canon[key] for key in keys]
    return out
