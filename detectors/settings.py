"""Settings of the drift and quality checks (plain frozen values, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from detectors.materiality import MIN_EFFECT

__all__ = [
    "CATEGORICAL_METHODS",
    "MIN_EFFECT",
    "NUMERIC_METHODS",
    "PVALUE_METHODS",
    "DriftSettings",
    "FeatureOverride",
    "QualitySettings",
]

NUMERIC_METHODS = ("wasserstein", "ks", "psi", "jensenshannon")
CATEGORICAL_METHODS = ("jensenshannon", "chisquare", "linf", "psi", "z")
PVALUE_METHODS = frozenset({"ks", "chisquare", "z"})

Threshold = float | Literal["auto"]
Correction = Literal["bonferroni", "fdr", "none"]


@dataclass(frozen=True)
class FeatureOverride:
    """One feature's departures from the defaults; None keeps the default."""

    method: str | None = None
    threshold: Threshold | None = None
    min_effect: float | None = None


OverrideValue = (FeatureOverride | tuple[str | None, Threshold | None]
                 | tuple[str | None, Threshold | None, float | None])


def _check_min_effect(where: str, value: float) -> None:
    if not value >= 0.0:  # also rejects NaN
        raise ValueError(f"{where}: got {value}, expected a non-negative effect size")


@dataclass(frozen=True)
class DriftSettings:
    """How features are tested.

    ``threshold`` applies to distances; "auto" means max(calibrated bound at the window's
    size, min_effect), where ``min_effect`` maps a distance method to its materiality
    bound (missing methods keep ``MIN_EFFECT``'s, see ``detectors.materiality``).
    Without a calibration for the feature, "auto" is max(min_effect, the legacy 0.1).
    An explicit ``threshold`` is used as is. p-value methods use ``alpha`` corrected
    for the number of tested features, unless a feature override gives an explicit
    threshold, which is used as is. ``overrides`` maps a feature to a ``FeatureOverride``
    (plain (method, threshold) or (method, threshold, min_effect) tuples are accepted
    and converted).
    """

    numeric_method: str = "wasserstein"
    categorical_method: str = "jensenshannon"
    threshold: Threshold = "auto"
    alpha: float = 0.05
    correction: Correction = "bonferroni"
    share: float = 0.5
    min_rows: int = 100
    overrides: Mapping[str, OverrideValue] = field(default_factory=dict)
    min_effect: Mapping[str, float] = field(default_factory=dict)

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
        for method, value in self.min_effect.items():
            if method not in MIN_EFFECT:
                raise ValueError(f"drift min_effect: got method {method!r}, expected a "
                                 f"distance method: {', '.join(MIN_EFFECT)}")
            _check_min_effect(f"drift min_effect.{method}", value)
        normalized = {}
        for feature, override in self.overrides.items():
            if not isinstance(override, FeatureOverride):
                override = FeatureOverride(*override)
            if override.min_effect is not None:
                _check_min_effect(f"drift features.{feature}.min_effect", override.min_effect)
            normalized[feature] = override
        # frozen: the one normalization of the overrides happens here, before any use
        object.__setattr__(self, "overrides", normalized)

    def override(self, feature: str) -> FeatureOverride:
        found = self.overrides.get(feature)
        return found if isinstance(found, FeatureOverride) else FeatureOverride()

    def effect_floor(self, feature: str, method: str) -> float:
        """The materiality bound of ``method`` for ``feature``: the feature's override, else
        the settings' ``min_effect`` for the method, else ``MIN_EFFECT``."""
        own = self.override(feature).min_effect
        if own is not None:
            return own
        return float(self.min_effect.get(method, MIN_EFFECT[method]))

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
