"""Event time per model, and KServe halves across a restart, through ``driftloop serve``.

- Two models in one topic, one backfilling last month while the other is live: each
  model's label-join clock is its own, so both get every window and every join (one
  shared clock expired the backfilling model's predictions).
- KServe CloudEvents through the service itself, with a restart between requests and
  their responses: every pair joins once, nothing is dead-lettered as unpaired, and a
  half whose partner was joined before the restart does not hold the partition back.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
import yaml
from kafka import KafkaProducer

from monitor.cli.examples import FEATURES
from monitor.cli.replay import label_events, prediction_events, produce
from monitor.ingest.codecs.kserve import REQUEST_TYPE, RESPONSE_TYPE
from monitor.store import Store
from tests.support.service import (
    WINDOW_ROWS,
    StreamData,
    new_topics,
    poll,
    start_service,
    write_config,
)

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000


def _stamped(frame: pd.DataFrame, start_ms: int) -> pd.DataFrame:
    out = frame.copy()
    out["timestamp"] = pd.to_datetime(start_ms + 1000 * pd.RangeIndex(len(frame)), unit="ms",
                                      utc=True).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return out


def test_a_backfilling_model_keeps_its_joins_while_another_is_live(
        tansu: str, stream_data: StreamData, tmp_path: Path) -> None:
    topics = new_topics(tansu, "clocks")
    n_windows = 3
    frame = stream_data.current.iloc[: n_windows * WINDOW_ROWS]
    labels = stream_data.labels[stream_data.labels["request_id"].isin(frame["request_id"])]
    now_ms = int(time.time() * 1000)
    live = _stamped(frame, now_ms - 3600_000)
    backfill = _stamped(frame, now_ms - 40 * DAY_MS)  # older than the 30-day label TTL
    model = {"performance": {"window_rows": len(labels), "label_ttl": "30d"}}
    config = write_config(tmp_path / "driftloop.yaml", bootstrap=tansu, topics=topics,
                          state_url=f"sqlite:///{tmp_path / 'state.db'}",
                          baseline=str(stream_data.baseline), model=model)
    data = yaml.safe_load(config.read_text())
    data["models"]["backfill"] = data["models"]["carloan"]
    data["jobs"] = {"label_expiry_interval": "1s"}
    config.write_text(yaml.safe_dump(data))

    service = start_service(config)
    try:
        def predictions(model_name: str, rows: pd.DataFrame) -> Any:
            return prediction_events(rows, model=model_name, version="1", features=FEATURES,
                                     prediction="prediction", score="score")

        pairs = [*predictions("backfill", backfill), *predictions("carloan", live)]
        produce([tansu], topics.predictions, iter(pairs), partition=0)
        poll(lambda: len(service.windows("backfill")) == n_windows
             and len(service.windows("carloan")) == n_windows, 90, "every window of both",
             service.proc)
        time.sleep(2.5)  # the label-join expiry job runs (every second) on both clocks
        for name, rows in (("backfill", backfill), ("carloan", live)):
            stamps = rows.set_index("request_id")["timestamp"]
            ours = labels.assign(timestamp=labels["request_id"].map(stamps))
            produce([tansu], topics.labels,
                    label_events(ours, model=name, label="repaid", timestamp="timestamp"),
                    partition=0)
        for name in ("backfill", "carloan"):
            poll(lambda name=name: service.metric("driftloop_label_joins_total", model=name)
                 == len(labels), 60, f"every label of {name} joined", service.proc)
        assert service.metric("driftloop_label_join_expired_total", model="backfill") == 0
    finally:
        assert service.stop() == 0


def _ce(kind: str, ce_id: str, time_ms: int) -> list[tuple[str, bytes]]:
    stamp = pd.Timestamp(time_ms, unit="ms", tz="UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return [("ce_specversion", b"1.0"), ("ce_id", ce_id.encode()), ("ce_type", kind.encode()),
            ("ce_source", b"kserve"), ("ce_inferenceservicename", b"carloan"),
            ("ce_endpoint", b"default"), ("ce_time", stamp.encode())]


def test_kserve_pairs_join_once_across_a_restart_between_request_and_response(
        tansu: str, stream_data: StreamData, tmp_path: Path) -> None:
    topics = new_topics(tansu, "kserve", partitions=2)
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    config = write_config(tmp_path / "driftloop.yaml", bootstrap=tansu, topics=topics,
                          state_url=state_url, baseline=str(stream_data.baseline),
                          kafka={"formats": ["kserve"]})
    rows = stream_data.current.iloc[:WINDOW_ROWS]
    now_ms = int(time.time() * 1000)
    producer = KafkaProducer(bootstrap_servers=[tansu], acks="all", linger_ms=10)

    def send(kind: str, ids: range, partition: int) -> None:
        for i in ids:
            row = rows.iloc[i]
            if kind == REQUEST_TYPE:
                body = {"instances": [[_plain(row[f]) for f in FEATURES]]}
            else:
                body = {"predictions": [[1 - float(row["score"]), float(row["score"])]]}
            producer.send(topics.predictions, value=orjson.dumps(body), partition=partition,
                          headers=_ce(kind, f"req-{i}", now_ms + i))
        producer.flush()

    service = start_service(config, "driftloop-a")
    try:
        # the first 400 pairs complete before the restart, requests on 0, responses on 1
        send(REQUEST_TYPE, range(400), 0)
        send(RESPONSE_TYPE, range(400), 1)
        # the next 600 requests arrive before it, their responses after it
        send(REQUEST_TYPE, range(400, WINDOW_ROWS), 0)
        poll(lambda: service.metric("driftloop_events_total", kind="prediction") == 400, 60,
             "the first pairs joined", service.proc)
        poll(lambda: _stored(state_url, topics.group, (topics.predictions, 1)) == 400, 60,
             "the responses persisted", service.proc)
    finally:
        assert service.stop() == 0
    # the requests without a response hold partition 0's commit offset back: a restart
    # reads them again, and only they are parked again
    assert _stored(state_url, topics.group, (topics.predictions, 0)) == 400
    service = start_service(config, "driftloop-b")
    try:
        send(RESPONSE_TYPE, range(400, WINDOW_ROWS), 1)
        # nothing is left parked: both partitions commit to their end
        poll(lambda: _stored(state_url, topics.group, (topics.predictions, 0)) == WINDOW_ROWS
             and _stored(state_url, topics.group, (topics.predictions, 1)) == WINDOW_ROWS, 60,
             "every offset committed", service.proc)
        # a pair counts in the window of the partition its second half arrived on, so the
        # pairs may spread over both partitions' windows: together they hold each pair once
        closed = sum(window["rows"] for window in service.windows())
        assert closed + sum(_open_rows(state_url)) == WINDOW_ROWS, _marks(state_url)
        assert service.metric("driftloop_events_invalid_total") == 0
        assert service.metric("driftloop_events_total", kind="prediction") == WINDOW_ROWS - 400
    finally:
        producer.close()
        assert service.stop() == 0


def _marks(state_url: str) -> list[Any]:
    """What the store holds of the partitions and open windows (printed on a failure)."""
    with Store(state_url) as store:
        return [(c.model, c.kind, {k: v if k != "pending" else len(v)
                                   for k, v in c.state.items() if k != "open"},
                 [w["n_rows"] for w in c.state.get("open", [])])
                for c in store.load_checkpoints() if isinstance(c.state, dict)]


def _open_rows(state_url: str) -> list[int]:
    """The row counts of the open windows the store holds."""
    with Store(state_url) as store:
        return [w["n_rows"] for c in store.load_checkpoints() if isinstance(c.state, dict)
                for w in c.state.get("open", [])]


def _stored(state_url: str, group: str, tp: tuple[str, int]) -> int:
    with Store(state_url) as store:
        return store.offsets(group).get(tp, 0)


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return None if value != value else value  # NaN -> null
