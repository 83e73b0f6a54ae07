"""A seeded stream with known drift through Kafka gives ``driftloop evaluate``'s results.

Real processes: the session's Tansu broker, ``driftloop serve`` with its state
store on PostgreSQL (a database made and dropped by the test), and the
``driftloop evaluate`` command on the same rows (the CSV the events were made
from). Every window's drift, prediction drift, quality and label-free performance
estimate (``estimated_performance``, exported as ``driftloop_performance_estimated``)
must be identical. ``performance`` differs by design: in the stream it is the latest realized
performance window over joined (prediction, label) pairs; it is checked against
a direct computation over the same pairs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from monitor.baseline import Baseline
from monitor.cli.examples import FEATURES, SHIFTS, WINDOWS
from monitor.cli.replay import label_events, prediction_events, produce
from monitor.config import load_config
from monitor.evaluate import LabeledRows, evaluate_performance_window
from monitor.tables import categorical_array
from tests.support.service import (
    DRIFTLOOP,
    WINDOW_ROWS,
    StreamData,
    assert_same,
    new_topics,
    poll,
    start_service,
    write_config,
)

pytestmark = pytest.mark.integration

COMPARED = ("rows", "dataset_drift", "drift_share", "features", "prediction_drift",
            "score_drift", "quality", "start", "end", "first_offset", "model", "version",
            "estimated_performance")


def predictions(frame: Any) -> Any:
    return prediction_events(frame, model="carloan", version="1", features=FEATURES,
                             prediction="prediction", score="score")


def evaluate_cli(data: StreamData, config: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [str(DRIFTLOOP), "evaluate", "--baseline", str(data.baseline), "--data",
         str(data.current_csv), "--window-rows", str(WINDOW_ROWS), "--config", str(config),
         "--model", "carloan"],
        check=True, capture_output=True, timeout=120)
    return [orjson.loads(line) for line in out.stdout.splitlines() if line.strip()]


def direct_performance(data: StreamData, config: Path, labels: Any) -> dict[str, Any] | None:
    """Realized performance over the given labels joined to their predictions."""
    baseline = Baseline.load(data.baseline)
    rows = data.current.set_index("request_id").loc[labels["request_id"]]
    labeled = LabeledRows(y_true=categorical_array(labels["repaid"]),
                          y_pred=categorical_array(rows["prediction"]),
                          score=rows["score"].to_numpy(dtype=np.float64))
    model_config = load_config(config).models["carloan"]
    return evaluate_performance_window(baseline, model_config, labeled)


def test_stream_windows_equal_driftloop_evaluate_on_postgres(
        tansu: str, stream_data: StreamData, postgres_url: str, tmp_path: Path) -> None:
    topics = new_topics(tansu, "parity")
    frame = stream_data.current
    first_part = frame.iloc[:5 * WINDOW_ROWS]
    labels = stream_data.labels[stream_data.labels["request_id"].isin(first_part["request_id"])]
    # one performance window holding exactly the labels of windows 1-5: its result does not
    # depend on how the joins were batched
    config = write_config(tmp_path / "driftloop.yaml", bootstrap=tansu, topics=topics,
                          state_url=postgres_url, baseline=str(stream_data.baseline),
                          model={"performance": {"window_rows": len(labels)}})
    expected = evaluate_cli(stream_data, config)
    assert len(expected) == WINDOWS
    service = start_service(config)
    try:
        produce([tansu], topics.predictions, predictions(first_part))
        produce([tansu], topics.labels, label_events(labels, model="carloan", label="repaid"))
        service.wait_windows(5)
        poll(lambda: service.metric("driftloop_performance", model="carloan") > 0, 60,
             "the performance window over every label", service.proc)
        produce([tansu], topics.predictions, predictions(frame.iloc[5 * WINDOW_ROWS:]))
        seen = service.wait_windows(WINDOWS)
        estimated = service.metric("driftloop_performance_estimated", model="carloan",
                                   version="1", metric="accuracy")
    finally:
        assert service.stop() == 0

    assert len(seen) == WINDOWS
    assert [w["window"] for w in seen] == list(range(WINDOWS))  # stream windows count from 0
    for got, want in zip(seen, expected, strict=True):
        for key in COMPARED:
            assert_same(got[key], want[key], f"window {want['window']} {key}")
        assert got["partition"] == 0
    # the known shifts of monitor.cli.examples are found where they are
    for got in seen:
        window = got["window"] + 1
        drifted = {name for name, feature in got["features"].items() if feature["drift"]}
        assert drifted >= {f for f, w in SHIFTS if w == window}, f"window {window}"
    assert [w["dataset_drift"] for w in seen] == [False, False, False, False, True, False]
    assert seen[2]["drift_share"] == pytest.approx(3 / 8)  # three features shifted

    # performance: the latest realized window over joined pairs, here all labels of 1-5
    performance = seen[-1]["performance"]
    want_perf = direct_performance(stream_data, config, labels)
    assert performance is not None and want_perf is not None
    assert performance["labeled_rows"] == len(labels)
    assert performance["value"] == pytest.approx(want_perf["value"], abs=1e-12)
    # the stream numbers its performance windows; a direct evaluation has none
    assert performance["window"] == 0
    assert {k: v for k, v in performance.items() if k not in ("value", "window")} == \
        {k: v for k, v in want_perf.items() if k != "value"}
    assert all(w["performance"] is None for w in seen[:5])

    # the estimate needs no labels: every window has one, the gauge shows the last, and
    # once labels joined the realized value stands beside it
    assert all(w["estimated_performance"]["status"] != "inconclusive" for w in seen)
    assert all(w["estimated_performance"]["n"] == w["rows"] for w in seen)
    last = seen[-1]
    assert estimated == pytest.approx(last["estimated_performance"]["value"], rel=1e-12)
    assert last["performance"]["metric"] == last["estimated_performance"]["metric"]


def _bad_records(good: dict[str, Any]) -> list[tuple[bytes, str]]:
    """(value, expected reason): one of each kind of bad record of issue 3 point 2."""
    def changed(**changes: Any) -> bytes:
        return orjson.dumps({**good, **changes})

    features = good["features"]
    return [
        (b'{"model": "carloan", "version": ', "malformed_json"),
        (changed(request_id="x").replace(b'"x"', b'"\xff\xfe"'), "not_utf8"),
        (orjson.dumps({k: v for k, v in good.items() if k != "features"}), "missing_field"),
        (changed(features=[1, 2, 3]), "wrong_type"),
        (changed(prediction={"class": 1}), "wrong_type"),
        (changed(features={**features, "car_value": 1.0}).replace(b"1.0", b"NaN", 1),
         "non_finite"),
        (changed(features={**features, "car_value": 1.0}).replace(b"1.0", b"Infinity", 1),
         "non_finite"),
        (changed(features={**features, "car_value": 1.0}).replace(b"1.0", b"1e999", 1),
         "non_finite"),
        (changed(model="fraud"), "unknown_model"),
        (changed(padding="x" * 5000), "oversized"),
        (changed(timestamp="last tuesday"), "bad_timestamp"),
        (changed(timestamp=-5), "bad_timestamp"),
        (b"", "empty"),
    ]


def test_every_bad_record_goes_to_the_dead_letter_topic_and_good_ones_still_count(
        tansu: str, stream_data: StreamData, tmp_path: Path) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    topics = new_topics(tansu, "badrecords")
    config = write_config(tmp_path / "driftloop.yaml", bootstrap=tansu, topics=topics,
                          state_url=f"sqlite:///{tmp_path / 'state.db'}",
                          baseline=str(stream_data.baseline),
                          kafka={"max_record_bytes": 4096})
    good = [value for _, value in predictions(stream_data.current.iloc[:WINDOW_ROWS])]
    bad = _bad_records(orjson.loads(good[0]))
    bad_label = (b'{"model": "carloan", "request_id": 7}', "missing_field")
    # a bad record, then good ones: every bad record is followed by good records
    stream: list[tuple[bytes, str | None]] = []
    step = len(good) // len(bad)
    for i, value in enumerate(good):
        if i % step == 0 and i // step < len(bad):
            stream.append(bad[i // step])
        stream.append((value, None))
    service = start_service(config)
    producer = KafkaProducer(bootstrap_servers=[tansu], acks="all",
                             max_request_size=4 * 1024 * 1024)
    try:
        for value, _ in stream:
            producer.send(topics.predictions, value=value, partition=0)
        producer.send(topics.labels, value=bad_label[0], partition=0)
        producer.flush()
        windows = service.wait_windows(1)
        expected: dict[str, int] = {}
        for _, reason in [*bad, bad_label]:
            expected[reason] = expected.get(reason, 0) + 1
        poll(lambda: all(service.metric("driftloop_events_invalid_total", reason=reason) == n
                         for reason, n in expected.items()),
             30, "every invalid record counted", service.proc)
        counted = service.metric("driftloop_events_total", model="carloan", kind="prediction")
    finally:
        producer.close()
        assert service.stop() == 0
    assert windows[0]["rows"] == WINDOW_ROWS
    assert counted == WINDOW_ROWS

    consumer = KafkaConsumer(topics.dead_letters, bootstrap_servers=[tansu],
                             auto_offset_reset="earliest", consumer_timeout_ms=3000)
    letters = list(consumer)
    consumer.close()
    assert len(letters) == len(bad) + 1
    sent: dict[tuple[str, int], tuple[bytes, str | None]] = {
        (topics.predictions, offset): item for offset, item in enumerate(stream)}
    sent[(topics.labels, 0)] = bad_label
    for letter in letters:
        headers = {key: value.decode() for key, value in letter.headers}
        source = (headers["driftloop_source_topic"], int(headers["driftloop_source_offset"]))
        assert headers["driftloop_source_partition"] == "0"
        value, why = sent[source]
        assert why is not None, f"good record {source} was dead-lettered"
        assert (letter.value or b"") == value  # unchanged
        assert headers["driftloop_error"].startswith(f"{why}:"), headers["driftloop_error"]
