"""The label join: pair order, the performance window's categories, and two replicas
joining one model at once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.ingest import Prediction
from monitor.ingest.batch import LabelBatch
from monitor.store import Store
from monitor.stream.label_join import JoinBuffer, JoinedPairs
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


# -- two replicas joining one model at once (issue 15) --------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return str(request.getfixturevalue("postgres_url"))




@pytest.mark.parametrize("first", ["prediction", "label"])
def test_two_replicas_persisting_a_pair_at_once_join_it(store_url: str, first: str) -> None:
    """Replica A persists a prediction while replica B persists its label, their
    transactions overlapping: whichever commits second must see the other's row. On
    PostgreSQL, read committed, neither saw the other's uncommitted row and both stored
    theirs to wait, a pair that never joined; the join of a model is serialized now."""
    second = "label" if first == "prediction" else "prediction"
    a_joined, b_started = threading.Event(), threading.Event()
    joined: dict[str, int] = {}

    def persist(store: Store, side: str) -> None:
        buffer = JoinBuffer()
        if side == "prediction":
            buffer.add_predictions("m", "1", [Prediction("m", "1", "r1", 1_000, {}, 1)],
                                   ttl_seconds=3600)
        else:
            buffer.add_labels(LabelBatch("m", ["r1"], [1], [2_000]), ttl_seconds=3600)
        if side == second:
            assert a_joined.wait(10)
            b_started.set()
        with store.transaction() as tx:
            pairs = buffer.join(tx, {})
            if side == first:
                a_joined.set()
                assert b_started.wait(10)
                time.sleep(0.3)  # B is now waiting for A (or, unserialized, done already)
        joined[side] = sum(len(p) for p in pairs.values())

    with Store(store_url) as a, Store(store_url) as b:
        threads = [threading.Thread(target=persist, args=(a, first)),
                   threading.Thread(target=persist, args=(b, second))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert joined == {first: 0, second: 1}
        assert not a.waiting_labels("m")
        assert a.take_predictions("m", ["r1"], None) == {}
