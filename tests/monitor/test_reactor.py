"""RetrainReactor against a real SQLite store, a fresh metrics registry and fake launchers."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import OperationalError

from monitor.config import Config, load_config
from monitor.metrics import Metrics
from monitor.react import RetrainReactor, build_launchers
from monitor.store import Store
from monitor.stream import WindowOutput
from triggers.alerts import AlertTrigger
from triggers.evidence import ManualRequest
from triggers.launch import LaunchError, LaunchRequest, RunRef, RunState, RunStatus

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class FakeLauncher:
    type: ClassVar[str] = "fake"
    tracks_status: ClassVar[bool] = True

    def __init__(self, errors: list[BaseException] | None = None) -> None:
        self.errors = list(errors or [])
        self.launched: list[LaunchRequest] = []
        self.state: RunState = "running"

    def launch(self, request: LaunchRequest) -> RunRef:
        if self.errors:
            raise self.errors.pop(0)
        self.launched.append(request)
        return RunRef("fake", f"run-{len(self.launched)}", request.idempotency_key)

    def status(self, ref: RunRef) -> RunStatus:
        return RunStatus(self.state, f"fake run {ref.run_id} {self.state}")


class UntrackedLauncher(FakeLauncher):
    type: ClassVar[str] = "webhook"
    tracks_status: ClassVar[bool] = False


def make_config(**retrain: Any) -> Config:
    settings = {"on": ["dataset_drift", "performance_drop", "alert", "manual"],
                "consecutive_windows": 2, "cooldown": "1h", **retrain}
    return load_config(data={"models": {"carloan": {"baseline": "unused.json",
                                                    "retrain": settings}}}, environ={})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def reactor_for(store: Store, registry: CollectorRegistry, clock: Clock, launcher: Any,
                config: Config | None = None) -> RetrainReactor:
    return RetrainReactor(config or make_config(), store, Metrics(registry),
                          {"carloan": launcher}, clock=clock, retry_base_seconds=30)


def window(index: int, *, drift: bool, performance: dict[str, Any] | None = None) -> WindowOutput:
    start = T0 + timedelta(minutes=index)
    result = {"model": "carloan", "version": "1", "window": index, "partition": 0,
              "start": start.isoformat(), "end": (start + timedelta(minutes=1)).isoformat(),
              "rows": 500, "dataset_drift": drift, "drift_share": 0.6 if drift else 0.1,
              "quality": {"violations": []}, "performance": performance}
    return WindowOutput("carloan", "1", f"p0:{index}", index, result, None, None)


def alert(starts_minute: int = 0, fingerprint: str = "f00d") -> AlertTrigger:
    return AlertTrigger("carloan", "DriftloopDatasetDrift", fingerprint,
                        T0 + timedelta(minutes=starts_minute), "alertmanager")


def triggers(registry: CollectorRegistry, reason: str) -> float:
    value = registry.get_sample_value("driftloop_retrain_triggers_total",
                                      {"model": "carloan", "reason": reason})
    return value or 0.0


def launches(registry: CollectorRegistry, outcome: str, launcher: str = "fake") -> float:
    value = registry.get_sample_value("driftloop_retrain_launches_total",
                                      {"model": "carloan", "launcher": launcher,
                                       "outcome": outcome})
    return value or 0.0


def test_drift_in_two_consecutive_windows_launches_once_and_persists_first(
        store: Store, registry: CollectorRegistry, clock: Clock) -> None:
    launcher = FakeLauncher()
    reactor = reactor_for(store, registry, clock, launcher)
    reactor.on_windows([window(0, drift=True)])
    reactor.drain()  # the retrain job decides
    assert launcher.launched == []
    reactor.on_windows([window(1, drift=True)])
    reactor.drain()  # the retrain job decides
    assert len(launcher.launched) == 1
    request = launcher.launched[0]
    assert (request.model, request.reason, request.version) == ("carloan", "dataset_drift", "1")
    stored = store.get_trigger_state("carloan")
    assert stored is not None and stored.running_run_id == request.idempotency_key
    assert stored.cooldown_until_ms == int((T0 + timedelta(hours=1)).timestamp() * 1000)
    run = store.run_by_key(request.idempotency_key)
    assert run is not None and run.status == "running" and run.external_id == "run-1"
    sentences = [d.sentence for d in store.decisions("carloan")]
    assert sentences[0] == ("retrain carloan: dataset drift in 2 consecutive windows "
                            "(share 0.60 >= 0.50); run fake run-1 started")
    assert triggers(registry, "dataset_drift") == 1
    assert launches(registry, "started") == 1


def test_replayed_windows_and_repeated_alerts_within_cooldown_start_nothing(
        store: Store, registry: CollectorRegistry, clock: Clock) -> None:
    launcher = FakeLauncher()
    reactor = reactor_for(store, registry, clock, launcher)
    reactor.on_windows([window(0, drift=True), window(1, drift=True)])
    reactor.drain()  # the retrain job decides
    reactor.on_windows([window(0, drift=True), window(1, drift=True)])
    reactor.drain()  # the retrain job decides
    first = reactor.on_alert(alert())
    again = reactor.on_alert(alert())
    assert len(launcher.launched) == 1
    assert first.action == "none" and "still running" in first.sentence
    assert again.action == "none" and "already handled" in again.sentence
    assert triggers(registry, "alert") == 0


def test_restart_on_the_same_store_keeps_the_cooldown(
        store: Store, registry: CollectorRegistry, clock: Clock) -> None:
    first = FakeLauncher()
    reactor_for(store, registry, clock, first).on_alert(alert())
    first.state = "succeeded"
    reactor_for(store, CollectorRegistry(), clock, first).tick()
    # a new process: fresh launcher, same state store
    second = FakeLauncher()
    restarted = reactor_for(store, CollectorRegistry(), clock, second)
    clock.advance(600)
    outcome = restarted.on_alert(alert(starts_minute=5, fingerprint="beef"))
    restarted.on_windows([window(0, drift=True), window(1, drift=True)])
    restarted.drain()  # the retrain job decides
    assert second.launched == []
    assert outcome.action == "none" and "in cooldown until 2026-01-05T13:00:00Z" in outcome.sentence
    assert len(first.launched) == 1


def test_status_poll_finishes_the_run_and_a_later_alert_launches_after_cooldown(
        store: Store, registry: CollectorRegistry, clock: Clock) -> None:
    launcher = FakeLauncher()
    reactor = reactor_for(store, registry, clock, launcher)
    key = reactor.on_alert(alert()).idempotency_key
    assert key is not None
    reactor.tick()
    assert store.run_by_key(key).status == "running"  # type: ignore[union-attr]
    launcher.state = "succeeded"
    reactor.tick()
    run = store.run_by_key(key)
    assert run is not None and run.status == "succeeded" and run.finished_at_ms is not None
    assert store.get_trigger_state("carloan").running_run_id is None  # type: ignore[union-attr]
    assert f"retrain run {key} for carloan succeeded" in store.decisions("carloan")[0].sentence
    clock.advance(3601)
    later = reactor.on_alert(alert(starts_minute=70, fingerprint="cafe"))
    assert later.action == "retrain" and len(launcher.launched) == 2


def test_retryable_launch_error_is_retried_on_a_later_tick(
        store: Store, registry: CollectorRegistry, clock: Clock) -> None:
    launcher = FakeLauncher([LaunchError("kfp: 503 from http://kfp", retryable=True, status=503)])
    reactor = reactor_for(store, registry, clock, launcher)
    outcome = reactor.on_manual("carloan", ManualRequest("req-1", "ana"))
    assert outcome.action == "retrain" and outcome.launch == "retrying"
    key = outcome.idempotency_key
    assert store.run_by_key(key).status == "retrying"  # type: ignore[arg-type, union-attr]
    reactor.tick()  # not due yet
    assert launcher.launched == []
    clock.advance(31)
    reactor.tick()
    assert [r.idempotency_key for r in launcher.launched] == [key]
    assert store.run_by_key(key).status == "running"  # type: ignore[arg-type, union-attr]
    assert launches(registry, "retrying") == 1 and launches(registry, "started") == 1


def test_final_launch_error_is_recorded_and_frees_the_model(
        store: Store, registry: CollectorRegistry, clock: Clock) -> None:
    error = LaunchError("airflow: 404 dag 'retrain' not found", retryable=False, status=404)
    launcher = FakeLauncher([error])
    reactor = reactor_for(store, registry, clock, launcher)
    outcome = reactor.on_alert(alert())
    assert outcome.launch == "failed"
    run = store.run_by_key(outcome.idempotency_key)  # type: ignore[arg-type]
    assert run is not None and run.status == "failed" and "404" in run.detail["error"]
    state = store.get_trigger_state("carloan")
    assert state is not None and state.running_run_id is None
    assert launches(registry, "failed") == 1
    # a person may still ask (manual ignores the cooldown, never a running run)
    assert reactor.on_manual("carloan", ManualRequest("req-2")).launch == "started"


def test_untracked_launcher_finishes_as_unknown_right_after_launch(
        store: Store, registry: CollectorRegistry, clock: Clock) -> None:
    launcher = UntrackedLauncher()
    reactor = reactor_for(store, registry, clock, launcher)
    outcome = reactor.on_alert(alert())
    run = store.run_by_key(outcome.idempotency_key)  # type: ignore[arg-type]
    assert run is not None and run.status == "unknown"
    assert store.get_trigger_state("carloan").running_run_id is None  # type: ignore[union-attr]
    assert reactor.on_alert(alert(fingerprint="other")).action == "none"  # cooldown holds


def test_performance_windows_count_once_not_again_inside_window_results(
        store: Store, registry: CollectorRegistry, clock: Clock) -> None:
    launcher = FakeLauncher()
    reactor = reactor_for(store, registry, clock, launcher)
    degraded = {"metric": "accuracy", "value": 0.80, "baseline": 0.94, "degraded": True,
                "labeled_rows": 500, "window": 0}
    reactor.on_performance("carloan", "1", degraded)
    reactor.drain()  # the retrain job decides
    # clean windows repeating the latest performance must not make it two in a row
    reactor.on_windows([window(0, drift=False, performance=degraded),
                        window(1, drift=False, performance=degraded)])
    reactor.drain()  # the retrain job decides
    assert launcher.launched == []
    reactor.on_performance("carloan", "1", {**degraded, "window": 1})
    reactor.drain()  # the retrain job decides
    assert [r.reason for r in launcher.launched] == ["performance_drop"]
    assert "accuracy 0.800 vs baseline 0.940" in launcher.launched[0].sentence


ESTIMATED = {"metric": "accuracy", "value": 0.81, "lower": 0.79, "upper": 0.83,
             "baseline": 0.89, "threshold": 0.87, "degraded": True, "status": "degraded",
             "n": 500}


def estimated_window(index: int) -> WindowOutput:
    out = window(index, drift=False)
    out.result["estimated_performance"] = dict(ESTIMATED)
    return out


@pytest.mark.parametrize("use_estimate", [True, False])
def test_estimated_drop_starts_performance_drop_before_labels_only_when_configured(
        store: Store, registry: CollectorRegistry, clock: Clock, use_estimate: bool) -> None:
    launcher = FakeLauncher()
    config = load_config(data={"models": {"carloan": {
        "baseline": "unused.json", "performance": {"use_estimate": use_estimate},
        "retrain": {"on": ["performance_drop"], "consecutive_windows": 2}}}}, environ={})
    reactor = reactor_for(store, registry, clock, launcher, config)
    reactor.on_windows([estimated_window(0), estimated_window(1)])
    reactor.drain()  # the retrain job decides
    if not use_estimate:
        assert launcher.launched == []
        return
    assert [r.reason for r in launcher.launched] == ["performance_drop"]
    assert ("estimated accuracy 0.810 vs baseline 0.890; no realized performance of version "
            "1 yet") in launcher.launched[0].sentence


def test_crash_after_persisting_the_decision_relaunches_the_same_key(
        store: Store, registry: CollectorRegistry, clock: Clock) -> None:
    crashing = FakeLauncher([SystemExit("killed mid-launch")])
    with pytest.raises(SystemExit):
        reactor_for(store, registry, clock, crashing).on_alert(alert())
    key = store.get_trigger_state("carloan").running_run_id  # type: ignore[union-attr]
    assert store.run_by_key(key).status == "launching"  # type: ignore[arg-type, union-attr]
    launcher = FakeLauncher()
    restarted = reactor_for(store, CollectorRegistry(), clock, launcher)
    restarted.tick()
    assert launcher.launched == []  # the dead creator's launch lease has not passed
    clock.advance(61)
    restarted.tick()
    restarted.tick()
    assert [r.idempotency_key for r in launcher.launched] == [key]


class TickingLauncher(FakeLauncher):
    """Launches while another replica's reactor ticks on the same store, mid-launch."""

    def __init__(self) -> None:
        super().__init__()
        self.other: RetrainReactor | None = None

    def launch(self, request: LaunchRequest) -> RunRef:
        if self.other is not None:
            self.other.tick()
        return super().launch(request)


def test_another_replica_ticking_mid_launch_does_not_launch_the_run_again(
        store: Store, registry: CollectorRegistry, clock: Clock) -> None:
    """Replicas share the store and each ticks every model: a run another replica has
    just created and is launching (status ``launching``) is its creator's to launch."""
    mine, theirs = TickingLauncher(), FakeLauncher()
    other = reactor_for(store, CollectorRegistry(), clock, theirs)
    mine.other = other
    outcome = reactor_for(store, registry, clock, mine).on_alert(alert())
    assert outcome.launch == "started"
    other.tick()
    assert [r.idempotency_key for r in mine.launched] == [outcome.idempotency_key]
    assert theirs.launched == []


def test_two_replicas_retrying_one_run_launch_it_once(
        store: Store, registry: CollectorRegistry, clock: Clock) -> None:
    first = FakeLauncher([LaunchError("kfp: 503 from http://kfp", retryable=True, status=503)])
    outcome = reactor_for(store, registry, clock, first).on_manual(
        "carloan", ManualRequest("req-1", "ana"))
    assert outcome.launch == "retrying"
    a, b = FakeLauncher(), FakeLauncher()
    ra = reactor_for(store, CollectorRegistry(), clock, a)
    rb = reactor_for(store, CollectorRegistry(), clock, b)
    clock.advance(31)
    # b reads the run as due while a claims and launches it
    due = store.run_by_key(outcome.idempotency_key)
    ra.tick()
    store.run_by_key = lambda key: due  # type: ignore[method-assign]
    rb.tick()
    assert len(a.launched) + len(b.launched) == 1


def test_store_failure_on_the_consumer_path_is_logged_not_raised(
        store: Store, registry: CollectorRegistry, clock: Clock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    launcher = FakeLauncher()
    reactor = reactor_for(store, registry, clock, launcher)

    def down(model: str) -> None:
        raise OperationalError("SELECT", {}, Exception("database is locked"))

    monkeypatch.setattr(store, "get_trigger_state", down)
    reactor.on_windows([window(0, drift=True), window(1, drift=True)])
    reactor.drain()  # the retrain job decides
    reactor.tick()
    with pytest.raises(OperationalError):
        reactor.on_alert(alert())  # the HTTP route turns this into a 503
    assert launcher.launched == []


def test_catch_up_reacts_to_windows_persisted_before_a_crash(
        store: Store, registry: CollectorRegistry, clock: Clock) -> None:
    for index in (0, 1):
        out = window(index, drift=True)
        store.put_window("carloan", "1", out.key, index, out.result)
    launcher = FakeLauncher()
    reactor = reactor_for(store, registry, clock, launcher)
    reactor.catch_up()
    reactor.catch_up()
    assert [r.reason for r in launcher.launched] == ["dataset_drift"]


def test_command_launcher_from_config_runs_and_its_exit_status_is_recorded(
        store: Store, registry: CollectorRegistry, clock: Clock, tmp_path: Path) -> None:
    out = tmp_path / "runs.txt"
    code = f"open({str(out)!r}, 'a').write('{{idempotency_key}} {{reason}}\\n')"
    config = make_config(launcher={"type": "command", "argv": [sys.executable, "-c", code]})
    launchers = build_launchers(config)
    reactor = RetrainReactor(config, store, Metrics(registry), launchers, clock=clock)
    key = reactor.on_alert(alert()).idempotency_key
    launchers["carloan"].wait(RunRef("command", "", key or ""), timeout=30)  # type: ignore[attr-defined]
    reactor.tick()
    run = store.run_by_key(key or "")
    assert run is not None and run.status == "succeeded" and run.detail["exit_code"] == 0
    assert out.read_text() == f"{key} alert\n"
