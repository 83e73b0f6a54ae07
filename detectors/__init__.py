"""Pure drift, data-quality and performance statistics, and the canary judge.

Arrays and reference profiles in, frozen results out: no I/O, clock, logging,
global random state or pandas. See docs/internals.md for the contract.

The canary judge (``judge(champion, challenger, JudgeSettings) -> CanaryVerdict``)
compares two ``ArmStats`` of the same interval; ``twosample`` holds its tests.
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
from detectors.canary import judge
from detectors.canary_results import (
    CHECKS,
    DEFAULT_CRITICAL,
    DEFAULT_WEIGHTS,
    CanaryVerdict,
    CheckResult,
    JudgeSettings,
)
from detectors.canary_stats import (
    ArmEstimate,
    ArmStats,
    Moments,
    histogram,
    judged_metric,
    row_loss,
)
from detectors.cbpe import (
    BAND_SIGMAS,
    CBPE_FORMAT_VERSION,
    CBPE_WINDOW_SIZES,
    CBPEReference,
    estimate_performance,
    fit_cbpe,
)
from detectors.drift import evaluate_drift, evaluate_feature, pvalue_thresholds
from detectors.estimation import (
    BINARY_METRICS,
    MULTICLASS_METRICS,
    ConfidenceCounts,
    Estimate,
    estimate,
)
from detectors.isotonic import IDENTITY_BINS, ScoreCalibration, fit_isotonic
from detectors.materiality import UNCALIBRATED_FLOOR, normal_shift_effects, share_move_effects
from detectors.numeric import ks, wasserstein_norm
from detectors.packing import PACK_VERSION, pack_bins, unpack_bins
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
    EstimatedPerformanceResult,
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
from detectors.summary import (
    MAX_UNSEEN,
    SUMMARY_PACKED_FORMAT,
    CategoricalCounts,
    NumericCounts,
    WindowSummary,
)
from detectors.twosample import Difference, normal_difference, two_proportions, welch

__all__ = [
    "BAND_SIGMAS",
    "BINARY_METRICS",
    "CATEGORICAL_METHODS",
    "CBPE_FORMAT_VERSION",
    "CBPE_WINDOW_SIZES",
    "CHECKS",
    "DEFAULT_CRITICAL",
    "DEFAULT_WEIGHTS",
    "DEFAULT_WINDOW_SIZES",
    "HIGHER_IS_BETTER",
    "IDENTITY_BINS",
    "MAX_UNSEEN",
    "METRICS",
    "MIN_EFFECT",
    "MULTICLASS_METRICS",
    "NUMERIC_METHODS",
    "PACK_VERSION",
    "PVALUE_METHODS",
    "SUMMARY_PACKED_FORMAT",
    "UNCALIBRATED_FLOOR",
    "ArmEstimate",
    "ArmStats",
    "CBPEReference",
    "Calibration",
    "CalibrationCurve",
    "CanaryVerdict",
    "CategoricalCounts",
    "CategoricalProfile",
    "CheckResult",
    "ConfidenceCounts",
    "DatasetDriftResult",
    "Difference",
    "DriftResult",
    "DriftSettings",
    "Estimate",
    "EstimatedPerformanceResult",
    "FeatureOverride",
    "FeatureProfile",
    "JudgeSettings",
    "Moments",
    "NumericCounts",
    "NumericProfile",
    "PerformanceResult",
    "QualityResult",
    "QualitySettings",
    "ScoreCalibration",
    "WindowSummary",
    "calibrate",
    "calibrate_max_drop",
    "chisquare",
    "drift_statistic",
    "estimate",
    "estimate_performance",
    "evaluate_drift",
    "evaluate_feature",
    "evaluate_performance",
    "evaluate_quality",
    "fit_cbpe",
    "fit_isotonic",
    "histogram",
    "jensenshannon",
    "judge",
    "judged_metric",
    "ks",
    "linf",
    "normal_difference",
    "normal_shift_effects",
    "pack_bins",
    "performance_metric",
    "profile_column",
    "profile_from_dict",
    "psi",
    "pvalue_thresholds",
    "row_loss",
    "share_move_effects",
    "skewed_bound",
    "two_proportions",
    "unpack_bins",
    "wasserstein_norm",
    "welch",
    "z_binary",
]
