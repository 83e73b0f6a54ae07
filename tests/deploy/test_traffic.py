"""deploy/compose/traffic.py: the example data it prepares and the stream it replays."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from monitor.config import load_config
from tests.deploy.stack import DRIFTLOOP_CONFIG, traffic_module


@pytest.fixture(scope="module")
def traffic() -> ModuleType:
    return traffic_module()


def _frames(n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    from monitor.cli.examples import generate

    data = generate(seed=3, reference_rows=500, window_rows=n // 6)
    return data.current, data.labels


def test_chunks_send_every_prediction_once_and_labels_one_chunk_later(
        traffic: ModuleType) -> None:
    current, labels = _frames(600)
    got = list(traffic.chunks(current, labels, rows=250, run=2))
    assert [len(c.predictions) for c in got] == [250, 250, 100, 0]
    assert got[0].labels == []
    sent = [json.loads(value)["request_id"] for c in got for _, value in c.predictions]
    assert sent == [f"r2-{i}" for i in current["request_id"]]
    labelled = set(labels["request_id"].astype(str))
    for previous, chunk in itertools.pairwise(got):
        ids = {json.loads(value)["request_id"] for _, value in previous.predictions}
        late = [json.loads(value) for _, value in chunk.labels]
        assert {label["request_id"] for label in late} == \
            {i for i in ids if i.removeprefix("r2-") in labelled}
        assert all(label["model"] == "carloan" for label in late)
    assert sum(len(c.labels) for c in got) == len(labels)


def test_chunks_of_two_passes_never_share_a_request_id(traffic: ModuleType) -> None:
    current, labels = _frames(120)
    first = {key for c in traffic.chunks(current, labels, 50, run=1) for key, _ in c.predictions}
    second = {key for c in traffic.chunks(current, labels, 50, run=2) for key, _ in c.predictions}
    assert len(first) == len(second) == len(current) and not first & second


def test_prepare_writes_the_baseline_driftloop_loads_once(traffic: ModuleType,
                                                          tmp_path: Path) -> None:
    baseline = traffic.prepare(tmp_path / "example")
    assert baseline == tmp_path / "example" / "baseline.json"
    assert sorted(p.name for p in baseline.parent.iterdir()) == [
        "baseline.json", "baseline.reference.parquet", "current.csv", "labels.csv",
        "reference.csv"]
    document = json.loads(baseline.read_text())
    assert document["model"] == "carloan"
    # the compose config names the model and reads the baseline from this directory
    config = load_config(DRIFTLOOP_CONFIG, environ={})
    assert Path(config.models["carloan"].baseline).name == baseline.name
    written = baseline.stat().st_mtime_ns
    assert traffic.prepare(baseline.parent) == baseline
    assert baseline.stat().st_mtime_ns == written  # a restart keeps the same baseline


def test_replay_refuses_a_rate_that_is_not_positive(traffic: ModuleType,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        traffic.main(["replay", "--data", ".", "--bootstrap", "kafka:9092", "--rate", "0"])
    assert "--rate: got 0, expected a positive number" in capsys.readouterr().err


@pytest.mark.integration
def test_replay_produces_every_prediction_and_label_to_a_real_broker(
        traffic: ModuleType, tansu: str, tmp_path: Path) -> None:
    from kafka import KafkaConsumer, TopicPartition

    from tests.support.service import new_topics

    current, labels = _frames(300)
    current.to_csv(tmp_path / "current.csv", index=False)
    labels.to_csv(tmp_path / "labels.csv", index=False)
    topics = new_topics(tansu, "traffic")
    sent = traffic.replay_forever(tmp_path, [tansu], rate=1000, loop=False,
                                  predictions_topic=topics.predictions,
                                  labels_topic=topics.labels)
    assert sent == len(current)
    consumer = KafkaConsumer(bootstrap_servers=[tansu], group_id=None,
                             auto_offset_reset="earliest", consumer_timeout_ms=3000)
    try:
        received = {}
        for topic in (topics.predictions, topics.labels):
            consumer.assign([TopicPartition(topic, 0)])
            consumer.seek_to_beginning()
            received[topic] = [json.loads(record.value) for record in consumer]
    finally:
        consumer.close()
    assert len(received[topics.predictions]) == len(current)
    assert len(received[topics.labels]) == len(labels)
    assert {e["request_id"] for e in received[topics.labels]} <= \
        {e["request_id"] for e in received[topics.predictions]}
