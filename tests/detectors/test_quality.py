"""Data-quality checks: each violation is found, named in a sentence, and clean windows pass."""

from __future__ import annotations

import numpy as np
import pytest

from detectors import QualitySettings, WindowSummary, evaluate_quality, profile_column

RNG = np.random.default_rng(1)
AGE = RNG.normal(40, 10, size=5000)
AGE[:250] = np.nan  # 5% missing in the reference
PROFILES = {
    "age": profile_column(AGE, "numeric"),
    "city": profile_column(RNG.choice(np.array(["paris", "lyon"], dtype=object), 5000),
                           "categorical"),
    "income": profile_column(RNG.lognormal(10, 1, size=5000), "numeric"),
}


def _window(n: int = 1000, **columns: np.ndarray) -> WindowSummary:
    frame = {"age": RNG.normal(40, 10, size=n),
             "city": RNG.choice(np.array(["paris", "lyon"], dtype=object), n),
             "income": RNG.lognormal(10, 1, size=n)}
    frame.update(columns)
    s = WindowSummary.empty(PROFILES)
    s.add({k: v for k, v in frame.items() if v.size}, n)
    return s


def test_clean_window_has_no_violation() -> None:
    result = evaluate_quality(PROFILES, _window(), QualitySettings())
    assert result.status == "ok" and result.violations == []
    assert result.missing == {} and result.unseen_categories == {} and result.out_of_range == {}


def test_missing_ratio_rise_beyond_the_allowed_increase_is_reported() -> None:
    age = RNG.normal(40, 10, size=1000)
    age[:200] = np.nan  # 20% vs 5%: +0.15 > 0.10
    result = evaluate_quality(PROFILES, _window(age=age), QualitySettings())
    assert result.missing == {"age": pytest.approx(0.2)}
    assert result.status == "violation"
    assert result.violations == ["age: missing ratio 0.200 exceeds the reference 0.050 by "
                                 "more than 0.1"]
    age[:140] = RNG.normal(40, 10, size=140)  # 6%: within the allowance
    assert evaluate_quality(PROFILES, _window(age=age), QualitySettings()).missing == {}


def test_unseen_categories_are_listed_most_frequent_first() -> None:
    city = np.array(["paris"] * 990 + ["nice"] * 3 + ["brest"] * 7, dtype=object)
    result = evaluate_quality(PROFILES, _window(city=city), QualitySettings())
    assert result.unseen_categories == {"city": ["brest", "nice"]}
    assert result.violations == ["city: unseen categories brest, nice"]


def test_values_outside_the_reference_range_beyond_the_allowed_share() -> None:
    income = RNG.lognormal(10, 1, size=1000)
    income[:80] = -1.0  # 8% below the reference minimum
    result = evaluate_quality(PROFILES, _window(income=income), QualitySettings())
    assert result.out_of_range == {"income": pytest.approx(0.08)}
    assert result.violations[0].startswith("income: 8.0% of values outside the reference range")
    lenient = evaluate_quality(PROFILES, _window(income=income),
                               QualitySettings(max_out_of_range=0.1))
    assert lenient.out_of_range == {}


def test_missing_columns_and_type_violations_are_violations() -> None:
    s = _window(income=np.array([]))
    s.add_type_violations("age", 3)
    result = evaluate_quality(PROFILES, s, QualitySettings())
    assert result.missing_columns == ["income"]
    assert result.type_violations == {"age": 3}
    assert "column income is missing in 1000 of 1000 rows" in result.violations
    assert "age: 3 values of the wrong type in 1000 rows" in result.violations
    assert result.status == "violation"


def test_empty_window_is_inconclusive() -> None:
    result = evaluate_quality(PROFILES, WindowSummary.empty(PROFILES), QualitySettings())
    assert result.status == "inconclusive"


def test_extra_columns_are_reported_and_survive_merge_and_json() -> None:
    first, second = _window(500), _window(300)
    first.add_extra_columns(["coupon", "age"], 500)  # a profiled name is never extra
    second.add_extra_columns(["coupon"], 300)
    merged = first.merge(second)
    result = evaluate_quality(PROFILES, merged, QualitySettings())
    assert result.extra_columns == ["coupon"] and result.missing_columns == []
    assert "column coupon is not in the baseline (in 800 of 800 rows)" in result.violations
    assert result.status == "violation"
    back = WindowSummary.from_dict(merged.to_dict(), PROFILES)
    assert back.extra_rows == {"coupon": 800}
    older = {k: v for k, v in merged.to_dict().items() if k != "extra_rows"}
    assert WindowSummary.from_dict(older, PROFILES).extra_columns == []
    assert evaluate_quality(PROFILES, _window(), QualitySettings()).extra_columns == []
