"""Thresholds calibrated on the reference (NannyML's manner, two-sample).

For each window size of a grid, ``resamples`` pairs are drawn under "no drift":
a reference of the reference's size and a window of that size, both from the
reference distribution, and the statistic is computed between them. The bound
at size n is the point a gamma distribution with the statistics' mean and std
exceeds with the probability a normal exceeds mean + 3 std (0.135%), interpolated
in log(n) between grid sizes and extrapolated as c / sqrt(n) outside the grid
(sampling noise of these distances shrinks about that fast). Distances only:
p-values are already calibrated.

Why a gamma and not mean + 3 std: distances are non-negative and skewed to the
right (a Jensen-Shannon divergence is about a scaled chi-square), so mean + 3 std
of their null sits near the 99th percentile, not the 99.87th. Measured on fresh
null windows of 500 and 5,000 rows (benchmarks/bench_detection.py's numeric
features, 1,000 windows each, two references), mean + 3 std let 0.4-4.1% through
per feature; the gamma's point 0-1.2% (0.5% on average), which the 1% false-alarm
budget per feature and window needs. On a symmetric, tight null the two agree.

Why the tails: a fresh window can hold values beyond the reference's range, which
redrawing the reference's bins never produces, and on heavy tails their distance
dominates Wasserstein (without them a lognormal(0, 2) feature let 15-25% of null
windows of 300-1000 rows through the bound). By exchangeability a new value lies
above all N reference values with probability 1/(N+1) (at most that with ties),
and below all with the same. Its excess past the extreme is drawn from a
generalized Pareto tail fitted to the reference's top (bottom) 1%, at least 10
rows: Pickands' shape from the quantiles 1%, 2% and 4% from the end (clamped to
[0, 0.75]: exponential at least, finite mean at most), the scale from the mean
excess. Light tails come out exponential with a scale of a fraction of a std,
so their bounds barely move; on bounded supports (counts, ages) the model is
slightly conservative, as a value past the extreme is impossible there.

Why 100 resamples: with 25 the std estimate is loose enough that single bounds
let 5-10% of null windows through; with 100 the false-alarm shares above hold
(before the min_effect floor of detectors.materiality, which decides on large windows).

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
from scipy import stats

from detectors.profile import FeatureProfile, NumericProfile
from detectors.settings import CATEGORICAL_METHODS, NUMERIC_METHODS, PVALUE_METHODS
from detectors.statistic import drift_statistic
from detectors.summary import CategoricalCounts, NumericCounts

__all__ = [
    "DEFAULT_WINDOW_SIZES",
    "Calibration",
    "CalibrationCurve",
    "calibrate",
    "skewed_bound",
    "tail_models",
]

DEFAULT_WINDOW_SIZES = (100, 300, 1000, 3000, 10_000, 30_000, 100_000, 300_000, 1_000_000)
SIGMAS = 3.0
# the tail model of values past the reference's range (see the module docstring)
TAIL_SHARE = 0.01
TAIL_MIN_ROWS = 10
MAX_TAIL_INDEX = 0.75


def skewed_bound(mean: np.ndarray, std: np.ndarray, sigmas: float = SIGMAS) -> np.ndarray:
    """Per entry, the point a gamma distribution with that mean and std exceeds with the
    probability a normal exceeds mean + sigmas * std; mean + sigmas * std where the
    gamma is undefined (a zero mean or std)."""
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    out = mean + sigmas * std
    fitted = (mean > 0) & (std > 0)
    if np.any(fitted):
        m, s = mean[fitted], std[fitted]
        out[fitted] = stats.gamma.isf(stats.norm.sf(sigmas), (m / s) ** 2, scale=s * s / m)
    return out


@dataclass(frozen=True)
class CalibrationCurve:
    """Null distribution of one statistic: mean and std per window size."""

    window_sizes: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def bound(self, n: int, sigmas: float = SIGMAS) -> float:
        sizes = np.asarray(self.window_sizes, dtype=np.float64)
        bounds = self._bounds(sigmas)
        n = max(int(n), 1)
        if n <= sizes[0]:
            return float(bounds[0] * math.sqrt(sizes[0] / n))
        if n >= sizes[-1]:
            return float(bounds[-1] * math.sqrt(sizes[-1] / n))
        return float(np.interp(math.log(n), np.log(sizes), bounds))

    def _bounds(self, sigmas: float) -> np.ndarray:
        # the gamma quantiles cost ~0.1 ms; a curve is read once per feature and window
        cache: dict[float, np.ndarray] = self.__dict__.setdefault("_cache", {})
        if sigmas not in cache:
            cache[sigmas] = skewed_bound(np.asarray(self.mean), np.asarray(self.std), sigmas)
        return cache[sigmas]

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
        """The null's upper point at window size n (``skewed_bound``), None when not
        calibrated."""
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


def _tail(counts: np.ndarray, sums: np.ndarray, edges: np.ndarray, k: int) -> tuple[float, float]:
    """(shape, scale at the last edge) of a generalized Pareto fit to the top values:
    Pickands' estimate of the shape from the quantiles k, 2k and 4k rows from the top,
    the scale from the mean excess of the top k rows over their threshold."""
    from_top = np.cumsum(counts[::-1])

    def edge(rows: int) -> int:  # bins edge.. hold at least ``rows`` values
        return max(counts.size - 1 - int(np.searchsorted(from_top, rows)), 0)

    i1, i2, i4 = edge(k), edge(2 * k), edge(4 * k)
    q1, q2, q4 = float(edges[i1]), float(edges[i2]), float(edges[i4])
    shape = 0.0
    if q1 > q2 > q4:
        shape = math.log((q1 - q2) / (q2 - q4)) / math.log(2.0)
    shape = min(max(shape, 0.0), MAX_TAIL_INDEX)
    mean_excess = float(sums[i1:].sum() / max(counts[i1:].sum(), 1)) - q1
    # GPD: mean excess over u is scale_u / (1 - shape); over a higher v, scale_u + shape (v - u)
    scale = max(mean_excess, 0.0) * (1.0 - shape) + shape * (float(edges[-1]) - q1)
    return shape, scale


def tail_models(profile: NumericProfile) -> tuple[tuple[float, float], tuple[float, float]]:
    """(shape, scale) of a new value's excess below the minimum and above the maximum."""
    k = max(TAIL_MIN_ROWS, int(profile.n_values * TAIL_SHARE))
    upper = _tail(profile.counts, profile.sums, profile.edges, k)
    # the bottom tail is the top tail of the negated values, bins reversed
    mirrored_edges = -profile.edges[::-1]
    counts, sums = profile.counts, profile.sums
    # bins of the negation: [-e_{i+1}, -e_i); the point bin at the max moves to the front,
    # where it stays a zero-width bin, and the minimum's bin becomes the last
    lower = _tail(counts[::-1], -sums[::-1], mirrored_edges, k)
    return lower, upper


def _excess(rng: np.random.Generator, k: np.ndarray, shape: float, scale: float) -> np.ndarray:
    """Sum of k[j] generalized Pareto draws for each j."""
    total = int(k.sum())
    if total == 0 or scale <= 0:
        return np.zeros(k.size)
    u = 1.0 - rng.random(total)  # in (0, 1]: the log stays finite
    draws = scale * (-np.log(u) if shape == 0 else (u ** -shape - 1.0) / shape)
    owners = np.repeat(np.arange(k.size), k)
    return np.bincount(owners, weights=draws, minlength=k.size)


def _null_windows(profile: FeatureProfile, shares: np.ndarray, n: int, resamples: int,
                  rng: np.random.Generator) -> list[NumericCounts | CategoricalCounts]:
    """``resamples`` windows of n rows from the reference distribution, as counts."""
    if not isinstance(profile, NumericProfile):
        return [CategoricalCounts(counts=w) for w in rng.multinomial(n, shares, resamples)]
    lower, upper = tail_models(profile)
    p_out = 1.0 / (profile.n_values + 1)
    p_below, p_above = (p_out if lower[1] > 0 else 0.0), (p_out if upper[1] > 0 else 0.0)
    probs = np.concatenate([[p_below], shares * (1.0 - p_below - p_above), [p_above]])
    drawn = rng.multinomial(n, probs / probs.sum(), resamples)
    below, above = drawn[:, 0], drawn[:, -1]
    below_distance = _excess(rng, below, *lower)
    above_distance = _excess(rng, above, *upper)
    return [NumericCounts(counts=drawn[j, 1:-1], below=int(below[j]), above=int(above[j]),
                          below_distance=float(below_distance[j]),
                          above_distance=float(above_distance[j]))
            for j in range(resamples)]


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
            for j, window in enumerate(_null_windows(profile, shares, n, resamples, rng)):
                for m in wanted:
                    stats[m][i, j] = drift_statistic(profile, window, m, reference=refs[j])[0]
        curves[feature] = {
            m: CalibrationCurve(sizes, tuple(float(v) for v in s.mean(axis=1)),
                                tuple(float(v) for v in s.std(axis=1, ddof=1)))
            for m, s in stats.items()}
    return Calibration(curves=curves, resamples=resamples,
                       seed=seed if isinstance(seed, int) else None)
