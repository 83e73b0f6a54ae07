"""Numeric drift statistics from a reference profile's fine bins and a window's counts.

Both CDFs are known exactly at the fine bin edges, and the sums of the values
per bin make each bin's integral of the CDF difference exact; values outside the
reference range are kept with their summed distance, so Wasserstein's tails are
exact too. The last bin is the point [max, max].

>>> import numpy as np
>>> from detectors.profile import profile_column
>>> from detectors.summary import NumericCounts
>>> p = profile_column(np.linspace(0.0, 1.0, 1001), "numeric")
>>> w = NumericCounts(counts=np.zeros(p.counts.size, np.int64))
>>> w.add(p, np.linspace(0.0, 1.0, 1001))
>>> round(wasserstein_norm(p, p.counts, w), 9)
0.0
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from detectors.profile import NumericProfile
from detectors.summary import NumericCounts

__all__ = ["coarse_counts", "ks", "wasserstein_norm"]

# Evidently's floor for the reference standard deviation of a (near) constant column
MIN_STD = 0.001


def _cdfs(reference: np.ndarray, window: NumericCounts) -> tuple[np.ndarray, np.ndarray]:
    """Reference and window CDFs just below each edge, and at the maximum (last entry)."""
    ref_cum = np.concatenate([[0], np.cumsum(reference)]) / reference.sum()
    total = window.n_total
    cur_cum = (window.below + np.concatenate([[0], np.cumsum(window.counts)])) / total
    return ref_cum, cur_cum


def _bin_means(profile: NumericProfile) -> np.ndarray:
    midpoints = (profile.edges[:-1] + profile.edges[1:]) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(profile.counts > 0, profile.sums / profile.counts, midpoints)


def wasserstein_norm(profile: NumericProfile, reference: np.ndarray,
                     window: NumericCounts) -> float:
    """W1 between reference and window, divided by the reference std (floored at 0.001).

    ``reference`` is the reference count per fine bin (``profile.counts``, or a resample's,
    whose values are then taken at the reference's bin means).

    Per bin, the integral of F_ref - F_cur is exact from the counts and the sums of the
    values in the bin: the integral of a CDF over [a, b) is (b - a) F(a) + sum(b - x) / n.
    Its absolute value is the bin's share of W1 unless the CDFs cross inside the bin.
    """
    ref_cum, cur_cum = _cdfs(reference, window)
    d = ref_cum - cur_cum
    widths = np.diff(profile.edges)
    means = None
    if reference is profile.counts or np.array_equal(reference, profile.counts):
        ref_sums = profile.sums
    else:
        means = _bin_means(profile)
        ref_sums = reference * means
    if window.sums is not None:
        cur_sums = window.sums
    else:
        cur_sums = window.counts * (_bin_means(profile) if means is None else means)
    upper = profile.edges[1:]
    n_ref, n_cur = float(reference.sum()), float(window.n_total)
    signed = (widths * d[:-1] + (upper * reference - ref_sums) / n_ref
              - (upper * window.counts - cur_sums) / n_cur)
    # Where the edge differences change sign the CDFs may cross inside the bin: the
    # difference is taken as two linear pieces meeting at zero, the crossing placed so the
    # signed integral stays exact. An integer bin of width 1 holds one value, at its left
    # edge, so its difference is flat and needs no such guess.
    d0, d1 = d[:-1], d[1:]
    sign_change = d0 * d1 < 0
    if profile.integer:
        sign_change &= widths > 1
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = np.clip((2.0 * signed - d1 * widths) / (d0 - d1), 0.0, widths)
    crossing = (np.abs(d0) * cross + np.abs(d1) * (widths - cross)) / 2.0
    area = np.where(sign_change, crossing, np.abs(signed))
    tails = (window.below_distance + window.above_distance) / n_cur
    return (float(area.sum()) + tails) / max(profile.std, MIN_STD)


def ks(profile: NumericProfile, reference: np.ndarray,
       window: NumericCounts) -> tuple[float, float]:
    """Kolmogorov-Smirnov D at the fine edges and its asymptotic two-sided p-value.

    The p-value is scipy's ``ks_2samp(method="asymp")``:
    ``kstwo.sf(D, round(n*m/(n+m)))``.
    """
    ref_cum, cur_cum = _cdfs(reference, window)
    d = float(np.max(np.abs(ref_cum - cur_cum)))
    n, m = float(reference.sum()), float(window.n_total)
    # at least 1: kstwo is undefined for 0 (one row on each side rounds 0.5 down)
    p_value = float(stats.kstwo.sf(d, max(round(n * m / (n + m)), 1)))
    return d, min(max(p_value, 0.0), 1.0)


def coarse_counts(profile: NumericProfile, fine: np.ndarray,
                  below: int = 0, above: int = 0) -> np.ndarray:
    """Fine counts summed into the coarse quantile bins; out-of-range values join the
    first and last coarse bins (the usual open-ended quantile buckets)."""
    coarse = np.add.reduceat(fine, profile.coarse[:-1]).astype(np.int64)
    coarse[0] += below
    coarse[-1] += above
    return coarse
