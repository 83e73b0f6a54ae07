"""Drift decisions: identical data, symmetry, calibrated false alarms, corrections, golden."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.stats import false_discovery_control

from detectors import (
    MIN_EFFECT,
    UNCALIBRATED_FLOOR,
    Calibration,
    DriftSettings,
    FeatureOverride,
    NumericProfile,
    WindowSummary,
    calibrate,
    drift_statistic,
    evaluate_drift,
    evaluate_feature,
    jensenshannon,
    linf,
    normal_shift_effects,
    profile_column,
    psi,
    pvalue_thresholds,
    share_move_effects,
    z_binary,
)
from detectors.calibration import tail_models

CATS = np.array(["a", "b", "c", "d"], dtype=object)


def _frame(rng: np.random.Generator, n: int, shifts: dict[str, float] | None = None,
           cat_p: tuple[float, ...] = (0.4, 0.3, 0.2, 0.1)) -> dict[str, np.ndarray]:
    shifts = shifts or {}
    frame = {f"x{i}": rng.normal(shifts.get(f"x{i}", 0.0), 1.0, size=n) for i in range(6)}
    frame["skewed"] = rng.exponential(2.0, size=n) + shifts.get("skewed", 0.0)
    frame["count"] = rng.poisson(3.0, size=n).astype(float)
    frame["city"] = rng.choice(CATS, size=n, p=list(cat_p))
    frame["flag"] = rng.choice(np.array(["false", "true"], dtype=object), size=n, p=[0.8, 0.2])
    return frame


def _profiles(frame: dict[str, np.ndarray]) -> dict:
    return {k: profile_column(v, "categorical" if v.dtype == object else "numeric")
            for k, v in frame.items()}


REFERENCE = _frame(np.random.default_rng(0), 20_000)
PROFILES = _profiles(REFERENCE)
CALIBRATION = calibrate(PROFILES, seed=1)


def _bound(feature: str, method: str, n: int) -> float:
    bound = CALIBRATION.bound(feature, method, n)
    assert bound is not None, (feature, method)
    return bound


def _summary(frame: dict[str, np.ndarray]) -> WindowSummary:
    s = WindowSummary.empty(PROFILES)
    s.add(frame, len(next(iter(frame.values()))))
    return s


def test_the_reference_itself_is_at_zero_distance_for_every_method() -> None:
    s = _summary(REFERENCE)
    for feature, profile in PROFILES.items():
        methods = (["wasserstein", "ks", "psi", "jensenshannon"] if profile.kind == "numeric"
                   else ["jensenshannon", "psi", "linf", "chisquare", "z"])
        for method in methods:
            window = s.numeric.get(feature) or s.categorical[feature]
            if method == "z" and len(profile.categories) > 2:
                continue
            statistic, p_value = drift_statistic(profile, window, method)
            assert statistic == pytest.approx(0.0, abs=1e-9), (feature, method)
            assert p_value is None or p_value == pytest.approx(1.0), (feature, method)


counts = st.lists(st.integers(0, 1000), min_size=2, max_size=12)


@settings(max_examples=100, deadline=None)
@given(counts, st.data())
def test_distances_are_symmetric_and_zero_on_identical_counts(a: list[int],
                                                               data: st.DataObject) -> None:
    b = data.draw(st.lists(st.integers(0, 1000), min_size=len(a), max_size=len(a)))
    ra, rb = np.array(a), np.array(b)
    if ra.sum() == 0 or rb.sum() == 0:
        return
    for f in (jensenshannon, psi, linf):
        assert f(ra, rb) == pytest.approx(f(rb, ra), abs=1e-12)
        assert f(ra, ra) == pytest.approx(0.0, abs=1e-12)
    pair_a, pair_b = np.array([a[0], sum(a) - a[0]]), np.array([b[0], sum(b) - b[0]])
    za, pa = z_binary(pair_a, pair_b)
    zb, pb = z_binary(pair_b, pair_a)
    assert za == pytest.approx(-zb) and pa == pytest.approx(pb)


def test_calibrated_bounds_shrink_with_window_size_and_round_trip() -> None:
    for feature in PROFILES:
        for method in CALIBRATION.curves[feature]:
            bounds = [_bound(feature, method, n) for n in (50, 100, 1000, 10**5, 10**7)]
            assert all(b > 0 for b in bounds)
            assert bounds == sorted(bounds, reverse=True), (feature, method, bounds)
    back = Calibration.from_dict(json.loads(json.dumps(CALIBRATION.to_dict())))
    assert back.bound("x0", "wasserstein", 777) == CALIBRATION.bound("x0", "wasserstein", 777)
    # beyond the grid the bound falls as 1/sqrt(n)
    assert _bound("x0", "psi", 4_000_000) == pytest.approx(_bound("x0", "psi", 1_000_000) / 2)


@pytest.mark.parametrize("method", ["wasserstein", "jensenshannon", "psi"])
def test_windows_from_the_reference_distribution_rarely_cross_the_calibrated_bound(
        method: str) -> None:
    # 200 fresh windows from the generating distribution (not resampled from the reference)
    # at sizes 100..3000. mean + 3 std of the null: Cantelli bounds the rate by 10% for any
    # distribution, and these right-skewed but light-tailed statistics sit near 1%; 5%
    # (10 of 200) is far above that and far below what an uncalibrated bound gives.
    rng = np.random.default_rng(42)
    profile = PROFILES["skewed"]
    alarms = 0
    for i in range(200):
        n = (100, 300, 1000, 3000)[i % 4]
        s = WindowSummary.empty({"skewed": profile})
        s.add({"skewed": rng.exponential(2.0, size=n)}, n)
        statistic, _ = drift_statistic(profile, s.numeric["skewed"], method)
        alarms += statistic >= _bound("skewed", method, n)
    assert alarms / 200 <= 0.05


def test_uncalibrated_small_windows_would_cry_wolf_where_calibrated_ones_do_not() -> None:
    # the calibration earns its place: at 100 rows a fixed 0.1 flags many null windows
    rng = np.random.default_rng(3)
    profile = PROFILES["x1"]
    fixed = calibrated = 0
    for _ in range(100):
        s = WindowSummary.empty({"x1": profile})
        s.add({"x1": rng.normal(size=100)}, 100)
        statistic, _ = drift_statistic(profile, s.numeric["x1"], "wasserstein")
        fixed += statistic >= UNCALIBRATED_FLOOR["wasserstein"]
        calibrated += statistic >= max(_bound("x1", "wasserstein", 100), 0.1)
    assert fixed >= 30 and calibrated <= 5


def test_golden_window_flags_shifted_features_only() -> None:
    shifted = _frame(np.random.default_rng(99), 5000, shifts={"x0": 0.5, "x1": -0.4,
                                                               "skewed": 1.0},
                     cat_p=(0.2, 0.3, 0.2, 0.3))
    result = evaluate_drift(PROFILES, _summary(shifted), DriftSettings(), CALIBRATION)
    assert {k for k, r in result.features.items() if r.drift} == {"x0", "x1", "skewed", "city"}
    assert result.n_features == 10 and result.drift_share == pytest.approx(0.4)
    assert not result.dataset_drift and result.status == "ok"
    wide = DriftSettings(numeric_method="ks", categorical_method="chisquare", share=0.3)
    result = evaluate_drift(PROFILES, _summary(shifted), wide, CALIBRATION)
    assert {k for k, r in result.features.items() if r.drift} == {"x0", "x1", "skewed", "city"}
    assert result.dataset_drift
    assert all(r.threshold == pytest.approx(0.05 / 10) for r in result.features.values())
    assert all(r.direction == "below" and r.p_value is not None
               for r in result.features.values())


def test_same_distribution_window_does_not_drift_under_any_default() -> None:
    window = _summary(_frame(np.random.default_rng(5), 5000))
    for s in (DriftSettings(), DriftSettings(numeric_method="ks", categorical_method="chisquare"),
              DriftSettings(numeric_method="psi", categorical_method="psi"),
              DriftSettings.evidently()):
        result = evaluate_drift(PROFILES, window, s, CALIBRATION)
        assert result.n_drifted == 0, (s, [r for r in result.features.values() if r.drift])


def test_small_windows_are_inconclusive_never_ok() -> None:
    window = _summary(_frame(np.random.default_rng(5), 50, shifts={"x0": 3.0}))
    result = evaluate_drift(PROFILES, window, DriftSettings(min_rows=100), CALIBRATION)
    assert {r.status for r in result.features.values()} == {"inconclusive"}
    assert result.status == "inconclusive" and not result.dataset_drift
    assert result.features["x0"].statistic is not None
    empty = evaluate_drift(PROFILES, WindowSummary.empty(PROFILES), DriftSettings())
    assert empty.features["x0"].statistic is None and empty.status == "inconclusive"


def test_overrides_choose_method_and_threshold_per_feature() -> None:
    window = _summary(_frame(np.random.default_rng(5), 2000))
    s = DriftSettings(overrides={"x0": ("ks", None), "x1": (None, 1e-6), "city": ("linf", None)})
    result = evaluate_drift(PROFILES, window, s, CALIBRATION)
    assert result.features["x0"].method == "ks" and result.features["x0"].direction == "below"
    assert result.features["x1"].threshold == 1e-6 and result.features["x1"].drift
    assert result.features["city"].method == "linf"
    with pytest.raises(ValueError, match="numeric feature: got method 'linf'"):
        evaluate_drift(PROFILES, window, DriftSettings(overrides={"x0": ("linf", None)}))


def test_auto_threshold_is_the_larger_of_calibration_and_minimum_effect() -> None:
    small = _summary(_frame(np.random.default_rng(8), 150))
    large = _summary(_frame(np.random.default_rng(8), 50_000))
    r_small = evaluate_drift(PROFILES, small, DriftSettings(), CALIBRATION).features["x2"]
    r_large = evaluate_drift(PROFILES, large, DriftSettings(), CALIBRATION).features["x2"]
    assert r_small.threshold == pytest.approx(_bound("x2", "wasserstein", 150))
    assert r_small.threshold > MIN_EFFECT["wasserstein"]
    assert r_large.threshold == MIN_EFFECT["wasserstein"]
    fixed = evaluate_drift(PROFILES, small, DriftSettings(threshold=0.05), CALIBRATION)
    assert fixed.features["x2"].threshold == 0.05


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=30), st.sampled_from([0.01, 0.05, 0.1]))
def test_fdr_cutoff_agrees_with_scipy_benjamini_hochberg(p_values: list[float],
                                                         alpha: float) -> None:
    named = {f"f{i}": p for i, p in enumerate(p_values)}
    cutoff = pvalue_thresholds(named, alpha, "fdr")
    ours = [named[k] < cutoff[k] for k in named]
    expected = (false_discovery_control(np.array(p_values)) <= alpha).tolist()
    assert ours == expected
    bonferroni = pvalue_thresholds(named, alpha, "bonferroni")
    assert set(bonferroni.values()) == {alpha / len(p_values)}


def test_calibrated_bounds_still_catch_a_material_shift() -> None:
    # guards against bounds that are merely huge: a 0.3-std shift at 300+ rows is caught
    rng = np.random.default_rng(11)
    profile = PROFILES["skewed"]
    caught = 0
    for i in range(60):
        n = (300, 1000, 3000)[i % 3]
        s = WindowSummary.empty({"skewed": profile})
        s.add({"skewed": rng.exponential(2.0, size=n) + 0.6}, n)
        statistic, _ = drift_statistic(profile, s.numeric["skewed"], "wasserstein")
        caught += statistic >= max(_bound("skewed", "wasserstein", n), 0.1)
    assert caught == 60


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=300),
       st.booleans())
def test_a_column_against_its_own_profile_has_zero_distance(values: list[float],
                                                            integral: bool) -> None:
    x = np.round(np.array(values)) if integral else np.array(values)
    profile = profile_column(x, "numeric")
    s = WindowSummary.empty({"x": profile})
    s.add({"x": x}, x.size)
    for method in ("wasserstein", "ks", "psi", "jensenshannon"):
        statistic, p_value = drift_statistic(profile, s.numeric["x"], method)
        assert statistic == pytest.approx(0.0, abs=1e-9), method
        assert p_value is None or p_value == pytest.approx(1.0)


def test_infinite_chisquare_statistic_serializes_as_null() -> None:
    window = _frame(np.random.default_rng(2), 500)
    window["city"][:5] = "zz"
    result = evaluate_drift(PROFILES, _summary(window),
                            DriftSettings(categorical_method="chisquare"))
    city = result.features["city"]
    assert city.drift and city.p_value == 0.0
    assert json.loads(json.dumps(city.to_dict()))["statistic"] is None


FAMILIES = ("normal", "exponential", "lognormal", "poisson", "categorical")


def _draw(rng: np.random.Generator, family: str, shape: float, n: int) -> np.ndarray:
    if family == "normal":
        return rng.normal(100.0 * shape, shape, size=n)
    if family == "exponential":
        return rng.exponential(shape, size=n)
    if family == "lognormal":  # shape 2 is a heavy tail: new windows go past the maximum
        return rng.lognormal(0.0, shape, size=n)
    if family == "poisson":
        return rng.poisson(2.0 * shape, size=n).astype(float)
    weights = np.arange(1, 9) ** shape  # 8 categories, the rarest 0.5% at shape 2
    return rng.choice(np.array([f"c{i}" for i in range(8)], dtype=object), size=n,
                      p=weights / weights.sum())


@settings(max_examples=25, deadline=None, derandomize=True)
@given(family=st.sampled_from(FAMILIES), shape=st.floats(0.3, 2.0),
       n=st.sampled_from([100, 300, 1000, 3000]), method_index=st.integers(0, 2),
       seed=st.integers(0, 2**16))
@example(family="lognormal", shape=2.0, n=1000, method_index=0, seed=0)
@example(family="lognormal", shape=2.0, n=300, method_index=0, seed=4)
@example(family="categorical", shape=2.0, n=100, method_index=1, seed=2)
def test_null_windows_cross_the_calibrated_bound_at_most_at_the_nominal_rate(
        family: str, shape: float, n: int, method_index: int, seed: int) -> None:
    # the bound lies above mean + 3 std of the null statistic (a gamma's upper tail is
    # heavier than a normal's): Cantelli bounds the false-alarm rate by 1/10 (the nominal
    # rate) for any distribution of the statistic; light tails sit below 1%. Fresh
    # windows from the generating distribution (not resamples of the reference), at the raw
    # calibrated bound (no min_effect floor).
    rng = np.random.default_rng(seed)
    kind = "categorical" if family == "categorical" else "numeric"
    profile = profile_column(_draw(rng, family, shape, 5000), kind)
    method = (("wasserstein", "psi", "jensenshannon") if kind == "numeric"
              else ("jensenshannon", "psi", "linf"))[method_index]
    bound = calibrate({"x": profile}, methods={"x": [method]}, seed=seed).bound("x", method, n)
    assert bound is not None
    alarms = 0
    for _ in range(200):
        s = WindowSummary.empty({"x": profile})
        s.add({"x": _draw(rng, family, shape, n)}, n)
        window = s.numeric.get("x") or s.categorical["x"]
        alarms += drift_statistic(profile, window, method)[0] >= bound
    # 30 of 200: the 99% binomial quantile at the nominal 10%. Before the calibration drew
    # values past the reference's range, the first example raised 41 (heavy tail).
    assert alarms <= 30, (family, shape, n, method, alarms)


def _numeric_profile(values: np.ndarray) -> NumericProfile:
    profile = profile_column(values, "numeric")
    assert isinstance(profile, NumericProfile)
    return profile


def test_tail_model_is_exponential_for_light_tails_and_heavier_for_heavy_ones() -> None:
    rng = np.random.default_rng(6)
    (low_shape, _), (high_shape, high_scale) = tail_models(
        _numeric_profile(rng.exponential(2.0, size=20_000)))
    assert low_shape == 0.0 and high_shape < 0.2
    # memoryless: the excess past the maximum has about the distribution's own scale
    assert high_scale == pytest.approx(2.0, rel=0.5)
    (low_shape, _), (high_shape, _) = tail_models(
        _numeric_profile(rng.lognormal(0.0, 2.0, size=20_000)))
    assert high_shape > 0.3 and low_shape < 0.2
    mirrored = tail_models(_numeric_profile(-rng.lognormal(0.0, 2.0, size=20_000)))
    assert mirrored[0][0] > 0.3 and mirrored[1][0] < 0.2
    assert tail_models(_numeric_profile(np.full(500, 3.0))) == ((0.0, 0.0), (0.0, 0.0))


def _shifted_window(profile: NumericProfile, n: int, shift_sd: float, seed: int) -> WindowSummary:
    s = WindowSummary.empty({"x0": profile})
    s.add({"x0": np.random.default_rng(seed).normal(shift_sd, 1.0, size=n)}, n)
    return s


def test_min_effect_keeps_a_shift_below_materiality_on_a_million_rows_quiet() -> None:
    # a 0.05-sd shift is certain at 1M rows (beyond the calibrated bound of this 20k-row
    # reference) and below the 0.075-sd materiality
    profile = PROFILES["x0"]
    assert isinstance(profile, NumericProfile)
    window = _shifted_window(profile, 1_000_000, 0.05, seed=12).numeric["x0"]
    statistic, _ = drift_statistic(profile, window, "wasserstein")
    assert statistic > _bound("x0", "wasserstein", 1_000_000)
    result = evaluate_feature("x0", profile, window, "wasserstein", calibration=CALIBRATION)
    assert result.status == "ok" and result.threshold == MIN_EFFECT["wasserstein"]


@pytest.mark.parametrize("seed", range(5))
def test_default_thresholds_catch_a_fifth_of_an_sd_at_a_few_thousand_rows(seed: int) -> None:
    profile = PROFILES["x0"]
    assert isinstance(profile, NumericProfile)
    window = _shifted_window(profile, 3000, 0.2, seed=seed)
    assert evaluate_drift({"x0": profile}, window, DriftSettings(), CALIBRATION).features[
        "x0"].drift


def test_min_effect_is_configurable_per_method_and_per_feature() -> None:
    large = _summary(_frame(np.random.default_rng(8), 50_000))
    settings = DriftSettings(min_effect={"wasserstein": 0.2, "jensenshannon": 0.08},
                             overrides={"x1": FeatureOverride(min_effect=0.3),
                                        "x2": ("psi", None, 0.02)})
    result = evaluate_drift(PROFILES, large, settings, CALIBRATION).features
    assert result["x0"].threshold == 0.2
    assert result["x1"].threshold == 0.3
    assert result["x2"].method == "psi" and result["x2"].threshold == 0.02
    assert result["city"].threshold == 0.08
    assert result["skewed"].threshold == 0.2
    # an explicit threshold is used as is, whatever the min_effect
    fixed = DriftSettings(threshold=0.01, min_effect={"wasserstein": 0.2})
    assert evaluate_drift(PROFILES, large, fixed, CALIBRATION).features["x0"].threshold == 0.01


def test_without_a_calibration_auto_keeps_the_legacy_floor_unless_min_effect_is_higher() -> None:
    window = _summary(_frame(np.random.default_rng(8), 5000))
    plain = evaluate_drift(PROFILES, window, DriftSettings()).features
    assert plain["x0"].threshold == UNCALIBRATED_FLOOR["wasserstein"] == 0.1
    higher = DriftSettings(min_effect={"wasserstein": 0.25})
    assert evaluate_drift(PROFILES, window, higher).features["x0"].threshold == 0.25


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"min_effect": {"ks": 0.1}}, "drift min_effect: got method 'ks', expected a distance"),
    ({"min_effect": {"psi": -0.1}}, r"drift min_effect.psi: got -0.1, expected a non-negative"),
    ({"overrides": {"x0": FeatureOverride(min_effect=float("nan"))}},
     "drift features.x0.min_effect: got nan, expected a non-negative"),
])
def test_invalid_min_effect_is_refused_with_the_key_and_value(kwargs: dict,
                                                              message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DriftSettings(**kwargs)


def test_default_min_effects_are_the_documented_changes_in_each_method_s_units() -> None:
    assert MIN_EFFECT["wasserstein"] == normal_shift_effects(0.075)["wasserstein"]
    categorical = share_move_effects(0.5, 0.07)
    for method in ("jensenshannon", "psi", "linf"):
        assert MIN_EFFECT[method] == pytest.approx(categorical[method], rel=0.02), method
    # the closed forms agree with the statistics measured on a profile and a window
    rng = np.random.default_rng(13)
    profile = profile_column(rng.normal(size=200_000), "numeric")
    s = WindowSummary.empty({"x": profile})
    s.add({"x": rng.normal(0.145, 1.0, size=2_000_000)}, 2_000_000)
    numeric = normal_shift_effects(0.145)
    for method in ("wasserstein", "jensenshannon", "psi"):
        measured, _ = drift_statistic(profile, s.numeric["x"], method)
        assert measured == pytest.approx(numeric[method], rel=0.1), method
    cats = np.array(["a", "b"], dtype=object)
    reference = profile_column(rng.choice(cats, size=200_000), "categorical")
    w = WindowSummary.empty({"c": reference})
    w.add({"c": rng.choice(np.array(["a", "b", "new"], dtype=object), size=1_000_000,
                           p=[0.4965, 0.4965, 0.007])}, 1_000_000)
    js, _ = drift_statistic(reference, w.categorical["c"], "jensenshannon")
    assert js == pytest.approx(share_move_effects(0.5, 0.0, new_category=0.007)[
        "jensenshannon"], rel=0.1)
