"""Score calibration: P(label = 1 | score) as a non-decreasing step function.

Label-free performance estimation (``detectors.cbpe``) needs the probability that
a row's label is positive given the model's score. A model's raw scores are often
not that probability, so it is learnt on the reference, where labels are known,
by isotonic regression of the labels on the scores (pool adjacent violators: the
non-decreasing function of the score closest to the labels in squared error).
The fit is a step function: each step starts at the lowest reference score of
its block and holds the block's positive share. Scores between two blocks take
the lower block's value; scores beyond the reference's range the nearest end's.

Why numpy and not sklearn's ``IsotonicRegression``: the detectors stay light, the
step function is what gets stored (sklearn interpolates linearly between blocks,
a function that needs every block's two ends), and pooling is a short loop. The
loop runs once per distinct reference score, at baseline build time (about 1 s
per million distinct scores); evaluating the step function is one
``searchsorted``.

The identity calibration takes scores as probabilities already (clipped to
[0, 1]); its bins, used only to rank rows for ROC AUC, are ``IDENTITY_BINS``
equal-width bins of the probability.

>>> cal = fit_isotonic(np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.8]), np.array([0, 1, 0, 1, 1, 1]))
>>> cal.values.tolist(), cal.starts.tolist(), cal.weights.tolist()
([0.0, 0.5, 1.0], [0.1, 0.2, 0.4], [1, 2, 3])
>>> cal.probability(np.array([0.0, 0.25, 0.5, 0.9])).tolist()
[0.0, 0.5, 1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["IDENTITY_BINS", "ScoreCalibration", "fit_isotonic"]

IDENTITY_BINS = 1000


@dataclass(frozen=True, eq=False)
class ScoreCalibration:
    """A step function from scores to P(label = 1), or the identity.

    ``starts[i]`` is the score where step i begins (strictly increasing), ``values[i]``
    its probability (strictly increasing), ``weights[i]`` the reference rows it holds.
    """

    kind: Literal["isotonic", "identity"]
    starts: np.ndarray
    values: np.ndarray
    weights: np.ndarray

    @classmethod
    def identity(cls) -> ScoreCalibration:
        empty = np.zeros(0)
        return cls("identity", empty, empty, np.zeros(0, np.int64))

    @property
    def n_bins(self) -> int:
        """Bins a window's rows are counted in: the steps, or the identity's fixed bins."""
        return IDENTITY_BINS if self.kind == "identity" else int(self.values.size)

    def bin_index(self, scores: np.ndarray) -> np.ndarray:
        """The bin of each score; bins are in increasing order of probability."""
        scores = np.asarray(scores, np.float64)
        if self.kind == "identity":
            p = np.clip(scores, 0.0, 1.0)
            return np.minimum((p * IDENTITY_BINS).astype(np.int64), IDENTITY_BINS - 1)
        return np.searchsorted(self.starts[1:], scores, side="right")

    def probability(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, np.float64)
        if self.kind == "identity":
            return np.clip(scores, 0.0, 1.0)
        return self.values[self.bin_index(scores)]

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "identity":
            return {"kind": "identity"}
        return {"kind": "isotonic", "starts": self.starts.tolist(),
                "values": self.values.tolist(), "weights": self.weights.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoreCalibration:
        kind = data.get("kind")
        if kind == "identity":
            return cls.identity()
        if kind != "isotonic":
            raise ValueError(f"score calibration kind: got {kind!r}, "
                             "expected 'isotonic' or 'identity'")
        starts = np.asarray(data["starts"], np.float64)
        values = np.asarray(data["values"], np.float64)
        weights = np.asarray(data["weights"], np.int64)
        if not starts.size == values.size == weights.size or starts.size == 0:
            raise ValueError(f"score calibration: got {starts.size} starts, {values.size} values "
                             f"and {weights.size} weights, expected as many of each, at least 1")
        return cls("isotonic", starts, values, weights)


def fit_isotonic(scores: np.ndarray, labels: np.ndarray) -> ScoreCalibration:
    """Isotonic regression of 0/1 ``labels`` on ``scores`` (NaN scores are left out)."""
    x = np.asarray(scores, np.float64)
    y = np.asarray(labels)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"isotonic fit: got scores of shape {x.shape} and labels of shape "
                         f"{y.shape}, expected two 1-d arrays of the same length")
    if not np.all(np.isin(y, (0, 1))):
        raise ValueError(f"isotonic fit: got labels {np.unique(y)[:5].tolist()}, expected 0/1")
    kept = ~np.isnan(x)
    x, y = x[kept], y[kept].astype(np.float64)
    if x.size == 0:
        raise ValueError("isotonic fit: got no scored rows, expected at least one")
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    # rows with the same score form one point, weighted by their count
    starts, first, counts = np.unique(x, return_index=True, return_counts=True)
    sums = np.add.reduceat(y, first)
    block_sum: list[float] = []
    block_rows: list[int] = []
    block_start: list[float] = []
    for start, total, rows in zip(starts.tolist(), sums.tolist(), counts.tolist(), strict=True):
        # pool while the previous block's share is not below this one's: the result is
        # strictly increasing, so equal neighbours become one step
        while block_rows and block_sum[-1] * rows >= total * block_rows[-1]:
            total += block_sum.pop()
            rows += block_rows.pop()
            start = block_start.pop()
        block_sum.append(total)
        block_rows.append(rows)
        block_start.append(start)
    weights = np.asarray(block_rows, np.int64)
    return ScoreCalibration("isotonic", np.asarray(block_start),
                            np.asarray(block_sum) / weights, weights)
