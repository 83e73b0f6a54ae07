"""Every metric of the reference moves when its event happens, in a running ``driftloop serve``.

A drifting stream with labels, a bad record, a late event, labels that never come
(expired), a retrain and its launch, and drift reports: afterwards every counter and
histogram of ``monitor.metrics.METRICS`` has counted something and every gauge has a
series. The few whose events this stream cannot make happen are listed with where
they are shown to move instead; the list is checked too, so it cannot go stale.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import orjson
import pandas as pd
import pytest
import yaml
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from monitor.cli.examples import FEATURES
from monitor.cli.replay import label_events, prediction_events, produce
from monitor.metrics import METRICS
from tests.support.service import (
    WINDOW_ROWS,
    StreamData,
    new_topics,
    poll,
    start_service,
    write_config,
)

pytestmark = pytest.mark.integration

# metric -> why this stream cannot move it, and where it is shown to
ELSEWHERE = {
    "driftloop_canary_status": "needs a canary: the canary integration tests",
    "driftloop_canary_decisions_total": "needs a canary: the canary integration tests",
    "driftloop_job_errors_total": "needs a job that fails: tests/monitor/test_jobs.py "
                                  "(here its series are 0 from the start)",
}


def moved(text: str) -> dict[str, bool]:
    """Per metric: a counter or histogram counted something, a gauge has a series."""
    seen: dict[str, bool] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name
            for suffix in ("_created", "_bucket", "_sum"):
                if name.endswith(suffix):
                    break
            else:
                base = name.removesuffix("_count").removesuffix("_total")
                counted = family.type == "gauge" or sample.value > 0
                seen[base] = seen.get(base, False) or counted
    return seen


def test_every_metric_moves_when_its_event_happens(
        tansu: str, stream_data: StreamData, tmp_path: Path) -> None:
    topics = new_topics(tansu, "metrics")
    launcher = {"type": "command", "argv": [sys.executable, "-c", "pass"]}
    config = write_config(tmp_path / "driftloop.yaml", bootstrap=tansu, topics=topics,
                          state_url=f"sqlite:///{tmp_path / 'state.db'}",
                          baseline=str(stream_data.baseline),
                          # the stream spans four days: with a 3-day TTL the labels of the
                          # first hours come too late (their predictions expire), the rest join
                          model={"performance": {"window_rows": 50, "label_ttl": "3d"},
                                 "retrain": {"on": ["dataset_drift"], "consecutive_windows": 1,
                                             "launcher": launcher}})
    data = yaml.safe_load(config.read_text())
    # a second model on event-time windows, for late events
    data["models"]["timed"] = {"baseline": str(stream_data.baseline),
                               "window": {"duration": "1h"}, "retrain": {"on": []}}
    data["jobs"] = {"label_expiry_interval": "1s", "metrics_interval": "1s",
                    "retrain_interval": "1s"}
    config.write_text(yaml.safe_dump(data))
    frame = stream_data.current
    service = start_service(config)
    try:
        produce([tansu], topics.predictions, prediction_events(
            frame, model="carloan", version="1", features=FEATURES, prediction="prediction",
            score="score"), partition=0)
        # labels for the first two windows only: the rest wait, and expire on the clock
        first = frame.iloc[: 2 * WINDOW_ROWS]["request_id"]
        labels = stream_data.labels[stream_data.labels["request_id"].isin(first)]
        produce([tansu], topics.labels, label_events(labels, model="carloan", label="repaid"),
                partition=0)
        timed = frame.iloc[:300].copy()
        hours = pd.to_datetime(timed["timestamp"], utc=True)
        timed["timestamp"] = hours.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        late = timed.iloc[[0]].copy()  # an hour before the rest: its window has closed
        late["timestamp"] = (hours.iloc[[0]] - pd.Timedelta(hours=1)).dt.strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        produce([tansu], topics.predictions, prediction_events(
            pd.concat([timed, late]), model="timed", version="1", features=FEATURES,
            prediction="prediction", score="score"), partition=0)
        producer = KafkaProducer(bootstrap_servers=[tansu])
        producer.send(topics.predictions, value=b"{not json", partition=0)
        producer.send(topics.labels, value=orjson.dumps({"model": "carloan"}), partition=0)
        producer.close()
        service.wait_windows(len(frame) // WINDOW_ROWS)
        wanted = {spec.name.removesuffix("_total") if spec.type == "counter" else spec.name
                  for spec in METRICS}
        elsewhere = {name.removesuffix("_total") for name in ELSEWHERE}

        def missing() -> list[str]:
            seen = moved(service.get("/metrics").text)
            return sorted(name for name in wanted - elsewhere if not seen.get(name))

        try:
            poll(lambda: not missing(), 90, "every metric moving", service.proc, interval=1.0)
        except TimeoutError as exc:
            raise AssertionError(f"metrics that did not move: {missing()}") from exc
        time.sleep(0.5)
        seen = moved(service.get("/metrics").text)
    finally:
        assert service.stop() == 0
    # the list of exceptions is about metrics that exist and really did not move here
    assert elsewhere <= wanted
    assert not any(seen.get(name) for name in elsewhere
                   if name != "driftloop_job_errors")  # its series start at 0
