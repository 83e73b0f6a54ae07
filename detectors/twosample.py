"""Two-sample differences with one-sided confidence bounds, for the canary judge.

Each function returns a ``Difference`` of arm ``a`` minus arm ``b``: the observed
difference, its standard error, a lower and an upper confidence bound (each one-sided
at ``confidence``: the true difference is above ``lower`` with that probability, and
below ``upper`` with that probability), and the test statistic against a margin.

``Difference.classify(threshold, want)`` is the non-inferiority reading a canary
needs: with ``want="above"`` the difference must be shown above ``threshold``
(``pass`` when ``lower > threshold``), is shown below it (``fail`` when ``upper <
threshold``), or neither (``inconclusive``); ``want="below"`` mirrors it. A tie at a
margin of 0 is therefore inconclusive: equal is not shown "no worse".

- ``two_proportions``: Agresti-Caffo interval (one success and one failure added to
  each arm). Unlike the plain Wald interval it keeps a non-zero standard error at
  rates of 0 or 1, so perfect arms are judged, not divided by zero.
- ``welch``: Welch's unequal-variance t on two ``Moments`` (scipy's
  ``ttest_ind(equal_var=False)``).
- ``normal_difference``: two independent estimates with standard errors (estimated
  performance when labels are late).

>>> d = two_proportions(90, 100, 80, 100, confidence=0.95)
>>> round(d.difference, 2), d.classify(0.0, "above")
(0.1, 'pass')
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from scipy import stats

from detectors.canary_stats import Moments

__all__ = ["Difference", "Outcome", "Want", "normal_difference", "two_proportions", "welch"]

Outcome = Literal["pass", "fail", "inconclusive"]
Want = Literal["above", "below"]


@dataclass(frozen=True)
class Difference:
    """``a - b`` with one-sided bounds; ``df`` is None for normal-based methods."""

    method: str
    difference: float
    standard_error: float
    lower: float
    upper: float
    confidence: float
    df: float | None = None

    def statistic(self, threshold: float) -> float:
        """(centre - threshold) / standard error: z or Welch t; +-inf when the error is 0."""
        centre = (self.lower + self.upper) / 2.0
        gap = centre - threshold
        if self.standard_error == 0.0:
            return 0.0 if gap == 0.0 else math.copysign(math.inf, gap)
        return gap / self.standard_error

    def p_value(self, threshold: float, want: Want) -> float:
        """One-sided p-value of H0 "not ``want`` threshold" (small: shown ``want``)."""
        t = self.statistic(threshold)
        if self.df is None:
            return float(stats.norm.sf(t) if want == "above" else stats.norm.cdf(t))
        return float(stats.t.sf(t, self.df) if want == "above" else stats.t.cdf(t, self.df))

    def classify(self, threshold: float, want: Want) -> Outcome:
        if want == "above":
            if self.lower > threshold:
                return "pass"
            return "fail" if self.upper < threshold else "inconclusive"
        if self.upper < threshold:
            return "pass"
        return "fail" if self.lower > threshold else "inconclusive"


def _check_confidence(confidence: float) -> None:
    if not 0.5 < confidence < 1.0:
        raise ValueError(f"confidence: got {confidence}, expected a value in (0.5, 1)")


def two_proportions(
    x_a: int, n_a: int, x_b: int, n_b: int, *, confidence: float
) -> Difference | None:
    """Rate ``x_a/n_a`` minus ``x_b/n_b``; None when an arm has no trials."""
    _check_confidence(confidence)
    if n_a <= 0 or n_b <= 0:
        return None
    if not (0 <= x_a <= n_a and 0 <= x_b <= n_b):
        raise ValueError(
            f"two_proportions: got counts {x_a}/{n_a} and {x_b}/{n_b}, "
            "expected 0 <= successes <= trials"
        )
    pa, pb = (x_a + 1.0) / (n_a + 2.0), (x_b + 1.0) / (n_b + 2.0)
    se = math.sqrt(pa * (1.0 - pa) / (n_a + 2.0) + pb * (1.0 - pb) / (n_b + 2.0))
    z = float(stats.norm.ppf(confidence))
    centre = pa - pb
    return Difference(
        "agresti_caffo", x_a / n_a - x_b / n_b, se, centre - z * se, centre + z * se, confidence
    )


def welch(a: Moments, b: Moments, *, confidence: float) -> Difference | None:
    """Mean of ``a`` minus mean of ``b``; None when an arm has fewer than 2 values."""
    _check_confidence(confidence)
    if a.n < 2 or b.n < 2:
        return None
    va, vb = a.variance / a.n, b.variance / b.n
    se = math.sqrt(va + vb)
    d = a.mean - b.mean
    if se == 0.0:
        return Difference("welch_t", d, 0.0, d, d, confidence, math.inf)
    df = (va + vb) ** 2 / (va * va / (a.n - 1) + vb * vb / (b.n - 1))
    t = float(stats.t.ppf(confidence, df))
    return Difference("welch_t", d, se, d - t * se, d + t * se, confidence, df)


def normal_difference(
    value_a: float, se_a: float, value_b: float, se_b: float, *, confidence: float
) -> Difference:
    """Two independent estimates with their standard errors."""
    _check_confidence(confidence)
    if se_a < 0 or se_b < 0 or not (math.isfinite(se_a) and math.isfinite(se_b)):
        raise ValueError(
            f"normal_difference: got standard errors {se_a} and {se_b}, "
            "expected finite values >= 0"
        )
    se = math.sqrt(se_a * se_a + se_b * se_b)
    d = value_a - value_b
    z = float(stats.norm.ppf(confidence))
    return Difference("normal_z", d, se, d - z * se, d + z * se, confidence)
