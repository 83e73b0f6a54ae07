"""Settings of the drift and quality checks (plain frozen values, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "CATEGORICAL_METHODS",
    "MIN_EFFECT",
    "NUMERIC_METHODS",
    "PVALUE_METHODS",
    "DriftSettings",
    "QualitySettings",
]

NUMERIC_METHODS = ("wasserstein", "ks", "psi", "jensenshannon")
CATEGORICAL_METHODS = ("jensenshannon", "chisquare", "linf", "psi", "z")
PVALUE_METHODS = frozenset({"ks", "chisquare", "z"})

# Minimum effect a distance must reach to count as drift, whatever the window size.
# These are Evidently's fixed defaults, the numbers users already read as "material":
# Wasserstein 0.1 = a shift of a tenth of the reference standard deviation, JS 0.1 and
# PSI 0.1 (the usual "moderate shift" band), L-inf 0.1 = some category's share moved
# by 10 points. Calibration only raises a threshold above these, on small windows.
MIN_EFFECT: Mapping[str, float] = {
    "wasserstein": 0.1, "jensenshannon": 0.1, "psi": 0.1, "linf": 0.1,
}

Threshold = float | Literal["auto"]
Correction = Literal["bonferroni", "fdr", "none"]


@dataclass(frozen=True)
class DriftSettings:
    """How features are tested.

    ``threshold`` applies to distances; "auto" means max(calibrated bound, MIN_EFFECT)
    (MIN_EFFECT alone without a calibration). p-value methods use ``alpha`` corrected
    for the number of tested features, unless a feature override gives an explicit
    threshold, which is used as is. ``overrides`` maps a feature to (method or None,
    threshold or None).
    """

    numeric_method: str = "wasserstein"
    categorical_method: str = "jensenshannon"
    threshold: Threshold = "auto"
    alpha: float = 0.05
    correction: Correction = "bonferroni"
    share: float = 0.5
    min_rows: int = 100
    overrides: Mapping[str, tuple[str | None, Threshold | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.numeric_method not in NUMERIC_METHODS:
            raise ValueError(f"drift numeric_method: got {self.numeric_method!r}, "
                             f"expected one of {', '.join(NUMERIC_METHODS)}")
        if self.categorical_method not in CATEGORICAL_METHODS:
            raise ValueError(f"drift categorical_method: got {self.categorical_method!r}, "
                             f"expected one of {', '.join(CATEGORICAL_METHODS)}")
        if self.correction not in ("bonferroni", "fdr", "none"):
            raise ValueError(f"drift correction: got {self.correction!r}, "
                             "expected bonferroni, fdr or none")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"drift alpha: got {self.alpha}, expected 0 < alpha < 1")
        if not 0.0 < self.share <= 1.0:
            raise ValueError(f"drift share: got {self.share}, expected 0 < share <= 1")

    @classmethod
    def evidently(cls) -> DriftSettings:
        """Evidently 0.7's defaults for a reference above 1000 rows: Wasserstein (norm)
        and Jensen-Shannon at fixed 0.1, no correction, dataset drift at share 0.5."""
        return cls(threshold=0.1, correction="none", min_rows=1)


@dataclass(frozen=True)
class QualitySettings:
    max_missing_increase: float = 0.1
    max_out_of_range: float = 0.05
    max_type_violations: float = 0.0
