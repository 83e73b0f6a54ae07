"""ArmAccumulator: one interval's statistics per (model, version), as the judge reads them."""

from __future__ import annotations

import threading

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from detectors import ArmStats, Moments, histogram, row_loss
from monitor.baseline import build_baseline
from monitor.ingest import Prediction
from monitor.store import JoinedPair
from monitor.stream import ArmAccumulator, ArmSpec
from monitor.stream.arms import merged_arms, pack_arms, shipped_shares, unpack_arms

CLASSES = ArmSpec("accuracy", False, categories=("0", "1"))
MODEL = "m"


def predictions(version: str, values: list[object], latency: list[float | None] | None = None,
                model: str = "m") -> list[Prediction]:
    latency = latency or [None] * len(values)
    return [Prediction(model, version, f"{version}-{i}", 0, {}, v, latency_ms=lat)  # type: ignore[arg-type]
            for i, (v, lat) in enumerate(zip(values, latency, strict=True))]


def pair(version: str, prediction: object, label: object, score: float | None = None
         ) -> JoinedPair:
    return JoinedPair("m", "r", version, prediction, score, None, label, 0, 0)


def test_arms_count_predictions_bin_them_and_keep_latency_moments_per_version() -> None:
    arms = ArmAccumulator({"m": CLASSES})
    arms.add_predictions("m", "1", predictions("1", [0, 1, 1, "x"], [10.0, 12.0, None, 14.0]))
    arms.add_predictions("m", "2", predictions("2", [1, 1]))
    arms.add_predictions("m", "1", predictions("1", [0]))
    taken = arms.take("m")
    assert taken["1"] == ArmStats(5, 0, (2, 2, 1), Moments(), Moments.of(np.array([10, 12, 14.0])))
    assert taken["2"].n_events == 2 and taken["2"].prediction_counts == (0, 2, 0)


def test_arms_numeric_predictions_use_the_same_bins_as_detectors_histogram() -> None:
    edges = (0.0, 1.0, 2.5, 4.0)
    arms = ArmAccumulator({"m": ArmSpec("mae", True, edges=edges)})
    values = [-1.0, 0.5, 1.0, 3.9, 9.0, 2.0]
    arms.add_predictions("m", "1", predictions("1", values))
    got = arms.take("m")["1"].prediction_counts
    assert got == histogram(np.array(values), edges=edges) == (2, 2, 2)


def test_arms_loss_is_the_row_loss_of_the_metric_per_version() -> None:
    arms = ArmAccumulator({"m": CLASSES, "r": ArmSpec("rmse", True),
                           "l": ArmSpec("log_loss", False, categories=("0", "1"))})
    arms.add_pairs({"m": [pair("1", 1, 1), pair("1", 1, 0), pair("2", "0", 0.0)]})
    arms.add_pairs({"r": [JoinedPair("r", "a", "1", 2.0, None, None, 3.5, 0, 0),
                          JoinedPair("r", "b", "1", 1.0, None, None, "n/a", 0, 0)]})
    arms.add_pairs({"l": [JoinedPair("l", "a", "1", 1, 0.9, None, 1, 0, 0),
                          JoinedPair("l", "b", "1", 0, 0.2, None, "0", 0, 0),
                          JoinedPair("l", "c", "1", 0, None, None, 0, 0, 0)]})
    assert arms.take("m")["1"].loss == Moments(2, 1.0, 1.0)
    assert arms.take("m") == {}  # taken: a new interval
    assert arms.take("r")["1"].loss == Moments(1, 1.5, 2.25)  # the unreadable label is left out
    expected = Moments.of(row_loss("log_loss", np.array([1, 0]), None, np.array([0.9, 0.2])))
    assert arms.take("l")["1"].loss == pytest.approx(expected)


def test_arms_dead_letter_naming_a_version_counts_an_invalid_event_of_it() -> None:
    arms = ArmAccumulator({"m": CLASSES})
    arms.add_dead_letter(orjson.dumps({"model": "m", "version": 2, "features": "bad"}))
    arms.add_dead_letter(orjson.dumps({"model": "m", "version": "2"}), [("ce_id", b"1")])
    arms.add_dead_letter(b"not json")
    arms.add_dead_letter(orjson.dumps({"model": "other", "version": "2"}))
    arms.add_dead_letter(orjson.dumps({"model": "m", "version": True}))
    arms.add_dead_letter(orjson.dumps([1, 2]))
    assert arms.take("m") == {"2": ArmStats(1, 1)}


def test_arms_ignore_models_without_a_canary() -> None:
    arms = ArmAccumulator({"m": CLASSES})
    arms.add_predictions("other", "1", predictions("1", [1], model="other"))
    arms.add_pairs({"other": [pair("1", 1, 1)]})
    assert arms.take("other") == {} and arms.peek("m") == {}


def test_arms_peek_leaves_the_interval_running() -> None:
    arms = ArmAccumulator({"m": CLASSES})
    arms.add_predictions("m", "1", predictions("1", [1]))
    assert arms.peek("m")["1"].n_events == 1
    assert arms.take("m")["1"].n_events == 1


def test_arms_beyond_max_versions_are_counted_as_dropped_only() -> None:
    arms = ArmAccumulator({"m": CLASSES}, max_versions=2)
    for version in ("1", "2", "3", "4"):
        arms.add_predictions("m", version, predictions(version, [1, 0]))
    assert sorted(arms.take("m")) == ["1", "2"]
    assert arms.dropped == 4
    arms.add_predictions("m", "3", predictions("3", [1]))  # a new interval has room again
    assert sorted(arms.take("m")) == ["3"]


def test_arms_concurrent_feeding_and_taking_loses_no_event() -> None:
    arms = ArmAccumulator({"m": CLASSES})
    taken: list[int] = []
    stop = threading.Event()

    def feed() -> None:
        for _ in range(500):
            arms.add_predictions("m", "1", predictions("1", [1, 0]))

    def take() -> None:
        while not stop.is_set():
            taken.append(sum(a.n_events for a in arms.take("m").values()))

    feeders = [threading.Thread(target=feed) for _ in range(3)]
    taker = threading.Thread(target=take)
    taker.start()
    for thread in feeders:
        thread.start()
    for thread in feeders:
        thread.join()
    stop.set()
    taker.join()
    taken.append(sum(a.n_events for a in arms.take("m").values()))
    assert sum(taken) == 3 * 500 * 2


def test_arm_spec_of_a_baseline_bins_on_its_prediction_profile() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    frame = pd.DataFrame({"x": x, "y": x + rng.normal(size=400), "p": x * 1.5,
                          "c": np.where(x > 0, "yes", "no"), "t": np.where(x > 0.1, "yes", "no")})
    regression = build_baseline(frame[["x", "y", "p"]], "r", target="y", prediction="p")
    spec = ArmSpec.of(regression, "mae")
    assert spec.regression and spec.categories is None and spec.edges is not None
    assert spec.edges[0] == pytest.approx(float(frame["p"].min()))
    assert list(spec.edges) == sorted(set(spec.edges)) and spec.n_bins == len(spec.edges) - 1
    classes = build_baseline(frame[["x", "c", "t"]], "k", target="t", prediction="c")
    assert ArmSpec.of(classes, "accuracy").categories is not None
    assert set(ArmSpec.of(classes, "accuracy").categories or ()) == {"yes", "no"}
    unprofiled = build_baseline(frame[["x"]], "u")
    assert ArmSpec.of(unprofiled, "accuracy").n_bins == 0


# -- shares shipped to the model's owner (issue 15) ---------------------------------------------
_moments = st.builds(lambda n, t, q: Moments(n, t, q), st.integers(0, 10**6),
                     st.floats(-1e9, 1e9), st.floats(0, 1e12))
_stats = st.builds(lambda n, k, counts, loss, latency: ArmStats(n + k, k, tuple(counts), loss,
                                                                 latency),
                   st.integers(0, 10**6), st.integers(0, 100),
                   st.lists(st.integers(0, 10**6), min_size=3, max_size=3), _moments, _moments)


@given(st.dictionaries(st.sampled_from(["1", "2", "17"]), _stats, max_size=3))
def test_a_packed_share_reads_back_as_it_was(share: dict[str, ArmStats]) -> None:
    assert unpack_arms(pack_arms(share)) == share


@given(st.lists(st.dictionaries(st.sampled_from(["1", "2"]), _stats, max_size=2), max_size=4))
def test_shares_sum_per_version_as_one_accumulator_would(
        shares: list[dict[str, ArmStats]]) -> None:
    merged = merged_arms(MODEL, shipped_shares(MODEL, [pack_arms(s) for s in shares]))
    for version in {v for share in shares for v in share}:
        parts = [share[version] for share in shares if version in share]
        want = parts[0]
        for part in parts[1:]:
            want = want.merge(part)
        assert merged[version] == want


def test_a_share_that_cannot_be_read_or_merged_is_left_out() -> None:
    good = {"1": ArmStats(5, 0, (1, 2, 2))}
    other_bins = {"1": ArmStats(5, 0, (1, 4))}
    shares = shipped_shares(MODEL, [b"\x01junk", pack_arms(good), pack_arms(other_bins)])
    assert merged_arms(MODEL, shares) == good
