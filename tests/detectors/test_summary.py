"""Profiles and window summaries: bin contract, exact counts, merge, JSON round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors import (
    MAX_UNSEEN,
    CategoricalProfile,
    NumericProfile,
    WindowSummary,
    profile_column,
    profile_from_dict,
)

RNG = np.random.default_rng(7)
REF_NUM = RNG.normal(10.0, 2.0, size=20_000)
REF_NUM[::50] = np.nan
REF_CAT = RNG.choice(np.array(["a", "b", "c", None], dtype=object), size=5_000,
                     p=[0.5, 0.3, 0.15, 0.05])
PROFILES = {"x": profile_column(REF_NUM, "numeric"), "c": profile_column(REF_CAT, "categorical")}


def test_numeric_profile_edges_follow_the_contract() -> None:
    p = PROFILES["x"]
    assert isinstance(p, NumericProfile)
    present = REF_NUM[~np.isnan(REF_NUM)]
    assert (p.n, p.missing, p.n_values) == (20_000, 400, present.size)
    assert p.edges[0] == present.min() and p.edges[-1] == p.edges[-2] == present.max()
    assert np.all(np.diff(p.edges[:-1]) > 0)
    assert p.edges.size <= 1002 and p.counts.size == p.edges.size - 1
    assert int(p.counts.sum()) == present.size and p.counts[-1] == 1
    assert p.coarse[0] == 0 and p.coarse[-1] == p.counts.size and p.coarse.size == 11
    assert not p.integer
    assert p.mean == pytest.approx(present.mean()) and p.std == pytest.approx(present.std())


def test_constant_and_integer_columns_get_degenerate_and_value_edges() -> None:
    constant = profile_column(np.full(10, 3.0), "numeric")
    assert isinstance(constant, NumericProfile)
    assert constant.edges.tolist() == [3.0, 3.0] and constant.counts.tolist() == [10]
    ints = profile_column(RNG.integers(0, 20, size=5000).astype(float), "numeric")
    assert isinstance(ints, NumericProfile)
    assert ints.integer and ints.edges[:-1].tolist() == list(range(20))


def test_profile_column_rejects_empty_and_unknown_kind() -> None:
    with pytest.raises(ValueError, match="none has a value"):
        profile_column(np.array([np.nan, np.nan]), "numeric")
    with pytest.raises(ValueError, match="expected 'numeric' or 'categorical'"):
        profile_column(np.array([1.0]), "text")


def test_categorical_profile_orders_by_frequency_and_counts_missing() -> None:
    p = PROFILES["c"]
    assert isinstance(p, CategoricalProfile)
    assert p.categories == ["a", "b", "c"]
    assert int(p.counts.sum()) + p.missing == p.n == 5000


def test_profiles_round_trip_through_json() -> None:
    for p in PROFILES.values():
        back = profile_from_dict(json.loads(json.dumps(p.to_dict())))
        assert back.to_dict() == p.to_dict()


def test_numeric_window_counts_match_direct_counting_and_exact_tails() -> None:
    p = PROFILES["x"]
    assert isinstance(p, NumericProfile)
    values = np.concatenate([RNG.normal(11.0, 3.0, size=3000), [np.nan, p.max, p.min]])
    s = WindowSummary.empty(PROFILES)
    s.add({"x": values, "c": np.full(values.size, "a", dtype=object)}, values.size)
    w = s.numeric["x"]
    x = values[~np.isnan(values)]
    inside = x[(x >= p.min) & (x <= p.max)]
    expected = np.bincount(np.searchsorted(p.edges[1:-1], inside, side="right"),
                           minlength=p.counts.size)
    assert w.counts.tolist() == expected.tolist()
    assert (w.below, w.above, w.missing) == ((x < p.min).sum(), (x > p.max).sum(), 1)
    assert w.below_distance == pytest.approx((p.min - x[x < p.min]).sum(), rel=1e-12)
    assert w.above_distance == pytest.approx((x[x > p.max] - p.max).sum(), rel=1e-12)
    assert (w.min, w.max) == (x.min(), x.max())


def test_absent_columns_count_as_missing_and_are_listed() -> None:
    s = WindowSummary.empty(PROFILES)
    s.add({"x": np.array([1.0, 2.0])}, 2)
    s.add_type_violations("x", 1)
    assert s.missing_columns == ["c"] and s.categorical["c"].missing == 2
    assert s.numeric["x"].type_violations == 1
    with pytest.raises(ValueError, match="got 1 values, expected 2 rows"):
        s.add({"x": np.array([1.0]), "c": np.array(["a", "b"], dtype=object)}, 2)


def test_unseen_categories_are_capped_and_pooled() -> None:
    s = WindowSummary.empty(PROFILES)
    names = np.array([f"new{i}" for i in range(MAX_UNSEEN + 10)] + ["a", None, "new0"],
                     dtype=object)
    s.add({"x": np.zeros(names.size), "c": names}, names.size)
    c = s.categorical["c"]
    assert len(c.unseen) == MAX_UNSEEN and c.unseen["new0"] == 2
    assert c.unseen_other == 10 and c.missing == 1 and c.counts.tolist() == [1, 0, 0]
    assert c.n_values == names.size - 1


num_values = st.lists(st.one_of(st.floats(-10, 30, allow_nan=False), st.just(float("nan"))),
                      max_size=60)
cat_values = st.lists(st.sampled_from(["a", "b", "c", "zz", "yy", None]), max_size=60)


@settings(max_examples=60, deadline=None)
@given(num_values, num_values, cat_values, cat_values)
def test_merge_equals_summarizing_the_concatenation(xa: list[float], xb: list[float],
                                                    ca: list[str | None],
                                                    cb: list[str | None]) -> None:
    def summary(x: list[float], c: list[str | None]) -> WindowSummary:
        s = WindowSummary.empty(PROFILES)
        n = min(len(x), len(c))
        s.add({"x": np.array(x[:n], float), "c": np.array(c[:n], dtype=object)}, n)
        return s

    n_a, n_b = min(len(xa), len(ca)), min(len(xb), len(cb))
    merged = summary(xa, ca).merge(summary(xb, cb)).to_dict()
    whole = summary(xa[:n_a] + xb[:n_b], ca[:n_a] + cb[:n_b]).to_dict()
    for key in ("counts", "below", "above", "missing", "min", "max"):
        assert merged["numeric"]["x"][key] == whole["numeric"]["x"][key]
    for key in ("below_distance", "above_distance", "total", "total_squares", "sums"):
        assert merged["numeric"]["x"][key] == pytest.approx(whole["numeric"]["x"][key],
                                                            rel=1e-9, abs=1e-9)
    assert merged["categorical"] == whole["categorical"]
    assert merged["n_rows"] == whole["n_rows"]


def test_summary_round_trips_through_json() -> None:
    s = WindowSummary.empty(PROFILES)
    s.add({"x": RNG.normal(10, 5, size=500), "c": RNG.choice(
        np.array(["a", "q", None], dtype=object), size=500)}, 500)
    back = WindowSummary.from_dict(json.loads(json.dumps(s.to_dict())), PROFILES)
    assert back.to_dict() == s.to_dict()


def test_summary_size_does_not_grow_with_rows() -> None:
    s = WindowSummary.empty(PROFILES)
    sizes = []
    for _ in range(5):
        s.add({"x": RNG.normal(10, 3, size=20_000),
               "c": RNG.choice(np.array(["a", "b", "c"], dtype=object), size=20_000)}, 20_000)
        sizes.append(len(json.dumps(s.to_dict())))
    assert s.n_rows == 100_000
    assert max(sizes) - min(sizes) < 0.05 * min(sizes)
