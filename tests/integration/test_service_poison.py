"""Records built to hurt, through a running ``driftloop serve`` on PostgreSQL.

Each poison record is dead-lettered with its reason, the service never stops, the
windows of the good traffic around them equal ``driftloop evaluate`` on the good
traffic alone, and ten thousand distinct versions leave the metric series and the
streams bounded. A record that passes every check but still cannot be stored (a
PostgreSQL trigger refuses it here) is found, dead-lettered as poison, and the
stream moves past it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from kafka import KafkaConsumer, KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from monitor.baseline import Baseline
from monitor.cli.evaluate import evaluate_data
from monitor.cli.examples import FEATURES
from monitor.cli.replay import prediction_events
from monitor.config import load_config
from monitor.ingest.codecs.kserve import REQUEST_TYPE
from monitor.store import Store
from tests.support.service import (
    WINDOW_ROWS,
    StreamData,
    Topics,
    assert_same,
    new_topics,
    poll,
    start_service,
    write_config,
)

pytestmark = pytest.mark.integration

COMPARED = ("rows", "dataset_drift", "drift_share", "features", "prediction_drift",
            "score_drift", "quality", "start", "end")


def good_events(data: StreamData, rows: slice) -> list[bytes]:
    return [value for _, value in prediction_events(
        data.current.iloc[rows], model="carloan", version="1", features=FEATURES,
        prediction="prediction", score="score")]


def poison(template: dict[str, Any]) -> list[tuple[bytes, list[tuple[str, bytes]], str]]:
    """(value, headers, expected reason) of each kind of record the stream issue names."""
    def changed(**changes: Any) -> bytes:
        return orjson.dumps({**template, **changes})

    features = template["features"]
    zero_dim = orjson.dumps({"inputs": [{"name": "x", "shape": [1_000_000_000_000, 0],
                                          "datatype": "FP64", "data": []}]})
    ce = [("ce_specversion", b"1.0"), ("ce_id", b"zero-dim"), ("ce_source", b"test"),
          ("ce_type", REQUEST_TYPE.encode()), ("ce_inferenceservicename", b"carloan")]
    return [
        (changed(timestamp="9999-12-31T23:59:59Z"), [], "bad_timestamp"),
        (changed(timestamp="1969-07-20T20:17:40Z"), [], "bad_timestamp"),
        (changed(request_id="nul\u0000id"), [], "bad_text"),
        (changed(request_id="x" * 10_000), [], "too_long"),
        (changed(version="v" * 1000), [], "bad_version"),
        (changed(features={**features, "car_value": {"nested": {"deeper": [1]}}}), [],
         "wrong_type"),
        (changed(features={**features, "car_value": 12345.0}).replace(b"12345.0", b"1e400"),
         [], "non_finite"),
        (changed(request_id="utf8").replace(b'"utf8"', b'"\xff\xfe"'), [], "not_utf8"),
        (b"[" * 5000, [], "too_deep"),
        (zero_dim, ce, "shape_mismatch"),
    ]


def dead_letters(bootstrap: str, topics: Topics) -> list[Any]:
    consumer = KafkaConsumer(topics.dead_letters, bootstrap_servers=[bootstrap],
                             auto_offset_reset="earliest", consumer_timeout_ms=3000,
                             max_partition_fetch_bytes=32 * 1024 * 1024)
    try:
        return list(consumer)
    finally:
        consumer.close()


def reason_of(letter: Any) -> str:
    headers = {key: value.decode() for key, value in letter.headers}
    return headers["driftloop_error"].split(":", 1)[0]


def expected_windows(data: StreamData, config: Path, rows: slice) -> list[dict[str, Any]]:
    results, _ = evaluate_data(Baseline.load(data.baseline), data.current.iloc[rows],
                               load_config(config).models["carloan"], window_rows=WINDOW_ROWS,
                               source="expected")
    return results


def series(text: str, name: str) -> int:
    return sum(len(f.samples) for f in text_string_to_metric_families(text) if f.name == name)


def test_poison_records_are_dead_letters_and_the_good_windows_equal_evaluate(
        tansu: str, stream_data: StreamData, postgres_url: str, tmp_path: Path) -> None:
    topics = new_topics(tansu, "poison")
    config = write_config(tmp_path / "driftloop.yaml", bootstrap=tansu, topics=topics,
                          state_url=postgres_url, baseline=str(stream_data.baseline),
                          kafka={"formats": ["native", "kserve"]},
                          model={"max_versions": 3})
    good = good_events(stream_data, slice(0, 3 * WINDOW_ROWS))
    bad = poison(orjson.loads(good[0]))
    versions = [orjson.dumps({**orjson.loads(good[0]), "version": f"junk{i}",
                              "request_id": f"junk-{i}"}) for i in range(10_000)]
    stream: list[tuple[bytes, list[tuple[str, bytes]], str | None]] = []
    step = WINDOW_ROWS // len(bad)
    for i, value in enumerate(good):  # a poison record every `step` good ones, in window 1
        if i % step == 0 and i // step < len(bad):
            stream.append(bad[i // step])
        if i == WINDOW_ROWS + 10:  # then ten thousand new versions, in window 2
            stream.extend((value, [], "too_many_versions") for value in versions)
        stream.append((value, [], None))
    service = start_service(config)
    producer = KafkaProducer(bootstrap_servers=[tansu], acks="all", linger_ms=20,
                             max_request_size=4 * 1024 * 1024)
    try:
        for value, headers, _ in stream:
            producer.send(topics.predictions, value=value, headers=headers, partition=0)
        producer.flush()
        seen = service.wait_windows(3, timeout=120)
        poll(lambda: service.metric("driftloop_events_invalid_total") >= len(bad) + 9_998,
             60, "every poison record counted", service.proc)
        exposition = service.get("/metrics").text
        assert service.get("/readyz").status_code == 200
    finally:
        producer.close()
        assert service.stop() == 0

    letters = dead_letters(tansu, topics)
    reasons = Counter(reason_of(letter) for letter in letters)
    want = Counter(reason for _, _, reason in bad)
    want["too_many_versions"] = 10_000 - 2  # two junk versions fit under max_versions 3
    assert reasons == want
    ours = [w for w in seen if w["version"] == "1"]
    expected = expected_windows(stream_data, config, slice(0, 3 * WINDOW_ROWS))
    assert len(ours) == 3
    for got, wanted in zip(ours, expected, strict=True):
        for key in COMPARED:
            assert_same(got[key], wanted[key], f"window {wanted['window']} {key}")
    # bounded: three versions at most, in the metrics and in the store
    assert series(exposition, "driftloop_events") <= 3 * 2  # _total and _created per series
    with Store(postgres_url) as store:
        streams = {c.version for c in store.load_checkpoints()
                   if c.model == "carloan" and c.kind.startswith("p")}
    assert len(streams) <= 3 and "1" in streams


def test_a_record_the_store_refuses_is_poison_and_the_stream_moves_past_it(
        tansu: str, stream_data: StreamData, postgres_url: str, tmp_path: Path) -> None:
    """Nothing in the record is wrong by the contract; the database refuses it anyway."""
    Store(postgres_url).close()  # the schema, so the trigger has a table to sit on
    dsn = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("""
            CREATE FUNCTION refuse_poison() RETURNS trigger AS $$
            BEGIN
              IF NEW.request_id = 'refused-by-the-store' THEN
                RAISE EXCEPTION 'request % is refused', NEW.request_id;
              END IF;
              RETURN NEW;
            END $$ LANGUAGE plpgsql""")
        conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON pending_predictions "
                     "FOR EACH ROW EXECUTE FUNCTION refuse_poison()")
    topics = new_topics(tansu, "refused")
    config = write_config(tmp_path / "driftloop.yaml", bootstrap=tansu, topics=topics,
                          state_url=postgres_url, baseline=str(stream_data.baseline))
    good = good_events(stream_data, slice(0, 2 * WINDOW_ROWS))
    refused = orjson.dumps({**orjson.loads(good[0]), "request_id": "refused-by-the-store"})
    stream = [*good[:700], refused, *good[700:]]
    service = start_service(config)
    producer = KafkaProducer(bootstrap_servers=[tansu], acks="all")
    try:
        for value in stream:
            producer.send(topics.predictions, value=value, partition=0)
        producer.flush()
        seen = service.wait_windows(2, timeout=120)
        poll(lambda: service.metric("driftloop_events_invalid_total", reason="poison") == 1,
             60, "the refused record dead-lettered as poison", service.proc)
    finally:
        producer.close()
        assert service.stop() == 0
    [letter] = dead_letters(tansu, topics)
    assert reason_of(letter) == "poison" and letter.value == refused
    assert letter.offset == 0 and dict(letter.headers)["driftloop_source_offset"] == b"700"
    expected = expected_windows(stream_data, config, slice(0, 2 * WINDOW_ROWS))
    for got, wanted in zip(seen, expected, strict=True):
        for key in COMPARED:
            assert_same(got[key], wanted[key], f"window {wanted['window']} {key}")
