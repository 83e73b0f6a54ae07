"""The binary encoding of window summaries (checkpoints): exact round trips, compact sizes.

A restored window must evaluate to what it would have without the restart, so every
array and float comes back bit for bit (NaN, infinities, -0.0 and subnormal sums
included), whichever layout (dense or sparse) and dtypes the encoder picked.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from detectors import (
    PACK_VERSION,
    SUMMARY_PACKED_FORMAT,
    DriftSettings,
    WindowSummary,
    evaluate_drift,
    pack_bins,
    profile_column,
    unpack_bins,
)

HEADER = 16


def same_floats(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bit for bit (NaN == NaN, -0.0 != 0.0)."""
    return a.dtype == b.dtype == np.float64 and a.shape == b.shape and bool(
        np.array_equal(a.view(np.uint64), b.view(np.uint64)))


def same_float(a: float, b: float) -> bool:
    return struct.pack("<d", a) == struct.pack("<d", b)


# counts as a summary has them: mostly small, sometimes zero runs, sometimes huge
count_values = st.one_of(st.just(0), st.integers(0, 300), st.integers(0, 2**63 - 1))
any_float = st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True, width=64)


@st.composite
def bins(draw: Any, signed: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    n = draw(st.integers(0, 1500))
    density = draw(st.sampled_from([0.0, 0.01, 0.3, 1.0]))
    values = count_values if not signed else st.integers(-(2**63), 2**63 - 1)
    filled = draw(st.lists(st.tuples(st.integers(0, max(n - 1, 0)), values),
                           max_size=int(n * density) if n else 0))
    counts = np.zeros(n, np.int64)
    for i, value in filled:
        counts[i] = value
    if not draw(st.booleans()):
        return counts, None
    sums = np.zeros(n, np.float64)
    for i, value in draw(st.lists(st.tuples(st.integers(0, max(n - 1, 0)), any_float),
                                  max_size=int(n * density) if n else 0)):
        sums[i] = value
    return counts, sums


@settings(max_examples=300, deadline=None)
@given(bins())
@example((np.zeros(0, np.int64), None))
@example((np.zeros(5, np.int64), np.array([0.0, -0.0, 0.0, math.nan, 5e-324])))
@example((np.full(3, 2**63 - 1, np.int64), np.array([math.inf, -math.inf, 1.0])))
def test_bins_round_trip_exactly(data: tuple[np.ndarray, np.ndarray | None]) -> None:
    counts, sums = data
    blob = pack_bins(counts, sums)
    got_counts, got_sums = unpack_bins(blob)
    assert got_counts.dtype == np.int64 and np.array_equal(got_counts, counts)
    if sums is None:
        assert got_sums is None
    else:
        assert got_sums is not None and same_floats(got_sums, sums)
    # never larger than the dense layout in the widest dtype
    assert len(blob) <= HEADER + counts.size * (8 + (8 if sums is not None else 0))


@settings(max_examples=100, deadline=None)
@given(bins(signed=True))
def test_negative_counts_round_trip(data: tuple[np.ndarray, np.ndarray | None]) -> None:
    counts, sums = data
    got_counts, got_sums = unpack_bins(pack_bins(counts, sums))
    assert np.array_equal(got_counts, counts)
    assert (got_sums is None) == (sums is None)


@pytest.mark.parametrize("top", [255, 256, 2**16 - 1, 2**16, 2**32 - 1, 2**32, 2**63 - 1])
@pytest.mark.parametrize("gap", [1, 255, 256, 2**16 - 1, 2**16])
def test_dtype_boundaries(top: int, gap: int) -> None:
    """The largest count and the largest gap between stored bins at each dtype's edge."""
    counts, sums = np.zeros(gap + 2000, np.int64), np.zeros(gap + 2000)
    counts[[0, gap]] = [top, 1]
    sums[[0, gap]] = [0.5, -2.5]
    got_counts, got_sums = unpack_bins(pack_bins(counts, sums))
    assert np.array_equal(got_counts, counts)
    assert got_sums is not None and same_floats(got_sums, sums)
    dense = counts.copy()
    dense[:] = top
    assert np.array_equal(unpack_bins(pack_bins(dense))[0], dense)


def test_mostly_empty_bins_are_stored_sparse_and_full_ones_dense() -> None:
    counts, sums = np.zeros(1000, np.int64), np.zeros(1000)
    counts[[0, 10, 999]] = [1, 300, 2]
    sums[[0, 10, 999]] = [0.5, 3000.25, -1.0]
    # 3 bins: deltas (uint16: 989 > 255), counts (uint16: 300 > 255), sums
    assert len(pack_bins(counts, sums)) == HEADER + 3 * (2 + 2 + 8)
    full = np.arange(1000, dtype=np.int64) % 200 + 1
    assert len(pack_bins(full, np.ones(1000))) == HEADER + 1000 * (1 + 8)  # dense, uint8
    assert len(pack_bins(full)) == HEADER + 1000


def test_a_sum_without_a_count_is_kept() -> None:
    # -0.0 or a sum left by values that cancel: stored, though the bin's count is 0
    counts, sums = np.zeros(100, np.int64), np.zeros(100)
    sums[[3, 4]] = [-0.0, 1e-300]
    _, got = unpack_bins(pack_bins(counts, sums))
    assert got is not None and same_floats(got, sums)


@pytest.mark.parametrize("mutate", [
    lambda b: b"XYZ" + b[3:],  # magic
    lambda b: b[:3] + bytes([PACK_VERSION + 1]) + b[4:],  # a newer format
    lambda b: b[:-1],  # truncated
    lambda b: b + b"\0",  # trailing bytes
    lambda b: b[:5] + b"\x07" + b[6:],  # unknown count dtype
    lambda b: b[:8] + struct.pack("<I", 3) + b[12:],  # fewer bins than indices reach
])
def test_damaged_bins_are_refused(mutate: Any) -> None:
    counts = np.zeros(1000, np.int64)
    counts[[5, 900]] = [1, 2]
    blob = pack_bins(counts, np.where(counts > 0, 1.5, 0.0))
    with pytest.raises(ValueError, match="packed bins"):
        unpack_bins(mutate(blob))


def test_pack_refuses_what_it_cannot_store() -> None:
    with pytest.raises(ValueError, match="integer"):
        pack_bins(np.zeros(3))
    with pytest.raises(ValueError, match="shape"):
        pack_bins(np.zeros(3, np.int64), np.zeros(4))


# -- whole summaries ----------------------------------------------------------------------------
RNG = np.random.default_rng(3)
PROFILES = {
    "x": profile_column(RNG.normal(1000.0, 250.0, 20_000).round(6), "numeric"),
    "n": profile_column(RNG.integers(0, 30, 5_000).astype(float), "numeric"),
    "c": profile_column(RNG.choice(np.array(["a", "b", "c"], dtype=object), 5_000),
                        "categorical"),
}
finite = st.floats(-1e6, 1e6, allow_nan=False)


def assert_same_summary(got: WindowSummary, want: WindowSummary) -> None:
    assert (got.n_rows, got.absent_rows, got.extra_rows) == (
        want.n_rows, want.absent_rows, want.extra_rows)
    assert got.numeric.keys() == want.numeric.keys()
    for name, w in want.numeric.items():
        g = got.numeric[name]
        assert np.array_equal(g.counts, w.counts) and g.counts.dtype == np.int64
        assert (g.sums is None) == (w.sums is None)
        if w.sums is not None and g.sums is not None:
            assert same_floats(g.sums, w.sums)
        for field in ("below", "above", "missing", "type_violations"):
            assert getattr(g, field) == getattr(w, field), field
        for field in ("below_distance", "above_distance", "total", "total_squares", "min", "max"):
            assert same_float(getattr(g, field), getattr(w, field)), field
    for name, w in want.categorical.items():
        g = got.categorical[name]
        assert np.array_equal(g.counts, w.counts)
        assert (g.unseen, g.unseen_other, g.missing, g.type_violations) == (
            w.unseen, w.unseen_other, w.missing, w.type_violations)


@settings(max_examples=60, deadline=None)
@given(chunks=st.lists(st.lists(st.one_of(finite, st.just(math.nan),
                                          st.floats(500.0, 1500.0)), min_size=1, max_size=300),
                       max_size=4),
       categories=st.lists(st.sampled_from(["a", "b", "c", "new", None]), max_size=50))
def test_summary_round_trips_exactly_and_evaluates_the_same(
        chunks: list[list[float]], categories: list[str | None]) -> None:
    summary = WindowSummary.empty(PROFILES)
    for chunk in chunks:
        x = np.asarray(chunk)
        summary.add({"x": x, "n": np.floor(np.abs(x)) % 40,
                     "c": np.asarray((categories * len(chunk))[: len(chunk)] or ["a"] * len(chunk),
                                     dtype=object)}, len(chunk))
    summary.add_type_violations("x", 2)
    summary.add({"x": np.array([1.0])}, 1)  # n and c absent from a chunk
    summary.add_extra_columns(["extra"], 1)
    packed = summary.to_packed()
    assert packed["format"] == SUMMARY_PACKED_FORMAT
    restored = WindowSummary.from_packed(packed, PROFILES)
    assert_same_summary(restored, summary)
    want, got = evaluate_drift(PROFILES, summary, DriftSettings()), evaluate_drift(
        PROFILES, restored, DriftSettings())
    assert repr(got.to_dict()) == repr(want.to_dict())  # every float the same, NaN too


def test_a_packed_window_is_much_smaller_than_its_json_when_most_bins_are_empty() -> None:
    summary = WindowSummary.empty(PROFILES)
    summary.add({"x": RNG.normal(1000.0, 250.0, 50), "n": np.arange(50.0) % 30,
                 "c": np.array(["a"] * 50, dtype=object)}, 50)
    packed = summary.to_packed()["numeric"]["x"]["bins"]
    as_json = json.dumps(summary.to_dict()["numeric"]["x"])
    assert len(packed) * 10 < len(as_json)


def test_a_packed_summary_of_another_format_is_refused() -> None:
    packed = WindowSummary.empty(PROFILES).to_packed()
    with pytest.raises(ValueError, match="format"):
        WindowSummary.from_packed({**packed, "format": SUMMARY_PACKED_FORMAT + 1}, PROFILES)
