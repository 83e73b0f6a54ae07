"""The smallest effect a distance must reach to count as drift: one materiality bound per method.

``threshold: auto`` for a distance is max(calibrated bound at the window's size,
``min_effect``). The calibrated bound (see ``detectors.calibration``) answers "is
this more than sampling noise?" and shrinks as 1/sqrt(n); the materiality bound
answers "is it large enough to matter?" and does not move with n. On small
windows the first decides, on large windows the second: without it a million-row
window flags a 0.02-sd shift, statistically certain and practically irrelevant.

The defaults express one effect size in each method's own units: the shift of a
normal feature's mean by ``REFERENCE_SHIFT_SD`` = 0.075 of its standard deviation,
which moves 3 points of probability mass (total variation 0.030):

- ``wasserstein`` (normalized by the reference std): 0.075, the shift itself;
- ``jensenshannon`` (natural log; 10 coarse quantile bins for a number): 0.026; on a
  categorical feature the same value is a 3.5-point move of a category holding half
  the rows, 2 points of one holding a tenth;
- ``psi``: 0.0054 (PSI is about chi-square, so it grows with the shift squared);
- ``linf`` (categorical only): 0.03, a category's share moving by 3 points.

Why 0.075 sd: benchmarks/bench_detection.py (tables in docs/detection.md) shows that
it flags no 0.02- or 0.05-sd shift at any window size, catches a 0.1-sd shift from
5,000 rows on and a 0.2-sd shift from 500 rows on, and keeps the false-alarm rate on
null windows below 1% per feature and window at every size (the calibrated bound
decides there). Evidently's fixed 0.1 sits on the 0.1-sd shift itself, so that cell
becomes a coin toss; 0.075 lies between the grid's "irrelevant" (0.05) and "small
but real" (0.1) shifts. The values are the statistics of that normal shift
computed exactly (``reference_effects``), not tuned per method.

Baselines without a calibration (built before calibrations existed) keep the old
fixed floor of 0.1 as well: without the calibrated bound a low floor would flag
sampling noise in small windows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["MIN_EFFECT", "REFERENCE_SHIFT_SD", "UNCALIBRATED_FLOOR", "reference_effects"]

REFERENCE_SHIFT_SD = 0.075

MIN_EFFECT: Mapping[str, float] = {
    "wasserstein": 0.075, "jensenshannon": 0.026, "psi": 0.0054, "linf": 0.03,
}

UNCALIBRATED_FLOOR: Mapping[str, float] = {
    "wasserstein": 0.1, "jensenshannon": 0.1, "psi": 0.1, "linf": 0.1,
}


def _normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def reference_effects(shift_sd: float = REFERENCE_SHIFT_SD, bins: int = 10) -> dict[str, float]:
    """Each method's value for a normal feature whose mean moves by ``shift_sd`` standard
    deviations, binned like a numeric feature (``bins`` equal-probability bins); ``linf``
    is the total variation distance, the mass that moves.

    >>> {k: round(v, 4) for k, v in reference_effects().items()}
    {'wasserstein': 0.075, 'jensenshannon': 0.026, 'psi': 0.0054, 'linf': 0.0299}
    """
    from statistics import NormalDist

    cuts = [NormalDist().inv_cdf(i / bins) for i in range(1, bins)]
    edges = [-math.inf, *cuts, math.inf]
    r = [1.0 / bins] * bins
    c = [_normal_cdf(edges[i + 1] - shift_sd) - _normal_cdf(edges[i] - shift_sd)
         for i in range(bins)]
    m = [(a + b) / 2.0 for a, b in zip(r, c, strict=True)]
    jsd = 0.5 * sum(a * math.log(a / x) + b * math.log(b / x)
                    for a, b, x in zip(r, c, m, strict=True))
    psi = sum((a - b) * math.log(a / b) for a, b in zip(r, c, strict=True))
    return {"wasserstein": shift_sd, "jensenshannon": math.sqrt(jsd), "psi": psi,
            "linf": 2.0 * _normal_cdf(shift_sd / 2.0) - 1.0}
