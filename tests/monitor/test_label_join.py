"""The columns of the label join: pair order and the performance window's categories."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from monitor.stream.label_join import JoinedPairs
from monitor.stream.performance import _categories
from monitor.tables import canonical_category


@given(st.lists(st.tuples(st.integers(0, 5), st.sampled_from(["a", "b", "c", "d"])),
                unique_by=lambda row: row[1]))
def test_pairs_come_in_prediction_time_then_request_id_order(rows: list[tuple[int, str]]
                                                             ) -> None:
    pairs = JoinedPairs("m")
    for stamp, rid in rows:
        pairs.append(rid, "1", 1, None, None, 0, stamp, stamp + 1)
    ordered = pairs.sorted()
    assert list(zip(ordered.prediction_ms, ordered.request_ids, strict=True)) == sorted(rows)
    assert [p.label_timestamp_ms for p in ordered] == [stamp + 1 for stamp, _ in sorted(rows)]


@given(st.lists(st.one_of(st.integers(-3, 3), st.booleans(), st.sampled_from([1.0, 2.5, "1"]),
                          st.none())))
def test_categories_are_those_of_each_value(values: list[object]) -> None:
    # 1, 1.0 and True hash alike: each must still get its own category
    assert list(_categories(values)) == [canonical_category(v) for v in values]
