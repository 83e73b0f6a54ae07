"""The three detectors the detection benchmark compares, each fitted on one feature's reference.

- ``Driftloop``: the detectors package with its defaults (profile, calibration at
  every window size, ``threshold: auto`` = max(calibrated bound, min_effect)); other
  distance methods are evaluated on the same window summary for the secondary table.
- ``Evidently``: Evidently 0.7's per-column stattest chosen by its own default rule
  (``get_stattest(..., None)``: for a reference above 1000 rows Wasserstein (normed)
  at 0.1 for numbers with more than 5 distinct values, else Jensen-Shannon at 0.1;
  at most 1000 rows KS / chi-square / Z at p < 0.05), called with the column's
  present values as Evidently's data-drift metric does (NaN dropped). The rule
  depends only on the reference's size and the number of distinct values, so it is
  taken once per feature and window size, on the first window.
- ``NannyStyle``: NannyML's univariate drift defaults re-implemented from its source
  (NannyML itself was not installed: it pulls 29 packages into the shared
  environment): Jensen-Shannon distance (base 2) on Doane histogram bins of the
  reference for continuous columns (more than 50 distinct values), on the distinct
  values otherwise, mass outside the reference bins as one extra bin; an alert when
  a window's distance exceeds mean + 3 std (numpy's, ddof 0) of the distances of the
  reference's chunks of the window's size. NannyML takes those chunks from its
  reference, so its reference here holds at least 10 chunks: the common 50,000 rows
  for windows up to 5,000 rows, 10 fresh chunks (500,000 and 10,000,000 rows) above.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from detection_data import Feature
from evidently.legacy.calculations.stattests import get_stattest
from evidently.legacy.calculations.stattests.registry import StatTest
from evidently.legacy.core import ColumnType
from scipy.spatial import distance

import detectors

__all__ = ["Driftloop", "Evidently", "NannyStyle", "Window"]

# a numeric window: its values sorted (NaN last); a categorical one: counts per level + new
Window = np.ndarray
NANNY_MIN_CHUNKS = 10
NANNY_SIGMAS = 3.0
_NANNY_MAX_DISCRETE = 50


def present(values: np.ndarray) -> np.ndarray:
    """The non-missing values of a sorted window (NaN sorts last)."""
    return values[: values.size - int(np.count_nonzero(np.isnan(values)))]


def _labels(levels: int) -> np.ndarray:
    return np.array([f"c{i:02d}" for i in range(levels)], dtype=object)


class Driftloop:
    """driftloop's defaults for one feature; ``methods[0]`` is the default method."""

    def __init__(self, feature: Feature, reference: np.ndarray, methods: Sequence[str],
                 seed: int) -> None:
        self.feature, self.methods = feature, tuple(methods)
        if feature.kind == "numeric":
            self.profile = detectors.profile_column(reference, "numeric")
        else:
            values = np.repeat(_labels(feature.levels), reference[: feature.levels])
            self.profile = detectors.profile_column(values, "categorical")
            assert isinstance(self.profile, detectors.CategoricalProfile)
            index = self.profile.index()
            self._order = np.array([index[str(c)] for c in _labels(feature.levels)])
        self.calibration = detectors.calibrate({feature.name: self.profile},
                                               methods={feature.name: self.methods}, seed=seed)

    def flags(self, window: Window) -> dict[str, bool]:
        counts: detectors.NumericCounts | detectors.CategoricalCounts
        if isinstance(self.profile, detectors.NumericProfile):
            size = self.profile.counts.size
            counts = detectors.NumericCounts(counts=np.zeros(size, np.int64), sums=np.zeros(size))
            counts.add(self.profile, window)
        else:
            levels = self.feature.levels
            ordered = np.zeros(levels, np.int64)
            ordered[self._order] = window[:levels]
            new = int(window[levels])
            counts = detectors.CategoricalCounts(counts=ordered,
                                                 unseen={"new": new} if new else {})
        return {m: detectors.evaluate_feature(self.feature.name, self.profile, counts, m,
                                              calibration=self.calibration).drift
                for m in self.methods}


class Evidently:
    """Evidently's default stattest for one feature at one window size."""

    def __init__(self, feature: Feature, reference: np.ndarray, first_window: Window) -> None:
        self.feature = feature
        self.reference = self._series(reference, reference=True)
        self.column_type = (ColumnType.Numerical if feature.kind == "numeric"
                            else ColumnType.Categorical)
        self.stattest: StatTest = get_stattest(self.reference, self._series(first_window),
                                               self.column_type, None)

    def _series(self, data: np.ndarray, reference: bool = False) -> pd.Series:
        if self.feature.kind == "numeric":
            # sorted values: scipy's Wasserstein sorts them again, 4x faster when they are
            return pd.Series(present(np.sort(data) if reference else data))
        return pd.Series(np.repeat(np.arange(data.size), data))

    def flag(self, window: Window) -> bool:
        result = self.stattest(self.reference, self._series(window), self.column_type, None)
        return bool(result.drifted)

    @property
    def name(self) -> str:
        return self.stattest.name


class NannyStyle:
    """NannyML's default univariate rule for one feature at one window size."""

    def __init__(self, feature: Feature, chunks: Sequence[np.ndarray]) -> None:
        self.feature = feature
        if feature.kind == "numeric":
            kept = [present(np.sort(c)) for c in chunks]
            reference = np.concatenate(kept)
            distinct = np.unique(reference[:100_000]).size
            self.continuous = distinct > _NANNY_MAX_DISCRETE
            if self.continuous:
                self.bins = np.histogram_bin_edges(reference, bins="doane")
            else:
                self.bins = np.unique(reference)
            self.reference = self._shares(reference)
            values = [self.distance(c) for c in kept]
        else:
            self.continuous = False
            total = np.sum(chunks, axis=0)
            self.reference = total[:feature.levels] / total.sum()
            values = [self.distance(c) for c in chunks]
        self.threshold = float(np.mean(values) + NANNY_SIGMAS * np.std(values))

    def _shares(self, values: np.ndarray) -> np.ndarray:
        if self.continuous:
            return np.histogram(values, bins=self.bins)[0] / values.size
        found = np.isin(values, self.bins)
        idx = np.searchsorted(self.bins, values[found])
        return np.bincount(idx, minlength=self.bins.size) / values.size

    def distance(self, window: Window) -> float:
        if self.feature.kind == "numeric":
            current = self._shares(present(window))
        else:
            current = window[: self.feature.levels] / window.sum()
        reference = self.reference
        leftover = 1.0 - current.sum()
        if leftover > 1e-12:
            current = np.append(current, leftover)
            reference = np.append(reference, 0.0)
        return float(distance.jensenshannon(reference, current, base=2))

    def flag(self, window: Window) -> bool:
        return self.distance(window) > self.threshold
