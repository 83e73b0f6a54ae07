"""Data-quality checks of a window against the reference profiles.

>>> import numpy as np
>>> from detectors.profile import profile_column
>>> from detectors.settings import QualitySettings
>>> from detectors.summary import WindowSummary
>>> profiles = {"city": profile_column(np.array(["a", "b"], dtype=object), "categorical")}
>>> s = WindowSummary.empty(profiles)
>>> s.add({"city": np.array(["a", "z"], dtype=object)}, 2)
>>> evaluate_quality(profiles, s, QualitySettings()).unseen_categories
{'city': ['z']}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from detectors.profile import FeatureProfile, NumericProfile
from detectors.results import QualityResult
from detectors.settings import QualitySettings
from detectors.summary import CategoricalCounts, NumericCounts, WindowSummary

__all__ = ["evaluate_quality"]


def evaluate_quality(profiles: Mapping[str, FeatureProfile], summary: WindowSummary,
                     settings: QualitySettings) -> QualityResult:
    """Missing-ratio increase, unseen categories, out-of-range share, type violations,
    absent and extra columns. Ratios are over the window's rows (out-of-range: over
    present values)."""
    rows = summary.n_rows
    missing: dict[str, float] = {}
    unseen: dict[str, list[str]] = {}
    out_of_range: dict[str, float] = {}
    type_violations: dict[str, int] = {}
    violations: list[str] = []
    absent = set(summary.missing_columns)
    for feature in sorted(absent):
        violations.append(f"column {feature} is missing in {summary.absent_rows[feature]} "
                          f"of {rows} rows")
    extra = summary.extra_columns
    for name in extra:
        violations.append(f"column {name} is not in the baseline (in "
                          f"{summary.extra_rows[name]} of {rows} rows)")
    for feature, profile in profiles.items():
        counts: NumericCounts | CategoricalCounts = (
            summary.numeric[feature] if feature in summary.numeric
            else summary.categorical[feature])
        reference_ratio = profile.missing / profile.n if profile.n else 0.0
        ratio = counts.missing / rows if rows else 0.0
        if rows and ratio - reference_ratio > settings.max_missing_increase:
            missing[feature] = ratio
            if feature not in absent:
                violations.append(
                    f"{feature}: missing ratio {ratio:.3f} exceeds the reference "
                    f"{reference_ratio:.3f} by more than {settings.max_missing_increase:g}")
        if counts.type_violations:
            type_violations[feature] = counts.type_violations
            if counts.type_violations / max(rows, 1) > settings.max_type_violations:
                violations.append(f"{feature}: {counts.type_violations} values of the wrong "
                                  f"type in {rows} rows")
        if isinstance(counts, NumericCounts) and isinstance(profile, NumericProfile):
            present = counts.n_total
            share = (counts.below + counts.above) / present if present else 0.0
            if share > settings.max_out_of_range:
                out_of_range[feature] = share
                violations.append(
                    f"{feature}: {share:.1%} of values outside the reference range "
                    f"[{profile.edges[0]:g}, {profile.edges[-1]:g}] "
                    f"(allowed {settings.max_out_of_range:.1%})")
        elif isinstance(counts, CategoricalCounts) and (counts.unseen or counts.unseen_other):
            names = sorted(counts.unseen, key=lambda k: (-counts.unseen[k], k))
            unseen[feature] = names
            more = f" and {counts.unseen_other} more values" if counts.unseen_other else ""
            violations.append(f"{feature}: unseen categories {', '.join(names)}{more}")
    status: Literal["ok", "violation", "inconclusive"] = (
        "inconclusive" if rows == 0 else "violation" if violations else "ok")
    return QualityResult(missing=missing, unseen_categories=unseen, out_of_range=out_of_range,
                         type_violations=type_violations, missing_columns=sorted(absent),
                         violations=violations, status=status, extra_columns=extra)
