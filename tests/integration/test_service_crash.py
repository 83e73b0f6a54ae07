"""``kill -9`` and SIGTERM of ``driftloop serve`` in the middle of a stream.

After a crash the service restarts from the state store alone: the final window
history equals an uninterrupted run's (``driftloop evaluate`` on the same rows,
which the stream test shows an uninterrupted run matches), no event is lost or
counted twice, and labels consumed before the crash still join.

Counting without double counting is checked exactly: the store's offsets after
a kill are the events whose effects were persisted; the restarted process must
count precisely the rest (``driftloop_events_total``), and the windows' rows
must add up to what was produced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from kafka import KafkaConsumer, TopicPartition

from monitor.baseline import Baseline
from monitor.cli.evaluate import evaluate_data
from monitor.cli.examples import FEATURES, WINDOWS
from monitor.cli.replay import label_events, prediction_events, produce
from monitor.config import load_config
from monitor.evaluate import LabeledRows, evaluate_performance_window
from monitor.store import Store
from monitor.tables import categorical_array
from tests.support.service import (
    WINDOW_ROWS,
    RunningService,
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
            "score_drift", "quality", "start", "end", "first_offset")


def send_predictions(bootstrap: str, topic: str, frame: pd.DataFrame) -> int:
    return produce([bootstrap], topic, prediction_events(
        frame, model="carloan", version="1", features=FEATURES, prediction="prediction",
        score="score"), partition=0)


def send_labels(bootstrap: str, topic: str, labels: pd.DataFrame) -> int:
    return produce([bootstrap], topic, label_events(labels, model="carloan", label="repaid"),
                   partition=0)


def stored(state_url: str, topics: Topics) -> tuple[int, int]:
    """The (predictions, labels) offsets the state store holds for the group."""
    with Store(state_url) as store:
        offsets = store.offsets(topics.group)
    return offsets.get((topics.predictions, 0), 0), offsets.get((topics.labels, 0), 0)


def counted(service: RunningService, kind: str) -> int:
    return int(service.metric("driftloop_events_total", model="carloan", kind=kind))


def expected_windows(data: StreamData, config: Path, n_rows: int) -> list[dict[str, Any]]:
    results, _ = evaluate_data(Baseline.load(data.baseline), data.current.iloc[:n_rows],
                               load_config(config).models["carloan"], window_rows=WINDOW_ROWS,
                               source="expected")
    return results


def assert_history(seen: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert [(w["partition"], w["window"]) for w in seen] == \
        [(0, i) for i in range(len(expected))]
    for got, want in zip(seen, expected, strict=True):
        for key in COMPARED:
            assert_same(got[key], want[key], f"window {want['window']} {key}")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_mid_stream_loses_nothing_and_counts_nothing_twice(
        tansu: str, stream_data: StreamData, tmp_path: Path, backend: str,
        request: pytest.FixtureRequest) -> None:
    topics = new_topics(tansu, "crash")
    frame, all_labels = stream_data.current, stream_data.labels
    state_url = (f"sqlite:///{tmp_path / 'state.db'}" if backend == "sqlite"
                 else request.getfixturevalue("postgres_url"))
    # one performance window over every label: it completes only if every label joins,
    # those consumed before a crash (waiting for their predictions) included
    config = write_config(tmp_path / "driftloop.yaml", bootstrap=tansu, topics=topics,
                          state_url=state_url, baseline=str(stream_data.baseline),
                          model={"performance": {"window_rows": len(all_labels)}})
    ids = frame["request_id"]
    labels_a = all_labels[all_labels["request_id"].isin(ids.iloc[:3000])]
    labels_c = all_labels[~all_labels["request_id"].isin(ids.iloc[:3000])]

    # A: 2.5 windows and the labels of 3 windows (500 labels arrive before their
    # predictions); wait until all of it is persisted, then kill -9
    service = start_service(config, "driftloop-a")
    send_predictions(tansu, topics.predictions, frame.iloc[:2500])
    send_labels(tansu, topics.labels, labels_a)
    poll(lambda: stored(state_url, topics) == (2500, len(labels_a)), 60,
         "phase A persisted", service.proc)
    assert len(service.windows()) == 2
    assert counted(service, "prediction") == 2500
    service.kill()
    assert stored(state_url, topics) == (2500, len(labels_a))

    # B: restart, feed two more windows and kill -9 as soon as anything new is persisted
    # (whatever was consumed and not persisted yet must be consumed again, once)
    service = start_service(config, "driftloop-b")
    send_predictions(tansu, topics.predictions, frame.iloc[2500:4500])
    poll(lambda: stored(state_url, topics)[0] > 2500, 60, "phase B progress", service.proc,
         interval=0.02)
    service.kill()
    after_b = stored(state_url, topics)
    assert 2500 < after_b[0] <= 4500

    # C: restart, feed the rest and every remaining label
    service = start_service(config, "driftloop-c")
    try:
        send_predictions(tansu, topics.predictions, frame.iloc[4500:])
        send_labels(tansu, topics.labels, labels_c)
        seen = service.wait_windows(WINDOWS)
        poll(lambda: stored(state_url, topics) == (len(frame), len(all_labels)), 60,
             "phase C persisted", service.proc)
        poll(lambda: service.metric("driftloop_performance", model="carloan") > 0, 60,
             "the performance window over every label", service.proc)
        # exactly the events after the stored offsets were counted by this process
        assert counted(service, "prediction") == len(frame) - after_b[0]
        assert counted(service, "label") == len(all_labels) - after_b[1]
        performance_metric = service.metric("driftloop_performance", model="carloan")
    finally:
        assert service.stop() == 0

    assert_history(seen, expected_windows(stream_data, config, len(frame)))
    assert sum(w["rows"] for w in seen) == len(frame)
    with Store(state_url) as store:
        assert len(store.windows("carloan", limit=100)) == WINDOWS  # no duplicate keys
        performance = next(c.state for c in store.load_checkpoints()
                           if c.model == "carloan" and c.kind == "performance")
    assert isinstance(performance, dict)
    last = performance["last"]["1"]
    assert last["labeled_rows"] == len(all_labels)  # every label joined, once
    rows = frame.set_index("request_id").loc[all_labels["request_id"]]
    want = evaluate_performance_window(
        Baseline.load(stream_data.baseline), load_config(config).models["carloan"],
        LabeledRows(y_true=categorical_array(all_labels["repaid"]),
                    y_pred=categorical_array(rows["prediction"]),
                    score=rows["score"].to_numpy(dtype=np.float64)))
    assert want is not None
    assert last["value"] == pytest.approx(want["value"], abs=1e-12)
    assert performance_metric == pytest.approx(want["value"], abs=1e-12)


def test_sigterm_finishes_persists_commits_and_exits_0(
        tansu: str, stream_data: StreamData, tmp_path: Path) -> None:
    topics = new_topics(tansu, "sigterm")
    frame = stream_data.current
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    config = write_config(tmp_path / "driftloop.yaml", bootstrap=tansu, topics=topics,
                          state_url=state_url, baseline=str(stream_data.baseline),
                          # persist only when a window closes or at the end: what SIGTERM
                          # persists is then visible
                          kafka={"commit_interval_seconds": 3600})
    data = yaml.safe_load(config.read_text())
    data["jobs"] = {"metrics_interval": "0.2s"}
    config.write_text(yaml.safe_dump(data))
    service = start_service(config, "driftloop-a")
    send_predictions(tansu, topics.predictions, frame.iloc[:3000])
    poll(lambda: stored(state_url, topics)[0] == 3000, 60, "three windows persisted",
         service.proc)
    # then 500 rows of an open window: consumed, and saved by no persist (windows
    # persist when they close, the commit interval is an hour)
    send_predictions(tansu, topics.predictions, frame.iloc[3000:3500])
    # (events are counted when persisted: the consumer's offset tells they were read)
    poll(lambda: service.metric("driftloop_consumer_offset", topic=topics.predictions) == 3500,
         60, "every row read", service.proc, interval=0.05)
    assert stored(state_url, topics)[0] == 3000
    assert service.stop() == 0
    predictions_done, _ = stored(state_url, topics)
    assert predictions_done == 3500  # shutdown saved them
    # every record polled before the signal was persisted: the open window's checkpoint
    # holds the rows past the last closed window
    with Store(state_url) as store:
        windows = store.windows("carloan", limit=100)
        checkpoint = next(c.state for c in store.load_checkpoints()
                          if c.model == "carloan" and c.kind == "p0")
    assert isinstance(checkpoint, dict)
    open_rows = sum(w["n_rows"] for w in checkpoint["open"])
    assert len(windows) * WINDOW_ROWS + open_rows == predictions_done
    # ... and committed to Kafka as well
    consumer = KafkaConsumer(bootstrap_servers=[tansu], group_id=topics.group,
                             enable_auto_commit=False)
    try:
        committed = consumer.committed(TopicPartition(topics.predictions, 0))
    finally:
        consumer.close()
    assert committed == predictions_done

    # a restart resumes from the stored offsets without counting anything again
    service = start_service(config, "driftloop-b")
    try:
        send_predictions(tansu, topics.predictions, frame.iloc[3500:4000])
        seen = service.wait_windows(4)
        poll(lambda: counted(service, "prediction") == 4000 - predictions_done, 30,
             "the rest counted", service.proc)
        assert counted(service, "prediction") == 4000 - predictions_done
    finally:
        assert service.stop() == 0
    assert_history(seen, expected_windows(stream_data, config, 4000))
