"""CanaryReactor against a real SQLite store, an in-memory registry, a recording hook and
a fresh metrics registry: every path of a tick, restarts and registry outages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from monitor.config import Config, load_config
from monitor.metrics import Metrics
from monitor.react import CanaryReactor, build_hooks, canary_policies, known_secrets
from monitor.react.canary_support import hook_request
from monitor.store import RetrainRun, Store
from monitor.stream import ArmAccumulator, ArmSpec
from monitor.stream.arms import pack_arms
from tests.monitor.canary_fakes import Clock, HookRecorder, MemoryRegistry, traffic
from triggers.launch import LaunchError
from triggers.moves import STATUS_TAG, HookCall

MODEL = "carloan"
INTERVAL = 10.0
CANARY = {"min_events": 300, "min_labels": 100, "iterations": 2, "threshold": 2,
          "max_inconclusive": 3, "max_performance_drop": 0.01, "interval": INTERVAL}


def make_config(**canary: Any) -> Config:
    return load_config(data={
        "mlflow": {"tracking_uri": "http://mlflow.invalid", "poll_interval": 60},
        "models": {MODEL: {"baseline": "unused.json", "canary": {**CANARY, **canary}}},
    }, environ={})


class Rig:
    """One reactor over a store that outlives it (``restart`` builds a new one)."""

    def __init__(self, store: Store, config: Config | None = None,
                 hook: HookRecorder | None = None) -> None:
        self.store = store
        self.config = config or make_config()
        self.clock = Clock()
        self.registry = MemoryRegistry(aliases={"champion": "1"})
        self.registry.register("1")
        self.hook = hook or HookRecorder()
        self.restart()

    def restart(self) -> None:
        self.metrics_registry = CollectorRegistry()
        self.arms = ArmAccumulator({MODEL: ArmSpec("accuracy", False, categories=("0", "1"))})
        self.reactor = CanaryReactor(
            self.config, self.store, Metrics(self.metrics_registry), self.arms, self.registry,
            canary_policies(self.config), {MODEL: self.hook}, clock=self.clock,
            monotonic=self.clock.monotonic)

    def tick(self, seconds: float = 1.0) -> None:
        self.clock.advance(seconds)
        self.reactor.tick()

    def interval(self, champion: float, challenger: float, n: int = 500,
                 challenger_n: int | None = None, seed: int = 0) -> None:
        """One interval of traffic of both arms, then the tick that judges it."""
        state = self.state()
        traffic(self.arms, MODEL, state.champion, n, champion, seed=seed)
        traffic(self.arms, MODEL, state.challenger, n if challenger_n is None else challenger_n,
                challenger, seed=seed + 1)
        self.tick(INTERVAL)

    def state(self) -> Any:
        found = self.reactor.state(MODEL)
        assert found is not None
        return found

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics_registry.get_sample_value(name, {"model": MODEL, **labels}) or 0.0

    def start_canary(self, version: str = "2") -> None:
        """Alias a challenger and tick until its canary progresses (interval begun)."""
        self.registry.register(version)
        self.registry.aliases["challenger"] = version
        self.reactor.look_now(MODEL)  # as a webhook would
        self.tick()  # start decided
        self.tick()  # start applied
        assert self.state().phase == "progressing"
        self.tick()  # the first interval begins


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened


def test_alias_challenger_starts_a_canary_applied_at_the_next_tick(store: Store) -> None:
    rig = Rig(store)
    rig.registry.register("2")
    rig.registry.aliases["challenger"] = "2"
    rig.tick()
    started = rig.state()
    assert (started.phase, started.champion, started.challenger) == ("starting", "1", "2")
    assert rig.hook.calls == [] and rig.registry.writes == []
    rig.tick()
    assert rig.state().phase == "progressing"
    assert rig.registry.tags["2"][STATUS_TAG] == "progressing"
    assert rig.hook.reasons == ["start"] and rig.hook.calls[0].version == "2"
    assert rig.hook.calls[0].details is not None
    assert rig.hook.calls[0].details["champion"] == "1"
    assert [d.kind for d in store.decisions(MODEL)] == ["canary", "canary"]
    assert rig.metric("driftloop_canary_status") == 0


def test_better_challenger_is_promoted_after_iterations_passing_checks(store: Store) -> None:
    rig = Rig(store)
    rig.start_canary()
    rig.interval(champion=0.75, challenger=0.95)
    assert (rig.state().passed, rig.state().last_outcome) == (1, "pass")
    rig.interval(champion=0.75, challenger=0.95, seed=2)
    assert rig.state().phase == "promoting"
    assert rig.metric("driftloop_canary_decisions_total", decision="promote") == 1
    rig.tick()
    assert rig.state().phase == "succeeded"
    assert rig.registry.aliases == {"champion": "2", "previous_champion": "1"}
    assert rig.registry.tags["2"][STATUS_TAG] == "promoted"
    assert rig.registry.tags["1"][STATUS_TAG] == "replaced"
    assert rig.hook.reasons == ["start", "promote"]
    assert rig.metric("driftloop_canary_status") == 1
    rig.tick()
    rig.tick()
    assert rig.hook.reasons == ["start", "promote"]  # nothing more to do
    assert rig.metric("driftloop_canary_decisions_total", decision="promote") == 1


def test_worse_challenger_is_rolled_back_after_threshold_failed_checks(store: Store) -> None:
    rig = Rig(store)
    rig.start_canary()
    rig.interval(champion=0.75, challenger=0.5)
    assert (rig.state().failed_checks, rig.state().phase) == (1, "progressing")
    rig.interval(champion=0.75, challenger=0.5, seed=2)
    assert rig.state().phase == "rolling_back"
    rig.tick()
    assert rig.state().phase == "rolled_back"
    assert rig.registry.aliases == {"champion": "1"}
    assert rig.registry.tags["2"][STATUS_TAG] == "rejected"
    assert "performance" in rig.registry.tags["2"]["driftloop.canary.evidence"]
    assert rig.metric("driftloop_canary_decisions_total", decision="rollback") == 1
    assert rig.metric("driftloop_canary_status") == 2
    assert rig.hook.reasons == ["start", "rollback"]


def test_too_little_traffic_stays_inconclusive_until_max_inconclusive(store: Store) -> None:
    rig = Rig(store)
    rig.start_canary()
    for seed in range(2):
        rig.interval(champion=0.75, challenger=0.95, challenger_n=50, seed=seed * 2)
        assert rig.state().phase == "progressing"
        assert rig.state().last_outcome == "inconclusive"
        assert rig.registry.aliases == {"champion": "1", "challenger": "2"}
    assert "too little traffic" in rig.state().evidence["reason"]
    rig.interval(champion=0.75, challenger=0.95, challenger_n=50, seed=9)
    assert rig.state().phase == "rolling_back"
    rig.tick()
    assert rig.registry.aliases == {"champion": "1"}


def test_an_interval_is_judged_only_once_it_has_elapsed(store: Store) -> None:
    rig = Rig(store)
    rig.start_canary()
    traffic(rig.arms, MODEL, "1", 500, 0.75)
    traffic(rig.arms, MODEL, "2", 500, 0.95, seed=1)
    rig.tick(INTERVAL / 2)
    assert rig.state().checks == 0
    rig.tick(INTERVAL / 2)
    assert rig.state().checks == 1


def test_an_interval_without_any_event_is_not_a_check(store: Store) -> None:
    rig = Rig(store)
    rig.start_canary()
    for _ in range(CANARY["max_inconclusive"] + 1):
        rig.tick(INTERVAL)
    assert (rig.state().phase, rig.state().checks) == ("progressing", 0)
    traffic(rig.arms, MODEL, "1", 500, 0.75)  # the champion alone: a check, inconclusive
    rig.tick(INTERVAL)
    assert (rig.state().checks, rig.state().last_outcome) == (1, "inconclusive")


def test_registry_outage_keeps_the_decision_pending_then_applies_it_once(store: Store) -> None:
    rig = Rig(store)
    rig.start_canary()
    rig.interval(champion=0.75, challenger=0.95)
    rig.registry.down = True
    rig.interval(champion=0.75, challenger=0.95, seed=2)  # judging needs no registry
    assert rig.state().phase == "promoting"
    for _ in range(3):
        rig.tick()
    assert rig.state().phase == "promoting" and rig.state().pending is not None
    assert "connection refused" in rig.reactor.registry_error[MODEL]
    assert rig.metric("driftloop_canary_decisions_total", decision="promote") == 1
    writes = len(rig.registry.writes)
    rig.registry.down = False
    rig.tick()
    assert rig.state().phase == "succeeded" and MODEL not in rig.reactor.registry_error
    assert rig.registry.writes[writes:].count("champion->2") == 1
    assert rig.hook.reasons == ["start", "promote"]


def test_restart_resumes_counts_once_and_moves_and_calls_nothing_twice(store: Store) -> None:
    rig = Rig(store)
    rig.start_canary()
    rig.interval(champion=0.75, challenger=0.95)
    rig.restart()  # a kill -9: the interval in memory is lost, the state is not
    assert rig.state().passed == 1
    rig.tick()  # the first tick of the new process begins an interval
    rig.interval(champion=0.75, challenger=0.95, seed=2)
    assert rig.state().phase == "promoting" and rig.state().passed == 2
    rig.registry.down = True
    rig.tick()
    rig.restart()  # again, while the promotion is pending
    assert rig.metric("driftloop_canary_decisions_total", decision="promote") == 0
    rig.registry.down = False
    rig.tick()
    rig.restart()
    rig.tick()
    assert rig.state().phase == "succeeded"
    assert rig.registry.writes.count("champion->2") == 1
    assert rig.registry.writes.count("previous_champion->1") == 1
    assert len(rig.hook.keys) == len(set(rig.hook.keys)) == 2
    assert [h.event for h in rig.state().history].count("promote") == 1


def test_retrain_version_tagged_with_a_run_key_becomes_the_challenger(store: Store) -> None:
    rig = Rig(store)
    store.create_run(RetrainRun("k1", MODEL, "dataset_drift", "k1", "command", "unknown", 1))
    rig.registry.register("2", **{"driftloop.idempotency_key": "k1"})
    rig.registry.register("3", **{"driftloop.idempotency_key": "other"})
    rig.tick()
    state = rig.state()
    assert (state.phase, state.challenger) == ("starting", "2")
    assert "found by retrain" in state.reason
    rig.tick()
    assert rig.registry.aliases["challenger"] == "2"


def test_retrain_version_judged_before_is_not_started_again(store: Store) -> None:
    rig = Rig(store)
    store.create_run(RetrainRun("k1", MODEL, "dataset_drift", "k1", "command", "unknown", 1))
    rig.registry.register("2", **{"driftloop.idempotency_key": "k1"})
    rig.registry.tags["2"][STATUS_TAG] = "rejected"
    rig.tick()
    assert rig.reactor.state(MODEL) is None


def test_registry_poll_waits_for_its_interval_unless_told_to_look_now(store: Store) -> None:
    rig = Rig(store)
    rig.tick()  # polled: nothing
    rig.registry.register("2")
    rig.registry.aliases["challenger"] = "2"
    rig.tick()
    assert rig.reactor.state(MODEL) is None
    woken: list[int] = []
    rig.reactor.wake = lambda: woken.append(1)
    assert rig.reactor.look_now(MODEL) and woken == [1]
    assert not rig.reactor.look_now("other")
    rig.tick()
    assert rig.state().challenger == "2"


def test_operator_requests_promote_revert_and_refuse_by_phase(store: Store) -> None:
    rig = Rig(store)
    rig.start_canary()
    refused = rig.reactor.request(MODEL, "rollback", "r0")
    assert refused.kind == "rollback" and refused.changed
    rig.tick()
    assert rig.state().phase == "rolled_back"
    again = rig.reactor.request(MODEL, "abort", "r1", requested_by="ops")
    assert (again.kind, again.changed) == ("refuse", False)
    assert "canary is rolled_back" in again.sentence
    rig.start_canary("3")
    promoted = rig.reactor.request(MODEL, "promote", "r2", note="looks good")
    assert (promoted.kind, promoted.phase) == ("promote", "promoting")
    assert rig.reactor.request(MODEL, "promote", "r2").kind == "ignore"
    rig.tick()
    assert rig.registry.aliases["champion"] == "3"
    reverted = rig.reactor.request(MODEL, "rollback", "r3")
    assert reverted.kind == "revert"
    rig.tick()
    assert rig.state().phase == "reverted"
    assert rig.registry.aliases["champion"] == "1"
    assert rig.metric("driftloop_canary_decisions_total", decision="rollback") == 2
    assert rig.metric("driftloop_canary_decisions_total", decision="promote") == 1


def test_operator_request_without_a_canary_is_refused(store: Store) -> None:
    rig = Rig(store)
    outcome = rig.reactor.request(MODEL, "promote", "r1")
    assert (outcome.kind, outcome.changed) == ("refuse", False)
    with pytest.raises(ValueError, match="expected abort, promote or rollback"):
        rig.reactor.request(MODEL, "delete", "r2")


def test_alias_moved_by_someone_else_fails_the_promotion(store: Store) -> None:
    rig = Rig(store)
    rig.start_canary()
    rig.reactor.request(MODEL, "promote", "r1")
    rig.registry.aliases["champion"] = "9"  # a person moved it meanwhile
    rig.tick()
    state = rig.state()
    assert state.phase == "failed" and "someone else moved it" in state.reason
    assert rig.registry.aliases["champion"] == "9"
    assert rig.metric("driftloop_canary_status") == 2


def test_hook_outage_retries_the_hook_only(store: Store) -> None:
    hook = HookRecorder([LaunchError("webhook: HTTP 503", retryable=True)])
    rig = Rig(store, hook=hook)
    rig.registry.register("2")
    rig.registry.aliases["challenger"] = "2"
    rig.tick()
    rig.tick()
    state = rig.state()
    assert state.phase == "starting" and [s.describe() for s in state.pending.remaining] == [
        f"start hook for {MODEL} ({state.pending.decision_id})"]
    writes = list(rig.registry.writes)
    rig.tick()
    assert rig.state().phase == "progressing" and rig.registry.writes == writes
    assert hook.reasons == ["start"]


def test_hook_refusal_fails_the_canary(store: Store) -> None:
    rig = Rig(store, hook=HookRecorder([LaunchError("webhook: HTTP 404", retryable=False)]))
    rig.registry.register("2")
    rig.registry.aliases["challenger"] = "2"
    rig.tick()
    rig.tick()
    assert rig.state().phase == "failed" and "HTTP 404" in rig.state().reason


def test_canary_without_mlflow_is_a_config_error() -> None:
    config = load_config(data={"models": {MODEL: {"baseline": "b.json", "canary": {}}}},
                         environ={})
    with pytest.raises(ValueError, match=r"expected mlflow\.tracking_uri to be set"):
        canary_policies(config)


def test_canary_min_labels_below_two_names_the_model() -> None:
    with pytest.raises(ValueError, match=rf"models\.{MODEL}\.canary: .*min_labels"):
        canary_policies(make_config(min_labels=1))


def test_canary_hook_is_built_and_its_secrets_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "hook-SECRET-123456")
    config = make_config(hook={"type": "webhook", "secret_env": "HOOK_SECRET",
                               "url": "http://ops:pw-SECRET-98765@127.0.0.1:1/hook"})
    secrets = known_secrets(config)
    assert "hook-SECRET-123456" in secrets and "pw-SECRET-98765" in secrets
    assert build_hooks(config)[MODEL].type == "webhook"


def test_hook_request_maps_a_hook_call_onto_the_launch_contract() -> None:
    call = HookCall("d/5", "promote", MODEL, "2", "2", "1", "carloan-v2-promote-abc",
                    "promote carloan v2: 2 passing checks", {"outcome": "pass"})
    request = hook_request(call)
    assert request.placeholders() == {
        "model": MODEL, "version": "2", "reason": "promote", "window_start": "",
        "window_end": "", "idempotency_key": "carloan-v2-promote-abc"}
    body = request.to_dict()
    assert body["sentence"] == call.sentence
    assert body["details"] == {"event": "promote", "model": MODEL, "champion": "2",
                               "challenger": "2", "previous_champion": "1",
                               "idempotency_key": "carloan-v2-promote-abc",
                               "sentence": call.sentence, "evidence": {"outcome": "pass"}}


# -- replicas (issue 15, kafka.partials) ------------------------------------------------------
def test_only_the_owner_runs_a_canary(store: Store) -> None:
    rig = Rig(store)
    rig.reactor.owns = lambda model: False  # another replica holds the model
    rig.registry.register("2")
    rig.registry.aliases["challenger"] = "2"
    rig.reactor.look_now(MODEL)
    rig.tick()
    rig.tick()
    assert rig.reactor.state(MODEL) is None and rig.registry.writes == []
    rig.reactor.owns = lambda model: True  # the model moved here
    rig.tick()
    assert rig.state().phase == "starting"


def test_the_owner_judges_its_arms_summed_with_those_other_replicas_shipped(
        store: Store) -> None:
    """This replica read only the champion's traffic, another one only the challenger's:
    the owner judges both (before, the shipped share was not read and the interval had no
    challenger event, an inconclusive check)."""
    rig = Rig(store)
    rig.start_canary()
    state = rig.state()
    traffic(rig.arms, MODEL, state.champion, 500, 0.75)
    other = ArmAccumulator({MODEL: ArmSpec("accuracy", False, categories=("0", "1"))})
    traffic(other, MODEL, state.challenger, 250, 0.95, seed=1, prefix="b")
    store.ship_arms(MODEL, pack_arms(other.take(MODEL)))
    traffic(other, MODEL, state.challenger, 250, 0.95, seed=2, prefix="b")
    store.ship_arms(MODEL, pack_arms(other.take(MODEL)))
    shown = rig.reactor.interval(MODEL)  # the read route sees the shares too
    assert (shown[state.champion].n_events, shown[state.challenger].n_events) == (500, 500)
    rig.tick(INTERVAL)
    assert (rig.state().passed, rig.state().last_outcome) == (1, "pass")
    assert store.peek_arms(MODEL) == []  # taken with the interval
