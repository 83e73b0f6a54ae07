"""Distances and tests between two count vectors over the same bins.

Used on categories for categorical features and on coarse quantile bins for
numeric ones. Conventions follow Evidently 0.7 (``evidently.legacy.calculations
.stattests``) so users read the same numbers: natural logarithms, PSI's zero
bins replaced by a small epsilon, Jensen-Shannon without one.

>>> import numpy as np
>>> round(jensenshannon(np.array([50, 50]), np.array([50, 50])), 12)
0.0
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

__all__ = ["chisquare", "jensenshannon", "linf", "psi", "z_binary"]


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else np.zeros(counts.shape)


def _fill_zeros(shares: np.ndarray) -> np.ndarray:
    # Evidently's feel_zeroes: empty bins get the smallest non-zero share / 1e6 when that
    # share is tiny, else 1e-4, so the logarithm stays finite
    nonzero = shares[shares > 0]
    if nonzero.size == 0:
        return shares
    smallest = float(nonzero.min())
    eps = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return np.where(shares == 0, eps, shares)


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index: sum((r - c) * ln(r / c)) over shares."""
    r = _fill_zeros(_shares(reference))
    c = _fill_zeros(_shares(current))
    return float(np.sum((r - c) * np.log(r / c)))


def jensenshannon(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen-Shannon distance, natural log (scipy.spatial.distance.jensenshannon)."""
    r, c = _shares(reference), _shares(current)
    m = (r + c) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_r = np.where(r > 0, r * np.log(r / m), 0.0).sum()
        kl_c = np.where(c > 0, c * np.log(c / m), 0.0).sum()
    return math.sqrt(max((kl_r + kl_c) / 2.0, 0.0))


def linf(reference: np.ndarray, current: np.ndarray) -> float:
    """Largest absolute difference of shares over the bins."""
    return float(np.max(np.abs(_shares(reference) - _shares(current)), initial=0.0))


def chisquare(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """One-sample chi-square of current counts against the reference shares (as Evidently).

    Returns (statistic, p-value). A category absent from the reference but present in
    the window makes the statistic infinite and the p-value 0.
    """
    expected = _shares(reference) * current.sum()
    observed = current.astype(np.float64)
    if np.any((expected == 0) & (observed > 0)):
        return math.inf, 0.0
    used = expected > 0
    if np.count_nonzero(used) < 2:
        return 0.0, 1.0
    stat = float(np.sum((observed[used] - expected[used]) ** 2 / expected[used]))
    return stat, float(stats.chi2.sf(stat, np.count_nonzero(used) - 1))


def z_binary(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Two-proportion z-test of the share of the first bin (as Evidently's ``z``).

    Returns (z, two-sided p-value); identical constant columns give p = 1.
    """
    n1, n2 = float(reference.sum()), float(current.sum())
    p1, p2 = reference[0] / n1, current[0] / n2
    pooled = (reference[0] + current[0]) / (n1 + n2)
    var = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)
    if var == 0.0:
        return 0.0, 1.0
    z = float((p1 - p2) / math.sqrt(var))
    return z, float(2.0 * stats.norm.sf(abs(z)))
