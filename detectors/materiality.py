"""The smallest effect a distance must reach to count as drift: one materiality bound per method.

``threshold: auto`` for a distance is max(calibrated bound at the window's size,
``min_effect``). The calibrated bound (see ``detectors.calibration``) answers "is
this more than sampling noise?" and shrinks as 1/sqrt(n); the materiality bound
answers "is it large enough to matter?" and does not move with n. On small
windows the first decides, on large windows the second: without it a million-row
window flags a 0.02-sd shift, statistically certain and practically irrelevant.

The defaults are effect sizes in each method's own units, from two reference
changes (``normal_shift_effects`` and ``share_move_effects`` compute them):

- ``wasserstein`` (the default for numbers; normalized by the reference std): 0.075,
  the mean moving by 0.075 standard deviations (3 points of probability mass for a
  normal feature);
- ``jensenshannon`` (the default for categories; natural log) 0.05, ``psi`` 0.02 and
  ``linf`` 0.07: a category holding half of the rows gaining or losing 7 points. The
  same Jensen-Shannon value is a 5-point move of a category holding a tenth, a new
  category taking 0.7% of the rows, or, on a numeric feature's 10 quantile bins, a
  normal mean moving 0.145 sd (PSI: 0.5% of rows in a new category, 0.145 sd).

Why these values (benchmarks/bench_detection.py; tables and reasoning in
docs/detection.md): the benchmark's shifts of 0.02 and 0.05 sd and of 2 points of
share are never flagged on windows of 50,000 rows and more; 0.1-sd shifts are
caught from 5,000 rows on and 0.2-sd shifts at 5,000 rows always; null windows of
every size stay below 1% false alarms per feature and window (the calibrated bound
decides there). Evidently's fixed 0.1 for Wasserstein sits on the 0.1-sd shift
itself, a coin toss; 0.075 lies between the grid's 0.05 (irrelevant) and 0.1
(small but real). The categorical floor is higher because Jensen-Shannon and PSI
grow like the square root (the logarithm) of a new category's share: at the
numeric floor's equivalent (0.026) a new category holding 0.2% of the rows would
count as drift, where it is a data-quality finding the quality check reports
(the acceptance example, monitor/examples.py, plants one at 0.4%).

Baselines without a calibration (built before calibrations existed) keep the old
fixed floor of 0.1 as well: without the calibrated bound a low floor would flag
sampling noise in small windows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from statistics import NormalDist

__all__ = [
    "MIN_EFFECT",
    "UNCALIBRATED_FLOOR",
    "normal_shift_effects",
    "share_move_effects",
]

MIN_EFFECT: Mapping[str, float] = {
    "wasserstein": 0.075, "jensenshannon": 0.05, "psi": 0.02, "linf": 0.07,
}

UNCALIBRATED_FLOOR: Mapping[str, float] = {
    "wasserstein": 0.1, "jensenshannon": 0.1, "psi": 0.1, "linf": 0.1,
}


def _js_psi_linf(r: list[float], c: list[float]) -> dict[str, float]:
    m = [(a + b) / 2.0 for a, b in zip(r, c, strict=True)]
    jsd = 0.5 * sum((a * math.log(a / x) if a > 0 else 0.0) + (b * math.log(b / x) if b > 0
                                                                  else 0.0)
                    for a, b, x in zip(r, c, m, strict=True))
    # PSI as detectors.binned.psi: an empty share counts as 1e-4 (Evidently's epsilon)
    psi = sum((max(a, 1e-4) - max(b, 1e-4)) * math.log(max(a, 1e-4) / max(b, 1e-4))
              for a, b in zip(r, c, strict=True))
    return {"jensenshannon": math.sqrt(jsd), "psi": psi,
            "linf": max(abs(a - b) for a, b in zip(r, c, strict=True))}


def normal_shift_effects(shift_sd: float, bins: int = 10) -> dict[str, float]:
    """Each numeric method's value when a normal feature's mean moves by ``shift_sd``
    standard deviations (Jensen-Shannon and PSI on ``bins`` equal-probability bins).

    >>> {k: round(v, 4) for k, v in normal_shift_effects(0.075).items()}
    {'jensenshannon': 0.026, 'psi': 0.0054, 'linf': 0.0299, 'wasserstein': 0.075}
    >>> {k: round(v, 3) for k, v in normal_shift_effects(0.145).items()}
    {'jensenshannon': 0.05, 'psi': 0.02, 'linf': 0.058, 'wasserstein': 0.145}
    """
    cuts = [NormalDist().inv_cdf(i / bins) for i in range(1, bins)]
    edges = [-math.inf, *cuts, math.inf]
    shifted = NormalDist(shift_sd, 1.0)
    r = [1.0 / bins] * bins
    c = [shifted.cdf(edges[i + 1]) - shifted.cdf(edges[i]) for i in range(bins)]
    effects = _js_psi_linf(r, c)
    # linf of the binned shares is not a numeric method; the mass that moves is
    effects["linf"] = 2.0 * NormalDist().cdf(shift_sd / 2.0) - 1.0
    effects["wasserstein"] = shift_sd
    return effects


def share_move_effects(share: float, points: float, new_category: float = 0.0
                       ) -> dict[str, float]:
    """The categorical methods' values when a category holding ``share`` of the rows moves
    by ``points`` (the others keep their proportions), or, with ``new_category``, when a
    category the reference never had takes that share of the rows.

    >>> {k: round(v, 3) for k, v in share_move_effects(0.5, 0.07).items()}
    {'jensenshannon': 0.05, 'psi': 0.02, 'linf': 0.07}
    >>> round(share_move_effects(0.5, 0.0, new_category=0.007)["jensenshannon"], 3)
    0.049
    """
    r = [share, 1.0 - share, 0.0]
    moved = share + points
    c = [moved, 1.0 - moved, 0.0]
    if new_category:
        c = [c[0] * (1.0 - new_category), c[1] * (1.0 - new_category), new_category]
    return _js_psi_linf(r, c)
