"""Per-feature drift tests and dataset drift with multiple-testing correction.

A numeric feature is tested on its fine bins (Wasserstein, KS) or its coarse
quantile bins (PSI, Jensen-Shannon); a categorical one on its categories, unseen
categories being extra bins with no reference mass. Distances drift when the
statistic reaches the threshold; tests when the p-value falls below it. A
distance's "auto" threshold is max(calibrated bound at the window's size,
min_effect): noise decides on small windows, materiality on large ones
(detectors.materiality, docs/detection.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np

from detectors.calibration import Calibration
from detectors.materiality import MIN_EFFECT, UNCALIBRATED_FLOOR
from detectors.profile import FeatureProfile, NumericProfile
from detectors.results import DatasetDriftResult, DriftResult
from detectors.settings import PVALUE_METHODS, DriftSettings, Threshold
from detectors.statistic import drift_statistic
from detectors.summary import CategoricalCounts, NumericCounts, WindowSummary

__all__ = ["evaluate_drift", "evaluate_feature", "pvalue_thresholds"]

Counts = NumericCounts | CategoricalCounts


def _n_current(window: Counts) -> int:
    return window.n_total if isinstance(window, NumericCounts) else window.n_values


def _distance_threshold(feature: str, method: str, threshold: Threshold, n: int,
                        calibration: Calibration | None, min_effect: float | None) -> float:
    if threshold != "auto":
        return float(threshold)
    floor = MIN_EFFECT[method] if min_effect is None else min_effect
    bound = None if calibration is None else calibration.bound(feature, method, n)
    if bound is None:
        return max(floor, UNCALIBRATED_FLOOR[method])
    return max(floor, bound)


def evaluate_feature(feature: str, profile: FeatureProfile, window: Counts, method: str,
                     threshold: float | Literal["auto"] = "auto", *, alpha: float = 0.05,
                     min_rows: int = 100, calibration: Calibration | None = None,
                     min_effect: float | None = None) -> DriftResult:
    """One feature (or the prediction) against its reference.

    For a distance an "auto" threshold is max(calibrated bound at the window's size,
    ``min_effect``), ``MIN_EFFECT[method]`` when None; without a calibration curve for
    the feature, max(min_effect, 0.1). For p-value methods an "auto" threshold is
    ``alpha`` (uncorrected; ``evaluate_drift`` corrects for the number of features).
    """
    n_current = _n_current(window)
    statistic: float | None = None
    p_value: float | None = None
    if n_current > 0:
        statistic, p_value = drift_statistic(profile, window, method)
    if method in PVALUE_METHODS:
        used = alpha if threshold == "auto" else float(threshold)
        drifted = p_value is not None and p_value < used
        direction: Literal["above", "below"] = "below"
    else:
        used = _distance_threshold(feature, method, threshold, n_current, calibration,
                                   min_effect)
        drifted = statistic is not None and statistic >= used
        direction = "above"
    status: Literal["drift", "ok", "inconclusive"] = (
        "inconclusive" if n_current < min_rows else "drift" if drifted else "ok")
    return DriftResult(feature=feature, method=method, statistic=statistic, threshold=used,
                       direction=direction, n_reference=profile.n_values, n_current=n_current,
                       status=status, p_value=p_value)


def pvalue_thresholds(p_values: Mapping[str, float], alpha: float,
                      correction: str) -> dict[str, float]:
    """Per-feature p-value thresholds after correcting for ``len(p_values)`` tests.

    Bonferroni: alpha / m. FDR (Benjamini-Hochberg): k * alpha / m for the largest k
    with p_(k) <= k * alpha / m (alpha / m when none passes), the same for every test.
    """
    m = len(p_values)
    if m == 0 or correction == "none":
        return dict.fromkeys(p_values, alpha)
    if correction == "bonferroni":
        return dict.fromkeys(p_values, alpha / m)
    if correction != "fdr":
        raise ValueError(f"correction: got {correction!r}, expected bonferroni, fdr or none")
    ordered = np.sort(np.fromiter(p_values.values(), float, m))
    passing = np.nonzero(ordered <= np.arange(1, m + 1) * alpha / m)[0]
    k = int(passing[-1]) + 1 if passing.size else 1
    # p-values equal to the cutoff pass BH; nudging the strict bound keeps them passing
    cutoff = float(np.nextafter(k * alpha / m, 1.0))
    return dict.fromkeys(p_values, cutoff)


def _method_and_threshold(feature: str, profile: FeatureProfile,
                          settings: DriftSettings) -> tuple[str, Threshold]:
    default = (settings.numeric_method if isinstance(profile, NumericProfile)
               else settings.categorical_method)
    override = settings.override(feature)
    threshold = settings.threshold if override.threshold is None else override.threshold
    return override.method or default, threshold


def evaluate_drift(profiles: Mapping[str, FeatureProfile], summary: WindowSummary,
                   settings: DriftSettings,
                   calibration: Calibration | None = None) -> DatasetDriftResult:
    """Every profiled feature of the window, then dataset drift on the drifted share."""
    results: dict[str, DriftResult] = {}
    corrected: dict[str, float] = {}
    for feature, profile in profiles.items():
        window = (summary.numeric.get(feature) if isinstance(profile, NumericProfile)
                  else summary.categorical.get(feature))
        if window is None:
            raise KeyError(f"window summary: feature {feature!r} is profiled but not summarized")
        method, threshold = _method_and_threshold(feature, profile, settings)
        floor = None if method in PVALUE_METHODS else settings.effect_floor(feature, method)
        result = evaluate_feature(feature, profile, window, method, threshold,
                                  alpha=settings.alpha, min_rows=settings.min_rows,
                                  calibration=calibration, min_effect=floor)
        results[feature] = result
        if (method in PVALUE_METHODS and threshold == "auto"
                and result.status != "inconclusive" and result.p_value is not None):
            corrected[feature] = result.p_value
    for feature, cutoff in pvalue_thresholds(corrected, settings.alpha,
                                             settings.correction).items():
        r = results[feature]
        drifted = r.p_value is not None and r.p_value < cutoff
        results[feature] = DriftResult(
            feature=r.feature, method=r.method, statistic=r.statistic, threshold=cutoff,
            direction=r.direction, n_reference=r.n_reference, n_current=r.n_current,
            status="drift" if drifted else "ok", p_value=r.p_value)
    conclusive = [r for r in results.values() if r.status != "inconclusive"]
    share = sum(r.drift for r in conclusive) / len(conclusive) if conclusive else 0.0
    return DatasetDriftResult(
        features=results, drift_share=share, share_threshold=settings.share,
        dataset_drift=bool(conclusive) and share >= settings.share,
        n_features=len(conclusive), correction=settings.correction,
        status="ok" if conclusive else "inconclusive")

