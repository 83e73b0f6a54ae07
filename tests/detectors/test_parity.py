"""Parity of the binned statistics with scipy and Evidently 0.7 on the same arrays.

Tolerances: on counts (categories, coarse bins) the numbers are the same
computation, so 1e-9. Wasserstein and KS are computed from 1000 reference-quantile
bins, so against raw-data scipy they carry a binning error: Wasserstein within a
piecewise-linear CDF per bin (measured < 5e-4 of a std here; asserted within
2e-3), KS D within the largest fine-bin share (~0.001 per sample; asserted within
3e-3) and its asymptotic p-value within 0.05 absolute (against scipy's and
Evidently's ``ks`` alike). On integer data whose values are all bin edges both
are exact (1e-9). Numeric PSI and Jensen-Shannon are measured on the reference's
coarse quantile bins, not Evidently's Sturges bins over both samples, so their
parity with Evidently's ``psi`` / ``jensenshannon`` is on the same bin
assignments (each value's coarse bin, given to Evidently as a category): 1e-9.
L-infinity has no Evidently stattest; scipy's Chebyshev distance on the shares
is the same computation (1e-12).

KS p-values are also compared where they carry information, between 1e-3 and 0.5:
equal to scipy's asymptotic ones (1e-9 relative) on integer data, and on
continuous data inside the bracket that the binning error of D allows (and
within 25% relative of scipy's and Evidently's). Bounds, with hypothesis:
Jensen-Shannon distance (natural log) in [0, sqrt(ln 2)], reached by disjoint
supports; L-infinity in [0, 1]; PSI, Wasserstein >= 0; KS D and p in [0, 1].
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from evidently.legacy.calculations.stattests.chisquare_stattest import _chi_stat_test
from evidently.legacy.calculations.stattests.jensenshannon import _jensenshannon
from evidently.legacy.calculations.stattests.ks_stattest import _ks_stat_test
from evidently.legacy.calculations.stattests.psi import _psi
from evidently.legacy.calculations.stattests.wasserstein_distance_norm import (
    _wasserstein_distance_norm,
)
from evidently.legacy.calculations.stattests.z_stattest import _z_stat_test
from evidently.legacy.core import ColumnType
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import chebyshev
from scipy.spatial.distance import jensenshannon as scipy_js

from detectors import (
    NumericProfile,
    WindowSummary,
    drift_statistic,
    jensenshannon,
    ks,
    linf,
    profile_column,
    psi,
    wasserstein_norm,
)


def _numeric(ref: np.ndarray, cur: np.ndarray) -> tuple[NumericProfile, WindowSummary]:
    p = profile_column(ref, "numeric")
    assert isinstance(p, NumericProfile)
    s = WindowSummary.empty({"x": p})
    s.add({"x": cur}, cur.size)
    return p, s


def _categorical(ref: np.ndarray, cur: np.ndarray) -> WindowSummary:
    p = profile_column(ref, "categorical")
    s = WindowSummary.empty({"c": p})
    s.add({"c": cur}, cur.size)
    return s


CASES = [  # (reference, current): same, shifted, scaled, beyond the range, skewed
    (0, 0.0, 1.0, 5000), (1, 0.3, 1.0, 3000), (2, 0.0, 2.0, 20_000), (3, 4.0, 1.0, 1000),
    (4, -0.05, 1.0, 50_000),
]


@pytest.mark.parametrize(("seed", "shift", "scale", "m"), CASES)
def test_wasserstein_matches_scipy_and_evidently_on_raw_data(seed: int, shift: float,
                                                             scale: float, m: int) -> None:
    rng = np.random.default_rng(seed)
    ref = rng.gamma(2.0, 3.0, size=30_000)
    cur = rng.gamma(2.0, 3.0, size=m) * scale + shift * ref.std()
    p, s = _numeric(ref, cur)
    ours = wasserstein_norm(p, p.counts, s.numeric["x"])
    assert ours == pytest.approx(stats.wasserstein_distance(ref, cur) / ref.std(), abs=2e-3)
    evidently_value, _ = _wasserstein_distance_norm(pd.Series(ref), pd.Series(cur),
                                                    ColumnType.Numerical, 0.1)
    assert ours == pytest.approx(evidently_value, abs=2e-3)


@pytest.mark.parametrize(("seed", "shift", "scale", "m"), CASES)
def test_ks_matches_scipy_asymptotic_on_raw_data(seed: int, shift: float, scale: float,
                                                 m: int) -> None:
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=30_000)
    cur = rng.normal(size=m) * scale + shift
    p, s = _numeric(ref, cur)
    d, p_value = ks(p, p.counts, s.numeric["x"])
    expected = stats.ks_2samp(ref, cur, method="asymp")
    assert d == pytest.approx(expected.statistic, abs=3e-3)
    assert p_value == pytest.approx(expected.pvalue, abs=0.05)
    en = round(30_000 * m / (30_000 + m))
    assert p_value == pytest.approx(stats.kstwo.sf(d, en), rel=1e-12)
    evidently_p, _ = _ks_stat_test(pd.Series(ref), pd.Series(cur), ColumnType.Numerical, 0.05)
    assert p_value == pytest.approx(evidently_p, abs=0.05)
    assert (p_value < 0.05) == (evidently_p < 0.05)


def test_wasserstein_and_ks_are_exact_on_integer_data() -> None:
    rng = np.random.default_rng(11)
    ref = rng.integers(0, 40, size=20_000).astype(float)
    cur = rng.integers(-3, 45, size=4000).astype(float)  # tails on both sides
    p, s = _numeric(ref, cur)
    assert p.integer
    w = wasserstein_norm(p, p.counts, s.numeric["x"])
    assert w == pytest.approx(stats.wasserstein_distance(ref, cur) / ref.std(), rel=1e-9)
    d, p_value = ks(p, p.counts, s.numeric["x"])
    expected = stats.ks_2samp(ref, cur, method="asymp")
    assert d == pytest.approx(expected.statistic, rel=1e-9)
    assert p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


def test_numeric_psi_and_js_equal_scipy_on_the_coarse_quantile_bins() -> None:
    rng = np.random.default_rng(5)
    ref = rng.lognormal(size=20_000)
    cur = rng.lognormal(0.2, size=7000)
    p, s = _numeric(ref, cur)
    inner = p.edges[p.coarse[1:-1]]
    r = np.bincount(np.searchsorted(inner, ref, side="right"), minlength=inner.size + 1)
    c = np.bincount(np.searchsorted(inner, cur, side="right"), minlength=inner.size + 1)
    rs, cs = r / r.sum(), c / c.sum()
    js, _ = drift_statistic(p, s.numeric["x"], "jensenshannon")
    assert js == pytest.approx(scipy_js(rs, cs), abs=1e-9)
    psi_value, _ = drift_statistic(p, s.numeric["x"], "psi")
    assert psi_value == pytest.approx(float(np.sum((rs - cs) * np.log(rs / cs))), abs=1e-9)
    # Evidently's own functions on the same bins: each value's coarse bin as a category
    ref_bins = pd.Series(np.searchsorted(inner, ref, side="right"))
    cur_bins = pd.Series(np.searchsorted(inner, cur, side="right"))
    evidently_js, _ = _jensenshannon(ref_bins, cur_bins, ColumnType.Categorical, 0.1)
    evidently_psi, _ = _psi(ref_bins, cur_bins, ColumnType.Categorical, 0.1)
    assert js == pytest.approx(evidently_js, abs=1e-9)
    assert psi_value == pytest.approx(evidently_psi, abs=1e-9)
    assert psi_value > 0.01  # a real difference, so the parity is not 0 == 0


REF_CAT = np.random.default_rng(3).choice(np.array(list("abcde"), dtype=object), size=8000,
                                          p=[0.4, 0.3, 0.15, 0.1, 0.05])
CUR_CATS = {
    "same": np.random.default_rng(4).choice(np.array(list("abcde"), dtype=object), size=3000,
                                            p=[0.4, 0.3, 0.15, 0.1, 0.05]),
    "shifted": np.random.default_rng(4).choice(np.array(list("abcde"), dtype=object),
                                               size=3000, p=[0.2, 0.3, 0.25, 0.2, 0.05]),
    "unseen": np.random.default_rng(4).choice(np.array(list("abcfg"), dtype=object), size=3000,
                                              p=[0.4, 0.3, 0.15, 0.1, 0.05]),
}


@pytest.mark.parametrize("case", sorted(CUR_CATS))
# Evidently hands scipy zero expected counts for unseen categories (inf statistic, p = 0)
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_categorical_js_psi_chisquare_match_evidently_and_scipy(case: str) -> None:
    cur = CUR_CATS[case]
    s = _categorical(REF_CAT, cur)
    p = s.profiles["c"]
    window = s.categorical["c"]
    ref_s, cur_s = pd.Series(REF_CAT), pd.Series(cur)
    js, _ = drift_statistic(p, window, "jensenshannon")
    assert js == pytest.approx(_jensenshannon(ref_s, cur_s, ColumnType.Categorical, 0.1)[0],
                               abs=1e-9)
    psi_value, _ = drift_statistic(p, window, "psi")
    assert psi_value == pytest.approx(_psi(ref_s, cur_s, ColumnType.Categorical, 0.1)[0],
                                      abs=1e-9)
    _, p_value = drift_statistic(p, window, "chisquare")
    assert p_value == pytest.approx(_chi_stat_test(ref_s, cur_s, ColumnType.Categorical,
                                                   0.05)[0], abs=1e-9)
    keys = sorted(set(REF_CAT) | set(cur))
    ref_counts, cur_counts = Counter(REF_CAT.tolist()), Counter(cur.tolist())
    r = np.array([ref_counts[k] for k in keys]) / REF_CAT.size
    c = np.array([cur_counts[k] for k in keys]) / cur.size
    assert js == pytest.approx(scipy_js(r, c), abs=1e-9)
    linf_value, _ = drift_statistic(p, window, "linf")
    assert linf_value == pytest.approx(chebyshev(r, c), abs=1e-12)
    if case != "unseen":
        chi = stats.chisquare(c * cur.size, r * cur.size)
        assert drift_statistic(p, window, "chisquare") == pytest.approx(
            (chi.statistic, chi.pvalue), abs=1e-9)


@pytest.mark.parametrize("share", [0.3, 0.33, 0.4])
def test_z_test_matches_evidently_on_binary_data(share: float) -> None:
    rng = np.random.default_rng(9)
    ref = np.where(rng.random(5000) < 0.3, "true", "false").astype(object)
    cur = np.where(rng.random(2000) < share, "true", "false").astype(object)
    s = _categorical(ref, cur)
    _, p_value = drift_statistic(s.profiles["c"], s.categorical["c"], "z")
    expected = _z_stat_test(pd.Series(ref), pd.Series(cur), ColumnType.Categorical, 0.05)[0]
    assert p_value == pytest.approx(expected, abs=1e-9)


def _ks_case(seed: int, shift: float, m: int, integral: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=30_000)
    cur = rng.normal(size=m) + shift
    if integral:  # integer values are all bin edges: binned D is the exact D
        return np.round(ref * 4.0), np.round(cur * 4.0)
    return ref, cur


def _mid_range_ks_cases(integral: bool) -> list[tuple[int, float, int]]:
    """Seeded cases whose asymptotic p-value lies between 1e-3 and 0.5, where a wrong D or a
    wrong effective sample size shows (near 0 and 1 nearly any D agrees): three per decade
    [1e-3, 1e-2), [1e-2, 0.1), [0.1, 0.5]."""
    picked: dict[int, list[tuple[int, float, int]]] = {0: [], 1: [], 2: []}
    for seed in range(60):
        for shift, m in ((0.03, 2000), (0.06, 2000), (0.1, 1000), (0.15, 500), (0.02, 20_000)):
            ref, cur = _ks_case(seed, shift, m, integral)
            p_value = stats.ks_2samp(ref, cur, method="asymp").pvalue
            if 1e-3 <= p_value <= 0.5:
                decade = 0 if p_value < 1e-2 else 1 if p_value < 0.1 else 2
                if len(picked[decade]) < 3:
                    picked[decade].append((seed, shift, m))
        if all(len(v) == 3 for v in picked.values()):
            break
    return [case for cases in picked.values() for case in cases]


@pytest.mark.parametrize(("seed", "shift", "m"), _mid_range_ks_cases(integral=True))
def test_ks_p_values_between_1e3_and_half_equal_scipy_on_integer_data(seed: int, shift: float,
                                                                      m: int) -> None:
    ref, cur = _ks_case(seed, shift, m, integral=True)
    p, s = _numeric(ref, cur)
    d, p_value = ks(p, p.counts, s.numeric["x"])
    expected = stats.ks_2samp(ref, cur, method="asymp")
    assert 1e-3 <= expected.pvalue <= 0.5, expected.pvalue
    assert d == pytest.approx(expected.statistic, rel=1e-9)
    assert p_value == pytest.approx(expected.pvalue, rel=1e-9)


@pytest.mark.parametrize(("seed", "shift", "m"), _mid_range_ks_cases(integral=False))
def test_ks_p_values_between_1e3_and_half_track_scipy_on_continuous_data(
        seed: int, shift: float, m: int) -> None:
    ref, cur = _ks_case(seed, shift, m, integral=False)
    p, s = _numeric(ref, cur)
    d, p_value = ks(p, p.counts, s.numeric["x"])
    expected = stats.ks_2samp(ref, cur, method="asymp")
    assert 1e-3 <= expected.pvalue <= 0.5, expected.pvalue
    # D read at the fine edges misses at most one fine bin of either sample, so the exact
    # D lies in [d, d + slack] and the p-values in the matching bracket (relative, not 0.05)
    window = s.numeric["x"]
    slack = float(np.max(p.counts) / p.counts.sum() + np.max(window.counts) / window.n_total)
    en = round(ref.size * m / (ref.size + m))
    assert d <= expected.statistic + 1e-12 and expected.statistic <= d + slack
    assert stats.kstwo.sf(d + slack, en) <= expected.pvalue <= p_value
    assert p_value == pytest.approx(expected.pvalue, rel=0.25)
    evidently_p, _ = _ks_stat_test(pd.Series(ref), pd.Series(cur), ColumnType.Numerical, 0.05)
    assert p_value == pytest.approx(evidently_p, rel=0.25)


JS_MAX = math.sqrt(math.log(2.0))  # natural-log Jensen-Shannon distance of disjoint supports
count_vectors = st.lists(st.integers(0, 10_000), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(count_vectors, st.data())
def test_binned_distances_stay_within_their_bounds(a: list[int], data: st.DataObject) -> None:
    b = data.draw(st.lists(st.integers(0, 10_000), min_size=len(a), max_size=len(a)))
    ra, rb = np.array(a), np.array(b)
    if ra.sum() == 0 or rb.sum() == 0:
        return
    assert 0.0 <= jensenshannon(ra, rb) <= JS_MAX + 1e-12
    assert 0.0 <= linf(ra, rb) <= 1.0
    assert psi(ra, rb) >= 0.0
    disjoint_a, disjoint_b = np.append(ra, 0), np.append(np.zeros_like(rb), rb.sum())
    assert jensenshannon(disjoint_a, disjoint_b) == pytest.approx(JS_MAX, rel=1e-12)
    assert linf(disjoint_a, disjoint_b) == 1.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(list("abcdefg")), min_size=1, max_size=300),
       st.lists(st.sampled_from(list("abcdefghijk")), min_size=1, max_size=300))
def test_categorical_statistics_stay_within_bounds_with_unseen_categories(
        ref: list[str], cur: list[str]) -> None:
    s = _categorical(np.array(ref, dtype=object), np.array(cur, dtype=object))
    p, window = s.profiles["c"], s.categorical["c"]
    assert 0.0 <= drift_statistic(p, window, "jensenshannon")[0] <= JS_MAX + 1e-12
    assert 0.0 <= drift_statistic(p, window, "linf")[0] <= 1.0
    assert drift_statistic(p, window, "psi")[0] >= 0.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=2, max_size=300),
       st.lists(st.floats(-2e3, 2e3, allow_nan=False), min_size=1, max_size=300))
def test_numeric_statistics_stay_within_bounds_beyond_the_reference_range(
        ref: list[float], cur: list[float]) -> None:
    p, s = _numeric(np.array(ref), np.array(cur))
    window = s.numeric["x"]
    assert 0.0 <= drift_statistic(p, window, "jensenshannon")[0] <= JS_MAX + 1e-12
    assert drift_statistic(p, window, "psi")[0] >= 0.0
    assert drift_statistic(p, window, "wasserstein")[0] >= 0.0
    d, p_value = drift_statistic(p, window, "ks")
    assert 0.0 <= d <= 1.0 and p_value is not None and 0.0 <= p_value <= 1.0
