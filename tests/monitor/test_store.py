"""The state store on SQLite and PostgreSQL: every test runs on both."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Connection, event, inspect, select, text

from monitor.store import (
    CanaryState,
    PendingLabel,
    PendingPrediction,
    RetrainRun,
    SchemaError,
    StaleOwnership,
    Store,
    StoreError,
    TriggerState,
)
from monitor.store import schema as store_schema
from monitor.store.migrations import MIGRATIONS, Migration

FAR = 10**13  # an expiry no test reaches
LATEST = len(MIGRATIONS)  # the schema version a new store reaches


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store(store_url, clock=lambda: 1_700_000_000.0) as opened:
        yield opened


def _result(model: str, window: int, **extra: object) -> dict[str, object]:
    return {"model": model, "version": "3", "window": window, "rows": 100, **extra}


def _prediction(
    request_id: str, model: str = "carloan", ts: int = 0, expires: int = FAR
) -> PendingPrediction:
    return PendingPrediction(
        model, request_id, "3", 1, ts, expires, score=0.75, scores={"0": 0.25, "1": 0.75}
    )


def _label(
    request_id: str, model: str = "carloan", ts: int = 10, expires: int = FAR
) -> PendingLabel:
    return PendingLabel(model, request_id, 1, ts, expires)


# -- schema and migrations ----------------------------------------------------------
def test_new_store_creates_every_table_at_the_latest_version(store: Store) -> None:
    assert store.applied_migrations == list(range(1, LATEST + 1))
    assert store.schema_version() == LATEST
    tables = set(inspect(store.engine).get_table_names())
    assert {t.name for t in store_schema.metadata.sorted_tables} <= tables


def test_a_version_one_store_is_upgraded_in_place(store_url: str) -> None:
    with Store(store_url, migrations=MIGRATIONS[:1]) as old:
        assert "partition_owners" not in inspect(old.engine).get_table_names()
        old.put_window("carloan", "3", "p0:0", 0, {"rows": 1})
    with Store(store_url) as upgraded:
        assert upgraded.applied_migrations == list(range(2, len(MIGRATIONS) + 1))
        assert "partition_owners" in inspect(upgraded.engine).get_table_names()
        assert upgraded.windows("carloan") == [{"rows": 1}]


def test_reopened_store_sees_the_same_state_and_runs_no_migration(store_url: str) -> None:
    with Store(store_url) as first:
        first.put_window("carloan", "3", "rows:0", 0, _result("carloan", 0))
        with first.transaction() as tx:
            tx.save_checkpoint("carloan", "3", "predictions", b"partial", {("predictions", 0): 42})
            tx.commit_offsets("driftloop", {("predictions", 0): 42})
        first.add_predictions([_prediction("r1")])
        first.put_trigger_state(TriggerState("carloan", {"dataset_drift": 1}, cooldown_until_ms=99))
        first.record_alert("fp", "2024-01-01T00:00:00Z", status="firing", payload={"a": 1})
        with first.engine.connect() as conn:
            applied_at = conn.execute(select(store_schema.schema_version)).all()
    with Store(store_url) as second:
        assert second.applied_migrations == []
        with second.engine.connect() as conn:
            assert conn.execute(select(store_schema.schema_version)).all() == applied_at
        assert second.windows("carloan") == [_result("carloan", 0)]
        [checkpoint] = second.load_checkpoints()
        assert (checkpoint.state, checkpoint.offsets) == (b"partial", {("predictions", 0): 42})
        assert second.offsets("driftloop") == {("predictions", 0): 42}
        assert second.pending_counts()["carloan"].predictions == 1
        state = second.get_trigger_state("carloan")
        assert state is not None and state.consecutive == {"dataset_drift": 1}
        assert state.cooldown_until_ms == 99
        assert (
            second.record_alert("fp", "2024-01-01T00:00:00Z", status="firing", payload={}) is False
        )


def test_stores_opened_at_once_on_a_new_database_migrate_once(store_url: str) -> None:
    opened: list[Store] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def open_store() -> None:
        try:
            barrier.wait(timeout=30)
            opened.append(Store(store_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert sorted(len(s.applied_migrations) for s in opened) == [0, 0, 0, LATEST]
    finally:
        for s in opened:
            s.close()


def test_appended_migration_step_runs_once(store_url: str) -> None:
    calls: list[int] = []

    def add_notes(conn: Connection) -> None:
        calls.append(1)
        conn.execute(text("CREATE TABLE notes_v2 (id INTEGER PRIMARY KEY)"))

    steps = (*MIGRATIONS, Migration(LATEST + 1, "notes", add_notes))
    with Store(store_url) as first:
        assert first.applied_migrations == list(range(1, LATEST + 1))
    with Store(store_url, migrations=steps) as second:
        assert second.applied_migrations == [LATEST + 1]
        assert second.schema_version() == LATEST + 1
    with Store(store_url, migrations=steps) as third:
        assert third.applied_migrations == []
    assert calls == [1]
    with pytest.raises(SchemaError, match=f"schema version {LATEST + 1} is newer"):
        Store(store_url)


def test_failing_migration_step_leaves_the_previous_version(store_url: str) -> None:
    def half_done(conn: Connection) -> None:
        conn.execute(text("CREATE TABLE half_v2 (id INTEGER PRIMARY KEY)"))
        raise RuntimeError("step 2 broke")

    Store(store_url).close()
    with pytest.raises(RuntimeError, match="step 2 broke"):
        Store(store_url, migrations=(*MIGRATIONS, Migration(LATEST + 1, "broken", half_done)))
    with Store(store_url) as reopened:
        assert reopened.schema_version() == LATEST
        assert "half_v2" not in inspect(reopened.engine).get_table_names()


def test_migration_steps_out_of_order_are_refused(tmp_path: Path) -> None:
    steps = (Migration(2, "two", lambda conn: None),)
    with pytest.raises(SchemaError, match="expected 1, 2, 3"):
        Store(f"sqlite:///{tmp_path / 'x.db'}", migrations=steps)


def test_unsupported_database_url_names_the_expected_ones() -> None:
    with pytest.raises(StoreError, match="expected sqlite:///PATH or postgresql"):
        Store("mysql://root@localhost/db")


# -- window results -------------------------------------------------------------------
def test_replayed_window_overwrites_instead_of_adding(store: Store) -> None:
    store.put_window("carloan", "3", "rows:0", 0, _result("carloan", 0, drift_share=0.1))
    store.put_window("carloan", "3", "rows:1", 1, _result("carloan", 1))
    store.put_window("carloan", "3", "rows:0", 0, _result("carloan", 0, drift_share=0.2))
    found = store.windows("carloan")
    assert [w["window"] for w in found] == [1, 0]
    assert found[1]["drift_share"] == 0.2


def test_windows_newest_first_with_limit_and_version(store: Store) -> None:
    for i in range(5):
        store.put_window("carloan", "3", f"rows:{i}", i, _result("carloan", i))
    store.put_window("carloan", "4", "rows:0", 0, {"window": 0, "version": "4"})
    store.put_window("other", "1", "rows:0", 0, _result("other", 0))
    assert [w["window"] for w in store.windows("carloan", limit=3)] == [0, 4, 3]
    assert [w["window"] for w in store.windows("carloan", version="3")] == [4, 3, 2, 1, 0]
    assert store.windows("nobody") == []
    assert store.last_window_index("carloan", "3") == 4
    assert store.last_window_index("carloan", "9") is None


def test_window_times_accept_epoch_ms_datetime_and_rfc3339(store: Store) -> None:
    start = datetime(2019, 5, 1, tzinfo=UTC)
    store.put_window("carloan", "3", "a", 0, {}, start, "2019-05-31T08:00:00Z")
    store.put_window("carloan", "3", "b", 1, {}, 1_556_668_800_000, None)
    t = store_schema.windows
    with store.engine.connect() as conn:
        rows = conn.execute(select(t.c.window_key, t.c.start_ms, t.c.end_ms).order_by(t.c.id)).all()
    assert [tuple(r) for r in rows] == [
        ("a", 1_556_668_800_000, 1_559_289_600_000),
        ("b", 1_556_668_800_000, None),
    ]
    with pytest.raises(StoreError, match="expected a timezone"):
        store.put_window("carloan", "3", "c", 2, {}, datetime(2019, 5, 1), None)
    with pytest.raises(StoreError, match="expected an RFC 3339"):
        store.put_window("carloan", "3", "c", 2, {}, "yesterday", None)


def test_nan_in_a_result_is_stored_as_null(store: Store) -> None:
    store.put_window("carloan", "3", "rows:0", 0, {"drift_share": float("nan"), "rows": 5})
    assert store.windows("carloan") == [{"drift_share": None, "rows": 5}]


# -- unit of work: results, checkpoints, offsets ----------------------------------------
def test_transaction_commits_results_checkpoint_and_offsets_together(store: Store) -> None:
    with store.transaction() as tx:
        tx.put_window("carloan", "3", "rows:0", 0, _result("carloan", 0))
        tx.save_checkpoint("carloan", "3", "predictions", {"rows": 7}, {("predictions", 0): 107})
        tx.commit_offsets("driftloop", {("predictions", 0): 107, ("labels", 2): 9})
    assert len(store.windows("carloan")) == 1
    assert store.load_checkpoints()[0].state == {"rows": 7}
    assert store.offsets("driftloop") == {("predictions", 0): 107, ("labels", 2): 9}


def test_failed_transaction_writes_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError, match="crash"), store.transaction() as tx:
        tx.put_window("carloan", "3", "rows:0", 0, _result("carloan", 0))
        tx.save_checkpoint("carloan", "3", "predictions", b"x", {("predictions", 0): 107})
        tx.commit_offsets("driftloop", {("predictions", 0): 107})
        tx.add_predictions([_prediction("r1")])
        raise RuntimeError("crash before commit")
    assert store.windows("carloan") == []
    assert store.load_checkpoints() == []
    assert store.offsets("driftloop") == {}
    assert store.pending_counts() == {}


def test_checkpoints_round_trip_bytes_and_dicts_and_overwrite(store: Store) -> None:
    store.save_checkpoint("carloan", "3", "predictions", b"\x00\xffold", {("predictions", 1): 5})
    store.save_checkpoint("carloan", "3", "predictions", b"\x00\xffnew", {("predictions", 1): 9})
    store.save_checkpoint("carloan", "3", "performance", {"pairs": [1, 2]}, {})
    found = {c.kind: c for c in store.load_checkpoints()}
    assert found["predictions"].state == b"\x00\xffnew"
    assert found["predictions"].offsets == {("predictions", 1): 9}
    assert found["performance"].state == {"pairs": [1, 2]}
    assert found["performance"].updated_at_ms == 1_700_000_000_000
    store.delete_checkpoint("carloan", "3", "predictions")
    assert [c.kind for c in store.load_checkpoints()] == ["performance"]
    with pytest.raises(StoreError, match="expected bytes or a dict"):
        store.save_checkpoint("carloan", "3", "x", "text", {})  # type: ignore[arg-type]


def test_offsets_are_kept_per_group_and_overwritten(store: Store) -> None:
    store.commit_offsets("a", {("predictions", 0): 10})
    store.commit_offsets("b", {("predictions", 0): 99})
    store.commit_offsets("a", {("predictions", 0): 20, ("predictions", 1): 3})
    assert store.offsets("a") == {("predictions", 0): 20, ("predictions", 1): 3}
    assert store.offsets("b") == {("predictions", 0): 99}
    assert store.offsets("c") == {}


def test_two_stores_writing_at_once_both_succeed(store_url: str) -> None:
    Store(store_url).close()
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            with Store(store_url) as own:
                for i in range(30):
                    with own.transaction() as tx:
                        # read before write: a deferred SQLite transaction fails to upgrade here
                        tx.offsets(name)
                        tx.put_window(name, "1", f"rows:{i}", i, {"window": i})
                        tx.commit_offsets(name, {("predictions", 0): i + 1})
                        tx.join([(name, str(i))])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"m{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Store(store_url) as check:
        assert [len(check.windows(f"m{n}", limit=1000)) for n in range(3)] == [30, 30, 30]
        assert check.offsets("m1") == {("predictions", 0): 30}


# -- label join ---------------------------------------------------------------------------
def test_join_matches_labels_arriving_before_and_after_predictions(store: Store) -> None:
    store.add_labels([_label("early")])
    store.add_predictions(
        [_prediction("early", ts=5), _prediction("late", ts=1), _prediction("none")]
    )
    store.add_labels([_label("late", ts=20)])
    pairs = store.join([("carloan", "early"), ("carloan", "late"), ("carloan", "none")])
    assert [(p.request_id, p.label, p.prediction_timestamp_ms) for p in pairs] == [
        ("late", 1, 1),
        ("early", 1, 5),
    ]
    assert pairs[0].score == 0.75 and pairs[0].scores == {"0": 0.25, "1": 0.75}
    assert pairs[0].version == "3" and pairs[0].label_timestamp_ms == 20
    counts = store.pending_counts()["carloan"]
    assert (counts.predictions, counts.labels) == (1, 0)
    assert store.join([("carloan", "early")]) == []


def test_join_keys_only_look_at_those_keys(store: Store) -> None:
    store.add_predictions([_prediction("a"), _prediction("b")])
    store.add_labels([_label("a"), _label("b")])
    assert [p.request_id for p in store.join([("carloan", "a"), ("other", "b")])] == ["a"]
    assert [p.request_id for p in store.join()] == ["b"]


def test_join_is_per_model(store: Store) -> None:
    store.add_predictions([_prediction("1", model="carloan")])
    store.add_labels([_label("1", model="fraud")])
    assert store.join() == []


def test_replayed_pending_rows_do_not_duplicate(store: Store) -> None:
    store.add_predictions([_prediction("r1"), _prediction("r1")])
    store.add_predictions([_prediction("r1")])
    store.add_labels([_label("r1"), _label("r1")])
    assert len(store.join()) == 1
    assert store.pending_counts() == {}


def test_expired_rows_do_not_join_and_expire_counts_per_model(store: Store) -> None:
    store.add_predictions([_prediction("old", expires=100), _prediction("new", expires=500)])
    store.add_predictions([_prediction("x", model="fraud", expires=50)])
    store.add_labels([_label("old", expires=900), _label("lost", expires=100)])
    assert store.join(now_ms=200) == []
    expired = store.expire({"carloan": 200, "fraud": 200})
    assert {m: (c.predictions, c.labels) for m, c in expired.items()} == {
        "carloan": (1, 1),
        "fraud": (1, 0),
    }
    counts = store.pending_counts()
    assert {m: (c.predictions, c.labels) for m, c in counts.items()} == {"carloan": (1, 1)}
    assert store.expire({"carloan": 200, "fraud": 200}) == {}


def test_each_model_expires_on_its_own_clock(store: Store) -> None:
    """A model backfilling last month keeps its joins while another model is live."""
    store.add_predictions([_prediction("a", expires=1_000)])
    store.add_predictions([_prediction("b", model="fraud", expires=1_000)])
    expired = store.expire({"carloan": 5_000, "fraud": 500})
    assert set(expired) == {"carloan"}
    assert store.pending_counts()["fraud"].predictions == 1
    store.add_labels([_label("b", model="fraud")])
    assert [p.request_id for p in store.join([("fraud", "b")],
                                            now_by_model={"fraud": 500})] == ["b"]


def test_the_row_cap_drops_the_oldest_pending_rows_first(store: Store) -> None:
    store.add_predictions(_prediction(f"r{i}", ts=i) for i in range(10))
    store.add_labels(_label(f"l{i}", ts=i) for i in range(3))
    dropped = store.cap_pending("carloan", 4)
    assert (dropped.predictions, dropped.labels) == (6, 0)
    store.add_labels(_label(f"r{i}") for i in range(10))
    assert sorted(p.request_id for p in store.join()) == ["r6", "r7", "r8", "r9"]


def test_bulk_join_of_thousands_of_rows(store: Store) -> None:
    n = 3000
    store.add_predictions(_prediction(str(i), ts=i) for i in range(n))
    store.add_labels(_label(str(i)) for i in range(0, n, 3))
    pairs = store.join([("carloan", str(i)) for i in range(n)])
    assert [p.request_id for p in pairs] == [str(i) for i in range(0, n, 3)]
    assert store.pending_counts()["carloan"].predictions == n - n // 3


# predictions and labels of every JSON kind a model gives; an integer stays an int, a
# digit string stays text (SQLite's JSON column has numeric affinity), NaN is null. (A
# float with an integral value, 1.0, comes back from SQLite as the int 1: equal, and
# not listed here.)
_VALUES = [1, 0.25, -3, 2**53 + 1, "approved", "1", "", "é\"\\", True, False,
           [1, "a"], {"k": [0.5]}, None, float("nan")]


def test_pending_rows_keep_the_value_and_type_of_every_json_kind(store: Store) -> None:
    def same(value: object) -> object:
        return None if isinstance(value, float) and value != value else value

    predictions = [PendingPrediction("carloan", f"r{i}", "3", value, i, FAR + i,
                                     score=None if i % 2 else 0.5,
                                     scores=None if i % 3 else {"0": 0.25, "yes": value})
                   for i, value in enumerate(_VALUES)]
    labels = [PendingLabel("carloan", f"r{i}", value, 100 + i, FAR + i)
              for i, value in enumerate(_VALUES)]
    with store.transaction() as tx:
        tx.add_predictions(predictions)
        tx.add_labels(labels)
    ids = [f"r{i}" for i in range(len(_VALUES))]
    with store.transaction() as tx:
        taken_p = tx.take_predictions("carloan", ids, None)
        taken_l = tx.take_labels("carloan", ids, None)
    for i, value in enumerate(_VALUES):
        expected = same(value)
        got = taken_p[f"r{i}"]
        assert (got.prediction, type(got.prediction)) == (expected, type(expected)), i
        assert got.scores == (None if i % 3 else {"0": 0.25, "yes": expected}), i
        assert (got.version, got.score, got.timestamp_ms, got.expires_at_ms) == (
            "3", None if i % 2 else 0.5, i, FAR + i)
        label, label_ms = taken_l[f"r{i}"]
        assert (label, type(label), label_ms) == (expected, type(expected), 100 + i), i
    assert store.pending_counts() == {}


def test_an_expired_pending_row_is_not_taken(store: Store) -> None:
    store.add_predictions([_prediction("old", expires=100), _prediction("new", expires=500)])
    with store.transaction() as tx:
        assert list(tx.take_predictions("carloan", ["old", "new", "none"], 200)) == ["new"]
    assert store.pending_counts()["carloan"].predictions == 1  # the expired one waits


def test_request_id_lookups_of_any_length_take_a_few_statement_texts(store: Store) -> None:
    # the drivers keep a prepared statement per SQL text (SQLite's up to 128 per pooled
    # connection, ~100 kB each at 1000 ids): one per IN-list length grew the service's
    # memory for as long as new lengths came
    texts: set[str] = set()
    event.listen(store._engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *rest: texts.add(statement))
    store.add_predictions([_prediction(f"p{i}") for i in range(3000)])
    store.add_labels([_label(f"l{i}") for i in range(3000)])
    texts.clear()
    lengths, taken = range(1, 2600, 41), 0
    for n in lengths:
        with store.transaction() as tx:
            taken += len(tx.take_labels("carloan", [f"l{i}" for i in range(n)], None))
            tx.take_predictions("carloan", [f"nothing{i}" for i in range(n)], None)
    assert taken == max(lengths)  # each id taken once, by the first list that held it
    # a power of two of ids per text (1, 2, 4, ... 1024) for each of the two lookups
    assert len(texts) <= 2 * 11, len(texts)


# -- triggers, runs, alerts, canary, decisions ---------------------------------------------
def test_trigger_state_round_trips_and_overwrites(store: Store) -> None:
    assert store.get_trigger_state("carloan") is None
    store.put_trigger_state(TriggerState("carloan", {"dataset_drift": 1}))
    store.put_trigger_state(
        TriggerState("carloan", {"dataset_drift": 2}, 10, 3_600_010, "run-1", {"note": "x"})
    )
    store.put_trigger_state(TriggerState("fraud"))
    state = store.get_trigger_state("carloan")
    assert state == TriggerState(
        "carloan", {"dataset_drift": 2}, 10, 3_600_010, "run-1", {"note": "x"}, 1_700_000_000_000
    )
    assert sorted(store.trigger_states()) == ["carloan", "fraud"]


def test_retrain_runs_are_unique_by_idempotency_key(store: Store) -> None:
    run = RetrainRun("run-1", "carloan", "dataset drift", "carloan:w7", "command", "pending", 1000)
    assert store.create_run(run) is True
    assert (
        store.create_run(
            RetrainRun("run-2", "carloan", "again", "carloan:w7", "command", "pending", 2000)
        )
        is False
    )
    assert store.create_run(run) is False
    assert store.update_run(
        "run-1", status="succeeded", finished_at_ms=5000, external_id="pid-9", detail={"exit": 0}
    )
    assert store.update_run("nope", status="failed") is False
    found = store.run_by_key("carloan:w7")
    assert found is not None and found.id == "run-1"
    assert (found.status, found.finished_at_ms, found.external_id, found.detail) == (
        "succeeded",
        5000,
        "pid-9",
        {"exit": 0},
    )
    assert store.get_run("run-2") is None


def test_runs_newest_first_filtered_by_model_and_status(store: Store) -> None:
    for i, status in enumerate(["succeeded", "running", "failed"]):
        store.create_run(
            RetrainRun(f"r{i}", "carloan", "drift", f"k{i}", "command", status, 1000 * i)
        )
    store.create_run(RetrainRun("f0", "fraud", "drift", "f0", "webhook", "running", 9999))
    assert [r.id for r in store.runs("carloan")] == ["r2", "r1", "r0"]
    assert [r.id for r in store.runs(status="running")] == ["f0", "r1"]
    assert [r.id for r in store.runs("carloan", limit=1)] == ["r2"]


def test_prune_runs_keeps_the_newest_finished_runs_and_every_run_in_flight(
        store: Store) -> None:
    statuses = ["succeeded", "launching", "failed", "unknown", "running", "failed", "retrying",
                "succeeded"]
    for i, status in enumerate(statuses):
        store.create_run(
            RetrainRun(f"r{i}", "carloan", "drift", f"k{i}", "command", status, 1000 * i))
    store.create_run(RetrainRun("f0", "fraud", "drift", "f0", "webhook", "failed", 0))
    finished = {"succeeded", "failed", "unknown"}
    assert store.prune_runs("carloan", keep=2, statuses=finished) == 3
    # the two newest finished (r7, r5) and every run in flight (r6, r4, r1) remain
    assert [r.id for r in store.runs("carloan")] == ["r7", "r6", "r5", "r4", "r1"]
    assert [r.id for r in store.runs("fraud")] == ["f0"]
    assert store.prune_runs("carloan", keep=2, statuses=finished) == 0


def test_alerts_dedupe_on_fingerprint_and_start(store: Store) -> None:
    payload = {"labels": {"model": "carloan"}}
    assert store.record_alert(
        "fp1", "2024-01-01T00:00:00Z", status="firing", payload=payload, model="carloan"
    )
    assert not store.record_alert("fp1", "2024-01-01T00:00:00Z", status="firing", payload=payload)
    assert not store.record_alert("fp1", "2024-01-01T00:00:00Z", status="resolved", payload=payload)
    assert store.record_alert(
        "fp1", "2024-01-02T00:00:00Z", status="firing", payload=payload, model="carloan"
    )
    found = store.alerts("carloan")
    assert [(a.starts_at, a.status) for a in found] == [
        ("2024-01-02T00:00:00Z", "firing"),
        ("2024-01-01T00:00:00Z", "firing"),
    ]
    assert found[0].payload == payload and found[0].received_at_ms == 1_700_000_000_000


def test_canary_state_round_trips(store: Store) -> None:
    assert store.get_canary("carloan") is None
    store.put_canary(CanaryState("carloan", "running", "3", "4", 1, 0, {"checks": [True]}))
    store.put_canary(CanaryState("carloan", "failed", "3", "4", 1, 2, {"checks": [True, False]}))
    found = store.get_canary("carloan")
    assert found == CanaryState(
        "carloan", "failed", "3", "4", 1, 2, {"checks": [True, False]}, 1_700_000_000_000
    )
    assert list(store.canary_states()) == ["carloan"]


def test_canary_document_is_kept_whole_and_fills_the_view_columns(store: Store) -> None:
    document = {"model": "carloan", "phase": "progressing", "champion": "3",
                "challenger": "4", "passed": 2, "failed_checks": 1,
                "evidence": {"outcome": "pass"}, "pending": None,
                "history": [{"at": "2026-01-05T12:00:00+00:00", "event": "start"}]}
    assert store.load_canary_document("carloan") is None
    store.save_canary_document(document)
    assert store.load_canary_document("carloan") == document
    assert store.get_canary("carloan") == CanaryState(
        "carloan", "progressing", "3", "4", 2, 1, {"outcome": "pass"}, 1_700_000_000_000,
        document)


def test_canary_document_without_a_phase_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match=r"expected a CanaryState\.to_dict"):
        store.save_canary_document({"model": "carloan"})


def test_canary_row_of_a_version_one_store_survives_the_upgrade(store_url: str) -> None:
    with Store(store_url, migrations=MIGRATIONS[:1]) as old:
        old.put_canary(CanaryState("carloan", "running", "3", "4", 1, 0, {"a": 1}))
    with Store(store_url) as upgraded:
        assert upgraded.applied_migrations == list(range(2, LATEST + 1))
        assert upgraded.load_canary_document("carloan") is None
        found = upgraded.get_canary("carloan")
        assert found is not None and (found.phase, found.challenger) == ("running", "4")
        upgraded.save_canary_document({"model": "carloan", "phase": "progressing",
                                       "champion": "3", "challenger": "5"})
        assert upgraded.load_canary_document("carloan") == {
            "model": "carloan", "phase": "progressing", "champion": "3", "challenger": "5"}


def test_decisions_newest_first(store: Store) -> None:
    for i in range(4):
        store.log_decision("carloan", "retrain", f"sentence {i}", at_ms=i)
    store.log_decision("fraud", "none", "other model")
    assert [d.sentence for d in store.decisions("carloan", limit=3)] == [
        "sentence 3",
        "sentence 2",
        "sentence 1",
    ]
    assert store.decisions("fraud")[0].at_ms == 1_700_000_000_000


# -- partition ownership ---------------------------------------------------------------------
def test_taking_a_partition_bumps_its_epoch_and_fences_the_previous_owner(store: Store) -> None:
    first = store.take_partitions("g", [("predictions", 0), ("predictions", 1)], "replica-a")
    assert first == {("predictions", 0): 1, ("predictions", 1): 1}
    store.check_partitions("g", first)  # still ours
    second = store.take_partitions("g", [("predictions", 1)], "replica-b")
    assert second == {("predictions", 1): 2}
    with pytest.raises(StaleOwnership) as caught, store.transaction() as tx:
        tx.put_window("carloan", "3", "p1:0", 0, {"rows": 1})
        tx.check_partitions("g", first)
    assert caught.value.partitions == [("predictions", 1)]
    assert store.windows("carloan") == []  # the whole transaction was refused
    store.check_partitions("g", {("predictions", 0): 1, **second})
    assert store.take_partitions("other-group", [("predictions", 1)], "x") == {
        ("predictions", 1): 1}


@pytest.mark.parametrize("few", [0, 2, 4096])
def test_take_labels_takes_the_same_whether_few_or_many_labels_wait(
        store: Store, few: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """With at most ``_FEW_WAITING`` labels waiting, the take reads them and looks up only
    those asked; with more, it probes each id asked. Same rows either way, expired ones
    left to wait."""
    monkeypatch.setattr("monitor.store.join._FEW_WAITING", few)
    store.add_labels([_label(f"l{i}", expires=100 if i % 4 == 0 else FAR) for i in range(12)]
                     + [_label("l1", model="other")])
    with store.transaction() as tx:
        taken = tx.take_labels("carloan", [f"l{i}" for i in range(0, 20, 2)] + ["x"], 200)
        assert tx.take_labels("carloan", ["x", "y"], 200) == {}
    assert sorted(taken) == ["l10", "l2", "l6"]
    counts = store.pending_counts()
    assert (counts["carloan"].labels, counts["other"].labels) == (9, 1)
