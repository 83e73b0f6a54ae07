"""The demo's world: loan applicants arriving one after the other, and whether they repay.

Every row is a function of ``(seed, row number)`` alone: rows come in blocks of
:data:`BLOCK`, each drawn from its own generator seeded with ``[seed, 1, block]``,
so the stream is the same whatever the traffic rate or the timing of a run.
Features are the example dataset's (:mod:`monitor.cli.examples`): before
``drift_row`` they follow the reference (window 0); from ``drift_row`` on they
follow its most shifted window (:data:`DRIFT_WINDOW`: cheaper cars, younger
applicants, smaller down payments, longer loans, fewer repaid previous loans),
and the label relationship changes too (:func:`repaid_probability`): the credit
score's effect turns around and a repaid previous car loan stops helping. A model
trained before the drift loses most of its accuracy on the new rows; a model
trained on them gets it back.

The training frame of the first model is drawn from ``[seed, 0]`` (never from the
stream), like data collected before the model went live.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from monitor.cli.examples import FEATURES, repaid_logit, sample_features

__all__ = [
    "BLOCK",
    "DRIFT_WINDOW",
    "FEATURES",
    "LABEL",
    "Rows",
    "World",
    "repaid_probability",
]

BLOCK = 50
DRIFT_WINDOW = 5  # the example's window with five of eight features shifted
LABEL = "repaid"
_CACHED_BLOCKS = 64


def repaid_probability(features: pd.DataFrame, drifted: bool) -> np.ndarray:
    """P(repaid) of each row: the example's logistic truth; after the drift the credit
    score counts the other way round and a repaid previous loan no longer helps."""
    logit = repaid_logit(features)
    if drifted:
        logit = (logit - 0.05 * (features["credit_score"].to_numpy(np.float64) - 650.0)
                 - 0.9 * features["repaid_loan_on_prev_car"].to_numpy(np.float64) + 0.6)
    return np.asarray(1.0 / (1.0 + np.exp(-1.6 * logit)), dtype=np.float64)


@dataclass(frozen=True)
class Rows:
    """Consecutive rows ``first`` .. ``first + len(labels) - 1`` of the stream."""

    first: int
    features: pd.DataFrame  # the eight features, index 0..n-1
    labels: np.ndarray  # int64 0/1: did the applicant repay
    drifted: np.ndarray  # bool: drawn after the drift

    def __len__(self) -> int:
        return len(self.labels)


class World:
    """The seeded stream of applicants; ``drift_row`` is the first drifted row (a
    multiple of :data:`BLOCK`, so a block is never half drifted)."""

    def __init__(self, seed: int, drift_row: int) -> None:
        if drift_row < 0 or drift_row % BLOCK:
            raise ValueError(f"world drift_row: got {drift_row}, expected a non-negative "
                             f"multiple of {BLOCK}")
        self.seed = seed
        self.drift_row = drift_row
        self._blocks: OrderedDict[int, tuple[pd.DataFrame, np.ndarray]] = OrderedDict()

    def training_frame(self, n: int) -> tuple[pd.DataFrame, np.ndarray]:
        """``n`` rows from before the model went live: features and labels."""
        rng = np.random.default_rng([self.seed, 0])
        features = sample_features(rng, n, 0)
        return features, self._draw(rng, features, drifted=False)

    def rows(self, start: int, stop: int) -> Rows:
        """Rows ``start`` (included) to ``stop`` (excluded)."""
        if not 0 <= start <= stop:
            raise ValueError(f"world rows: got {start}..{stop}, expected 0 <= start <= stop")
        frames, labels = [], []
        for block in range(start // BLOCK, (stop + BLOCK - 1) // BLOCK):
            features, truth = self._block(block)
            low = max(start - block * BLOCK, 0)
            high = min(stop - block * BLOCK, BLOCK)
            frames.append(features.iloc[low:high])
            labels.append(truth[low:high])
        frame = (pd.concat(frames, ignore_index=True) if frames
                 else pd.DataFrame(columns=list(FEATURES)))
        truth = np.concatenate(labels) if labels else np.zeros(0, np.int64)
        return Rows(start, frame, truth, np.arange(start, stop) >= self.drift_row)

    def _block(self, block: int) -> tuple[pd.DataFrame, np.ndarray]:
        found = self._blocks.get(block)
        if found is not None:
            self._blocks.move_to_end(block)
            return found
        drifted = block * BLOCK >= self.drift_row
        rng = np.random.default_rng([self.seed, 1, block])
        features = sample_features(rng, BLOCK, DRIFT_WINDOW if drifted else 0)
        made = (features, self._draw(rng, features, drifted))
        self._blocks[block] = made
        if len(self._blocks) > _CACHED_BLOCKS:
            self._blocks.popitem(last=False)
        return made

    @staticmethod
    def _draw(rng: np.random.Generator, features: pd.DataFrame, drifted: bool) -> np.ndarray:
        chance = repaid_probability(features, drifted)
        return (rng.random(len(features)) < chance).astype(np.int64)
