"""Pure drift, data-quality and performance statistics.

Arrays and reference profiles in, frozen results out: no I/O, clock, logging,
global random state or pandas. See docs/internals.md for the contract.
"""

from __future__ import annotations

from detectors.binned import chisquare, jensenshannon, linf, psi, z_binary
from detectors.calibration import (
    DEFAULT_WINDOW_SIZES,
    Calibration,
    CalibrationCurve,
    calibrate,
    skewed_bound,
)
from detectors.drift import evaluate_drift, evaluate_feature, pvalue_thresholds
from detectors.materiality import (
    REFERENCE_SHIFT_SD,
    UNCALIBRATED_FLOOR,
    reference_effects,
)
from detectors.numeric import ks, wasserstein_norm
from detectors.performance import (
    HIGHER_IS_BETTER,
    METRICS,
    calibrate_max_drop,
    evaluate_performance,
    performance_metric,
)
from detectors.profile import (
    CategoricalProfile,
    FeatureProfile,
    NumericProfile,
    profile_column,
    profile_from_dict,
)
from detectors.quality import evaluate_quality
from detectors.results import (
    DatasetDriftResult,
    DriftResult,
    PerformanceResult,
    QualityResult,
)
from detectors.settings import (
    CATEGORICAL_METHODS,
    MIN_EFFECT,
    NUMERIC_METHODS,
    PVALUE_METHODS,
    DriftSettings,
    FeatureOverride,
    QualitySettings,
)
from detectors.statistic import drift_statistic
from detectors.summary import MAX_UNSEEN, CategoricalCounts, NumericCounts, WindowSummary

__all__ = [
    "CATEGORICAL_METHODS",
    "DEFAULT_WINDOW_SIZES",
    "HIGHER_IS_BETTER",
    "MAX_UNSEEN",
    "METRICS",
    "MIN_EFFECT",
    "NUMERIC_METHODS",
    "PVALUE_METHODS",
    "REFERENCE_SHIFT_SD",
    "UNCALIBRATED_FLOOR",
    "Calibration",
    "CalibrationCurve",
    "CategoricalCounts",
    "CategoricalProfile",
    "DatasetDriftResult",
    "DriftResult",
    "DriftSettings",
    "FeatureOverride",
    "FeatureProfile",
    "NumericCounts",
    "NumericProfile",
    "PerformanceResult",
    "QualityResult",
    "QualitySettings",
    "WindowSummary",
    "calibrate",
    "calibrate_max_drop",
    "chisquare",
    "drift_statistic",
    "evaluate_drift",
    "evaluate_feature",
    "evaluate_performance",
    "evaluate_quality",
    "jensenshannon",
    "ks",
    "linf",
    "performance_metric",
    "profile_column",
    "profile_from_dict",
    "psi",
    "pvalue_thresholds",
    "reference_effects",
    "skewed_bound",
    "wasserstein_norm",
    "z_binary",
]
