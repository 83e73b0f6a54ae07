"""Thresholds calibrated on the reference (NannyML's manner, two-sample).

For each window size of a grid, ``resamples`` pairs are drawn under "no drift":
a reference of the reference's size and a window of that size, both from the
reference distribution, and the statistic is computed between them. The bound
at size n is mean + 3 std of those statistics, interpolated in log(n) between
grid sizes and extrapolated as c / sqrt(n) outside the grid (sampling noise of
these distances shrinks about that fast). Distances only: p-values are already
calibrated.

Why 100 resamples: with 25 the std estimate is loose enough that single bounds
let 5-10% of null windows through; with 100 the measured false-alarm share of
fresh null windows is 0.5-3% per feature at the bound (before the MIN_EFFECT floor).

Why resample counts and not rows: every statistic depends on the data only
through its counts over the reference's bins, and drawing n rows from the
reference then binning them is the same as a multinomial draw of n over the
bins, at a cost independent of n. Why redraw the reference too: a window is
compared with a finite reference, whose own sampling noise adds to the
window's; chunks of the reference itself would hide it (their distance to the
reference vanishes as the chunk grows to the reference's size).

>>> import numpy as np
>>> from detectors.profile import profile_column
>>> profiles = {"x": profile_column(np.random.default_rng(1).normal(size=5000), "numeric")}
>>> cal = calibrate(profiles, methods={"x": ["wasserstein"]}, seed=0)
>>> cal.bound("x", "wasserstein", 100) > cal.bound("x", "wasserstein", 10_000)
True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors.profile import FeatureProfile, NumericProfile
from detectors.settings import CATEGORICAL_METHODS, NUMERIC_METHODS, PVALUE_METHODS
from detectors.statistic import drift_statistic
from detectors.summary import CategoricalCounts, NumericCounts

__all__ = ["DEFAULT_WINDOW_SIZES", "Calibration", "CalibrationCurve", "calibrate"]

DEFAULT_WINDOW_SIZES = (100, 300, 1000, 3000, 10_000, 30_000, 100_000, 300_000, 1_000_000)
SIGMAS = 3.0


@dataclass(frozen=True)
class CalibrationCurve:
    """Null distribution of one statistic: mean and std per window size."""

    window_sizes: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def bound(self, n: int, sigmas: float = SIGMAS) -> float:
        sizes = np.asarray(self.window_sizes, dtype=np.float64)
        bounds = np.asarray(self.mean) + sigmas * np.asarray(self.std)
        n = max(int(n), 1)
        if n <= sizes[0]:
            return float(bounds[0] * math.sqrt(sizes[0] / n))
        if n >= sizes[-1]:
            return float(bounds[-1] * math.sqrt(sizes[-1] / n))
        return float(np.interp(math.log(n), np.log(sizes), bounds))

    def to_dict(self) -> dict[str, Any]:
        return {"window_sizes": list(self.window_sizes), "mean": list(self.mean),
                "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CalibrationCurve:
        return cls(tuple(int(v) for v in data["window_sizes"]),
                   tuple(float(v) for v in data["mean"]), tuple(float(v) for v in data["std"]))


@dataclass(frozen=True)
class Calibration:
    """Curves per feature and method; JSON-safe through ``to_dict`` / ``from_dict``."""

    curves: dict[str, dict[str, CalibrationCurve]]
    resamples: int
    seed: int | None
    sigmas: float = SIGMAS

    def bound(self, feature: str, method: str, n: int) -> float | None:
        """mean + sigmas * std at window size n, None when not calibrated."""
        curve = self.curves.get(feature, {}).get(method)
        return None if curve is None else curve.bound(n, self.sigmas)

    def to_dict(self) -> dict[str, Any]:
        return {"resamples": self.resamples, "seed": self.seed, "sigmas": self.sigmas,
                "curves": {f: {m: c.to_dict() for m, c in by.items()}
                           for f, by in self.curves.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        return cls(
            curves={str(f): {str(m): CalibrationCurve.from_dict(c) for m, c in by.items()}
                    for f, by in data["curves"].items()},
            resamples=int(data["resamples"]), seed=data.get("seed"),
            sigmas=float(data.get("sigmas", SIGMAS)))


def _distance_methods(profile: FeatureProfile) -> list[str]:
    known = NUMERIC_METHODS if isinstance(profile, NumericProfile) else CATEGORICAL_METHODS
    return [m for m in known if m not in PVALUE_METHODS]


def calibrate(profiles: Mapping[str, FeatureProfile],
              methods: Mapping[str, Iterable[str]] | None = None,
              window_sizes: Sequence[int] = DEFAULT_WINDOW_SIZES, resamples: int = 100,
              seed: int | np.random.Generator = 0) -> Calibration:
    """Calibrate the distance methods of each feature (all of them when ``methods`` is None;
    p-value methods in ``methods`` are skipped)."""
    if resamples < 2:
        raise ValueError(f"calibration resamples: got {resamples}, expected at least 2")
    sizes = tuple(sorted({int(n) for n in window_sizes}))
    if not sizes or sizes[0] < 1:
        raise ValueError(f"calibration window_sizes: got {list(window_sizes)}, "
                         "expected positive sizes")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    curves: dict[str, dict[str, CalibrationCurve]] = {}
    for feature, profile in profiles.items():
        wanted = _distance_methods(profile) if methods is None else [
            m for m in methods.get(feature, ()) if m not in PVALUE_METHODS]
        if not wanted or profile.n_values == 0:
            continue
        shares = profile.counts / profile.counts.sum()
        stats: dict[str, np.ndarray] = {m: np.empty((len(sizes), resamples)) for m in wanted}
        # the same reference redraws serve every window size (they do not depend on it)
        refs = rng.multinomial(profile.n_values, shares, size=resamples)
        for i, n in enumerate(sizes):
            windows = rng.multinomial(n, shares, size=resamples)
            for j in range(resamples):
                window: NumericCounts | CategoricalCounts = (
                    NumericCounts(counts=windows[j]) if isinstance(profile, NumericProfile)
                    else CategoricalCounts(counts=windows[j]))
                for m in wanted:
                    stats[m][i, j] = drift_statistic(profile, window, m, reference=refs[j])[0]
        curves[feature] = {
            m: CalibrationCurve(sizes, tuple(float(v) for v in s.mean(axis=1)),
                                tuple(float(v) for v in s.std(axis=1, ddof=1)))
            for m, s in stats.items()}
    return Calibration(curves=curves, resamples=resamples,
                       seed=seed if isinstance(seed, int) else None)
