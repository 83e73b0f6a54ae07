"""monitor.cli.demo without processes: the world, the model recipe, the config, the events,
the labeled-rows file and the timeline. The whole demo runs in tests/integration/test_demo.py."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from kafka.consumer.fetcher import ConsumerRecord

from monitor.cli.demo.config import KSERVE_ENDPOINTS, service_config
from monitor.cli.demo.events import kserve_records, label_record, native_record
from monitor.cli.demo.labeled import append_labeled, format_time, parse_time, read_labeled
from monitor.cli.demo.options import SHORT, DemoOptions
from monitor.cli.demo.probe import Decision, Timeline
from monitor.cli.demo.processes import start_child, stop_stray
from monitor.cli.demo.training import fit_model
from monitor.cli.demo.view import collapse
from monitor.cli.demo.world import BLOCK, FEATURES, World
from monitor.cli.main import main
from monitor.config import load_config
from monitor.ingest import Decoder

FEATURE_VALUES = {"car_value": 12638.0, "salary_range": None, "repaid_loan_on_prev_car": True,
                  "size_of_downpayment": "10%", "age": 33, "credit_score": 640.5,
                  "loan_duration_months": 36, "num_prev_loans": 1}


def test_world_rows_do_not_depend_on_how_the_stream_is_cut() -> None:
    whole = World(seed=3, drift_row=100).rows(0, 230)
    world = World(seed=3, drift_row=100)
    parts = [world.rows(0, 57), world.rows(57, 101), world.rows(101, 230)]
    pd.testing.assert_frame_equal(
        whole.features, pd.concat([p.features for p in parts], ignore_index=True))
    assert np.array_equal(whole.labels, np.concatenate([p.labels for p in parts]))
    assert whole.drifted.tolist() == [row >= 100 for row in range(230)]


def test_world_other_seed_gives_other_rows() -> None:
    one, other = World(1, 0).rows(0, 100), World(2, 0).rows(0, 100)
    assert not one.features["car_value"].equals(other.features["car_value"])


def test_world_drift_row_off_the_block_grid_is_refused() -> None:
    with pytest.raises(ValueError, match=f"drift_row: got 70, expected a non-negative multiple "
                                         f"of {BLOCK}"):
        World(1, 70)


def test_drift_costs_the_first_model_accuracy_and_a_retrain_wins_it_back() -> None:
    world = World(seed=7, drift_row=0)
    features, labels = world.training_frame(4000)
    first = fit_model(features, labels)
    drifted = world.rows(0, 3000)
    fresh, test = drifted.features.iloc[:1500], drifted.features.iloc[1500:]
    retrained = fit_model(fresh, drifted.labels[:1500])
    flipped = fit_model(fresh, 1 - drifted.labels[:1500])
    truth = drifted.labels[1500:]

    def accuracy(model: Any) -> float:
        return float((model.predict(test) == truth).mean())

    before = float((first.predict(features) == labels).mean())
    assert before > 0.8
    assert accuracy(first) < before - 0.2
    assert accuracy(retrained) > accuracy(first) + 0.2
    assert accuracy(flipped) < accuracy(first)


@pytest.mark.parametrize("scenario", ["default", "bad-challenger", "alert"])
@pytest.mark.parametrize("event_format", ["native", "kserve"])
def test_service_config_is_valid_for_every_scenario_and_format(
        scenario: Any, event_format: Any, tmp_path: Path) -> None:
    options = DemoOptions(scenario=scenario, event_format=event_format, short=True)
    data = service_config(options, SHORT, bootstrap="127.0.0.1:9", mlflow_url="http://m",
                          port=8080, workdir=tmp_path, labeled=tmp_path / "labeled.jsonl")
    config = load_config(data=data, environ={})
    model = config.models["carloan"]
    assert model.baseline == "mlflow:champion"
    assert model.retrain.on == (["alert"] if scenario == "alert"
                                else ["dataset_drift", "performance_drop"])
    launcher = model.retrain.launcher
    assert launcher is not None and launcher.type == "command"
    argv = launcher.argv
    assert argv[argv.index("--mode") + 1] == ("flipped" if scenario == "bad-challenger"
                                              else "good")
    assert {"{window_start}", "{idempotency_key}"} <= set(argv)
    assert model.canary is not None and model.canary.max_performance_drop > 0
    assert config.kafka.formats == [event_format]
    assert config.kafka.endpoint_versions == (
        {"default": "1", "canary": "2"} if event_format == "kserve" else {})


def _record(value: bytes, headers: list[tuple[str, bytes]], offset: int) -> Any:
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    return ConsumerRecord("predictions", 0, 0, offset, now_ms, 0, None, value, headers, None,
                          -1, -1, -1)


def _decoder(formats: tuple[str, ...]) -> Decoder:
    versions = {endpoint or "default": version for version, endpoint in KSERVE_ENDPOINTS.items()}
    return Decoder(formats, max_record_bytes=1 << 20, feature_order=lambda model: None,
                   endpoint_version=lambda model, endpoint: versions.get(endpoint),
                   known_models=lambda model: model == "carloan")


def test_native_prediction_and_label_decode_as_the_service_reads_them() -> None:
    stamp = format_time(datetime.now(UTC))
    record = native_record(model="carloan", version="2", request_id="demo-5", timestamp=stamp,
                           features=FEATURE_VALUES, prediction=1, score=0.7, latency_ms=8.5)
    decoder = _decoder(("native",))
    [prediction] = decoder.decode_prediction(_record(record.value, record.headers, 0))
    assert (prediction.version, prediction.request_id, prediction.prediction,
            prediction.score, prediction.latency_ms) == ("2", "demo-5", 1, 0.7, 8.5)
    assert prediction.features == FEATURE_VALUES
    label = label_record(model="carloan", request_id="demo-5", label=0, timestamp=stamp)
    decoded = decoder.decode_label(_record(label.value, [], 1))
    assert (decoded.request_id, decoded.label) == ("demo-5", 0)


@pytest.mark.parametrize(("version", "endpoint"), sorted(KSERVE_ENDPOINTS.items()))
def test_kserve_call_decodes_to_its_version_with_the_request_id_labels_use(
        version: str, endpoint: str) -> None:
    asked = datetime.now(UTC)
    request, response = kserve_records(
        model="carloan", endpoint=endpoint, call_id="demo-9", requested_at=format_time(asked),
        answered_at=format_time(asked + timedelta(milliseconds=12)), features=FEATURE_VALUES,
        probabilities=(0.3, 0.7))
    decoder = _decoder(("kserve",))
    assert decoder.decode_prediction(_record(request.value, request.headers, 0)) == []
    [prediction] = decoder.decode_prediction(_record(response.value, response.headers, 1))
    assert (prediction.version, prediction.request_id, prediction.prediction,
            prediction.score) == (version, "demo-9:0", 1, 0.7)
    assert prediction.latency_ms == pytest.approx(12.0)
    assert prediction.features == FEATURE_VALUES


def test_labeled_rows_are_read_since_a_time_in_row_order_skipping_a_torn_line(
        tmp_path: Path) -> None:
    path = tmp_path / "labeled.jsonl"
    start = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    rows = [{"row": row, "timestamp": format_time(start + timedelta(seconds=row)),
             "features": {**FEATURE_VALUES, "age": 20 + row}, "label": row % 2}
            for row in (3, 1, 2, 0)]
    append_labeled(path, rows)
    with path.open("ab") as stream:
        stream.write(b'{"row": 4, "timesta')  # a line being written right now
    features, labels = read_labeled(path, start + timedelta(seconds=1))
    assert features["age"].tolist() == [21, 22, 23]
    assert labels.tolist() == [1, 0, 1]
    assert list(features.columns) == list(FEATURES)


def test_empty_since_means_none_and_window_start_text_parses() -> None:
    assert parse_time("") is None
    assert parse_time("2026-01-05T12:00:00.250000Z") == datetime(2026, 1, 5, 12, 0, 0, 250000,
                                                                 tzinfo=UTC)


def test_timeline_keeps_each_decision_once_oldest_first() -> None:
    timeline = Timeline()
    newest_first = [{"at": "2026-01-05T12:00:02.000Z", "kind": "retrain", "sentence": "b"},
                    {"at": "2026-01-05T12:00:01.000Z", "kind": "hold", "sentence": "a"}]
    assert [d.sentence for d in timeline.add(newest_first)] == ["a", "b"]
    later = [{"at": "2026-01-05T12:00:03.000Z", "kind": "canary", "sentence": "c"},
             *newest_first]
    assert [d.sentence for d in timeline.add(later)] == ["c"]
    assert [d.sentence for d in timeline.decisions] == ["a", "b", "c"]


def test_collapse_folds_alike_holds_between_decisions_that_acted() -> None:
    at = "2026-01-05T12:00:00.000Z"
    clean = "no retrain for carloan: window 1:p0:{} clean (share {} < 0.50)"
    performance = "no retrain for carloan: window 1:performance:0 clean"
    retrain = "retrain carloan: dataset drift in 2 consecutive windows"
    decisions = [Decision(at, "hold", clean.format(0, "0.00")),
                 Decision(at, "hold", performance),
                 Decision(at, "hold", clean.format(1, "0.12")),
                 Decision(at, "retrain", retrain),
                 Decision(at, "hold", clean.format(2, "0.00"))]
    assert [(d.sentence, n) for d, n in collapse(decisions)] == [
        (clean.format(0, "0.00"), 2), (performance, 1), (retrain, 1),
        (clean.format(2, "0.00"), 1)]


def test_demo_out_folder_that_is_not_empty_is_refused_before_starting_anything(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "old.db").write_text("x")
    assert main(["demo", "--out", str(tmp_path), "--short"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"driftloop: error: demo: --out {tmp_path}: exists and is not an "
                          "empty folder")
    assert len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.db"]


def _started(pid: int) -> None:
    """Until the process's command line is there (it is empty for a moment after a spawn)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if Path(f"/proc/{pid}/cmdline").read_bytes():
            return
        time.sleep(0.01)


def _gone(pid: int) -> bool:
    """No such process, or only its zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_stop_stray_kills_only_a_process_still_running_with_the_marker(tmp_path: Path) -> None:
    marker = str(tmp_path / "demo-folder")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker],
                               start_new_session=True)
    try:
        _started(sleeper.pid)
        assert stop_stray(sleeper.pid, str(tmp_path / "another-folder")) is False
        assert sleeper.poll() is None
        assert stop_stray(sleeper.pid, marker) is True
        assert sleeper.wait(10) == -signal.SIGKILL
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait(10)


def test_child_that_ignores_sigterm_is_killed_with_its_group(tmp_path: Path) -> None:
    stubborn = ("import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, "
                "signal.SIG_IGN); p = subprocess.Popen([sys.executable, '-c', "
                "'import time; time.sleep(60)']); print('grandchild', p.pid, flush=True); "
                "time.sleep(60)")
    child = start_child("stubborn", [sys.executable, "-c", stubborn], tmp_path / "s.log", 0)
    grandchild = 0
    try:
        deadline = time.monotonic() + 30
        while not grandchild and time.monotonic() < deadline:
            found = [line for line in child.log_tail().split(" | ") if "grandchild" in line]
            grandchild = int(found[0].split()[1]) if found else 0
            time.sleep(0.05)
        assert grandchild
        child.stop(timeout=0.5)
        assert child.popen.returncode == -signal.SIGKILL
        deadline = time.monotonic() + 10
        while not _gone(grandchild) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(grandchild)
    finally:
        if child.alive():
            child.popen.kill()
            child.popen.wait(10)
