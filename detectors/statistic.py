"""One drift statistic of a feature: the dispatch from method name to computation.

A numeric feature is measured on its fine bins (Wasserstein, KS) or its coarse
quantile bins (PSI, Jensen-Shannon); a categorical one on its categories,
unseen categories being extra bins without reference mass.
"""

from __future__ import annotations

import numpy as np

from detectors import binned, numeric
from detectors.profile import FeatureProfile, NumericProfile
from detectors.settings import CATEGORICAL_METHODS, NUMERIC_METHODS
from detectors.summary import CategoricalCounts, NumericCounts

__all__ = ["drift_statistic"]

Counts = NumericCounts | CategoricalCounts


def drift_statistic(profile: FeatureProfile, window: Counts, method: str,
                    reference: np.ndarray | None = None) -> tuple[float, float | None]:
    """(statistic, p-value or None) of ``method``; ``reference`` replaces the profile's
    counts (calibration passes resampled ones)."""
    ref = profile.counts if reference is None else reference
    if isinstance(profile, NumericProfile):
        if not isinstance(window, NumericCounts) or method not in NUMERIC_METHODS:
            raise ValueError(f"numeric feature: got method {method!r}, "
                             f"expected one of {', '.join(NUMERIC_METHODS)}")
        if method == "wasserstein":
            return numeric.wasserstein_norm(profile, ref, window), None
        if method == "ks":
            return numeric.ks(profile, ref, window)
        r = numeric.coarse_counts(profile, ref)
        c = numeric.coarse_counts(profile, window.counts, window.below, window.above)
        return (binned.psi(r, c) if method == "psi" else binned.jensenshannon(r, c)), None
    if not isinstance(window, CategoricalCounts) or method not in CATEGORICAL_METHODS:
        raise ValueError(f"categorical feature: got method {method!r}, "
                         f"expected one of {', '.join(CATEGORICAL_METHODS)}")
    extra = [*window.unseen.values(), window.unseen_other]
    r = np.concatenate([ref, np.zeros(len(extra), np.int64)])
    c = np.concatenate([window.counts, np.asarray(extra, np.int64)])
    if method == "z":
        if len(profile.categories) > 2:
            raise ValueError(f"z test: got {len(profile.categories)} reference categories, "
                             "expected a binary feature (at most 2)")
        r = np.array([r[0], r.sum() - r[0]])
        c = np.array([c[0], c.sum() - c[0]])
        return binned.z_binary(r, c)
    if method == "chisquare":
        return binned.chisquare(r, c)
    return {"jensenshannon": binned.jensenshannon, "psi": binned.psi,
            "linf": binned.linf}[method](r, c), None
