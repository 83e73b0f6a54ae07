"""The broker goes away in the middle of a stream and comes back.

Tansu keeps topics in memory, so the broker that comes back has the topics
again (re-created) but empty, with offsets from 0 and new topic ids: the stored
offsets of the old topics mean nothing there. The service must stay up, say
``/readyz`` 503 naming the broker while it is away, and then evaluate the rest of
the stream, produced after the restart, without losing or skipping an event:
the windows (the open one carried over the outage included) equal
``driftloop evaluate`` on the whole stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from monitor.baseline import Baseline
from monitor.cli.evaluate import evaluate_data
from monitor.cli.examples import FEATURES, WINDOWS
from monitor.cli.replay import prediction_events, produce
from monitor.config import load_config
from monitor.ingest import ensure_topics
from monitor.store import Store
from tests.support.procs import start_tansu
from tests.support.service import (
    WINDOW_ROWS,
    StreamData,
    assert_same,
    new_topics,
    poll,
    start_service,
    write_config,
)

pytestmark = pytest.mark.integration


def test_broker_restart_mid_stream_service_stays_up_and_loses_nothing(
        stream_data: StreamData, tmp_path: Path) -> None:
    broker = start_tansu(tmp_path)
    bootstrap = f"127.0.0.1:{broker.port}"
    frame = stream_data.current
    topics = new_topics(bootstrap, "outage")
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    config = write_config(tmp_path / "driftloop.yaml", bootstrap=bootstrap, topics=topics,
                          state_url=state_url, baseline=str(stream_data.baseline))

    def events(part: pd.DataFrame) -> Iterator[tuple[bytes, bytes]]:
        return prediction_events(part, model="carloan", version="1", features=FEATURES,
                                 prediction="prediction", score="score")

    def stored() -> int:
        with Store(state_url) as store:
            return store.offsets(topics.group).get((topics.predictions, 0), 0)

    service = start_service(config)
    try:
        produce([bootstrap], topics.predictions, events(frame.iloc[:2500]), partition=0)
        poll(lambda: stored() == 2500, 60, "the first part persisted", service.proc)
        assert service.get("/readyz").status_code == 200

        broker.stop()
        readyz = poll(lambda: (r := service.get("/readyz")).status_code == 503 and r, 60,
                      "readyz 503 while the broker is away", service.proc)
        assert "broker" in readyz.json()["detail"]
        assert readyz.json()["dependencies"]["broker"]["ready"] is False
        assert service.proc.alive()

        broker = start_tansu(tmp_path, port=broker.port)
        ensure_topics(bootstrap, [topics.predictions, topics.labels, topics.dead_letters])
        produce([bootstrap], topics.predictions, events(frame.iloc[2500:]), partition=0)
        seen = service.wait_windows(WINDOWS, timeout=90)
        poll(lambda: service.get("/readyz").status_code == 200, 30, "ready again", service.proc)
        poll(lambda: stored() == len(frame) - 2500, 30, "the rest persisted", service.proc)
        assert service.metric("driftloop_events_total", kind="prediction") == len(frame)
    finally:
        code = service.stop()
        broker.stop()
    assert code == 0
    expected, _ = evaluate_data(Baseline.load(stream_data.baseline), frame,
                                load_config(config).models["carloan"],
                                window_rows=WINDOW_ROWS, source="expected")
    assert [w["window"] for w in seen] == list(range(WINDOWS))
    assert sum(w["rows"] for w in seen) == len(frame)
    for got, want in zip(seen, expected, strict=True):
        for key in ("rows", "dataset_drift", "drift_share", "features", "prediction_drift",
                    "quality", "start", "end"):
            assert_same(got[key], want[key], f"window {want['window']} {key}")
