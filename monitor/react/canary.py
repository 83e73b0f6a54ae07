"""The canary reactor: the ``canary`` job's tick, operator requests and registry events.

Per model with a ``canary`` section, each tick (``monitor.runtime.jobs``) re-reads
the state from the store and takes one of these paths:

1. a decision is pending: apply its registry moves (``triggers.registry.apply_moves``,
   idempotent), record them done, call the deploy hook, record it done
   (``StepsDone``). A move refused for good fails the canary (``StepsFailed``); an
   outage leaves the rest pending for the next tick. Each step is recorded as soon
   as it is done, so a restart never moves an alias twice; a hook is called again
   only if the process dies between the call and its record (same idempotency key);
2. the registry poll is due (every ``mlflow.poll_interval``, or at once after a
   webhook): a new challenger starts a canary (``triggers.canary.start``);
3. the canary is progressing and its interval has elapsed: the arms' statistics of
   that interval (``monitor.stream.ArmAccumulator.take``) are judged
   (``detectors.judge``) and the verdict fed to ``triggers.canary.step``. An interval
   without a single event of either version (a rebalance, the broker away) is not a
   check: a stalled stream never rolls a canary back. An interval cut by a restart is
   not judged either: the first tick of a process begins a new one.

Every change is persisted whole (``Store.save_canary_document``) with its sentence in
the decision log, in one transaction, before anything acts on it; then it is logged,
counted in ``driftloop_canary_decisions_total`` (abort and revert as rollback) and
shown by ``driftloop_canary_status``. One lock serializes ticks and operator requests.

Replicas (``kafka.partials``): only the model's owner ticks its canary (``owns``); the
arms of an interval are its own and the shares the other replicas shipped through the
store, summed per version.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from detectors import ArmStats, judge
from monitor.config import Config
from monitor.metrics import Metrics
from monitor.react.canary_support import (
    RUN_TAG,
    CanaryOutcome,
    aligned_arms,
    hook_request,
    load_state,
)
from monitor.react.canary_versions import find_candidate
from monitor.store import Store
from monitor.stream import ArmAccumulator
from monitor.stream.arms import merged_arms, shipped_shares
from triggers.canary import (
    CanaryDecision,
    CanaryPolicy,
    Judged,
    OperatorRequest,
    StepsDone,
    StepsFailed,
    start,
    step,
)
from triggers.canary_state import CanaryState
from triggers.launch import Launcher, LaunchError
from triggers.moves import HookCall, split_steps
from triggers.registry import ModelRegistry, RegistryError, apply_moves
from triggers.text import printable

__all__ = ["CanaryReactor"]

log = logging.getLogger("driftloop.canary")

# decision kinds written to the store's decision log (progress is in the log only)
_LOGGED = frozenset({"start", "check", "promote", "rollback", "abort", "revert", "confirm", "fail"})
_COUNTED = {"promote": "promote", "rollback": "rollback", "abort": "rollback",
            "revert": "rollback"}


def _utcnow() -> datetime:
    return datetime.now(UTC)


class CanaryReactor:
    def __init__(self, config: Config, store: Store, metrics: Metrics, arms: ArmAccumulator,
                 registry: ModelRegistry, policies: Mapping[str, CanaryPolicy],
                 hooks: Mapping[str, Launcher], *,
                 clock: Callable[[], datetime] = _utcnow,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self.arms = arms
        self.registry = registry
        self.policies = dict(policies)
        self.hooks = dict(hooks)
        self.clock = clock
        self.monotonic = monotonic
        self.wake: Callable[[], None] | None = None  # the runtime: run the job soon
        # scale-out (kafka.partials): whether this replica owns a model; only the owner
        # runs its canary, on its own arms and those the other replicas shipped
        self.owns: Callable[[str], bool] = lambda model: True
        self.registry_error: dict[str, str] = {}  # model -> the last registry failure
        self._interval_started: dict[str, float] = {}
        self._next_poll: dict[str, float] = {}
        self._said: dict[str, str] = {}
        self._lock = threading.RLock()

    # -- the scheduled job -----------------------------------------------------------
    def tick(self) -> None:
        for model in self.policies:
            if not self.owns(model):
                # another replica runs this canary; if this one becomes the owner, its
                # first tick begins a new interval, as after a restart
                self._interval_started.pop(model, None)
                continue
            try:
                with self._lock:
                    self._tick_model(model)
            except Exception:  # one model's failure must not stop the others' ticks
                log.exception("canary %s: tick failed; the next one retries", model)

    def _tick_model(self, model: str) -> None:
        state = load_state(self.store, model)
        if state is not None:
            self.metrics.set_canary_status(model, state.status)
        if state is not None and state.pending is not None:
            self._apply(model, state)
        elif not self._discover(model, state) and state is not None \
                and state.phase == "progressing":
            self._judge(model, state)

    # -- 1. apply a pending decision ---------------------------------------------------
    def _apply(self, model: str, state: CanaryState) -> None:
        pending = state.pending
        assert pending is not None
        moves, hooks = split_steps(pending.remaining)
        if moves:
            try:
                results = apply_moves(self.registry, moves)
            except RegistryError as exc:
                state = self._record(model, state, [r.key for r in exc.applied])
                self._registry_failed(model, exc)
                if not exc.retryable:
                    self._save(model, step(state, StepsFailed(pending.decision_id, str(exc)),
                                           self.clock(), self.policies[model]))
                return
            self._registry_answers(model)
            for result in results:
                if result.changed:
                    log.info("canary %s: %s", model, result.description)
            state = self._record(model, state, [r.key for r in results])
        for hook in hooks:
            try:
                self._call_hook(model, hook)
            except LaunchError as exc:
                if exc.retryable:
                    log.warning("canary %s: %s failed (%s); retrying at the next tick",
                                model, hook.describe(), exc)
                    return
                self._save(model, step(state, StepsFailed(pending.decision_id,
                                                          f"{hook.describe()}: {exc}"),
                                       self.clock(), self.policies[model]))
                return
            state = self._record(model, state, [hook.key])

    def _record(self, model: str, state: CanaryState, keys: list[str]) -> CanaryState:
        """Persist ``keys`` done at once; the state the next step builds on."""
        if not keys or state.pending is None:
            return state
        decision = step(state, StepsDone(state.pending.decision_id, tuple(keys)), self.clock(),
                        self.policies[model])
        self._save(model, decision)
        if decision.kind == "confirm" and decision.state is not None \
                and decision.state.phase == "progressing":
            self._new_interval(model)
        return decision.state if decision.state is not None else state

    def _call_hook(self, model: str, hook: HookCall) -> None:
        launcher = self.hooks.get(model)
        if launcher is None:
            return  # no hook configured: the step is done
        ref = launcher.launch(hook_request(hook))
        log.info("canary %s: %s called (%s %s)", model, hook.describe(), ref.launcher,
                 ref.run_id)

    def _registry_failed(self, model: str, exc: RegistryError) -> None:
        # said once per outage, not at every tick of it
        if exc.retryable and self.registry_error.get(model) != str(exc):
            log.warning("canary %s: the registry is unavailable (%s); decisions stay pending "
                        "and are applied when it answers", model, exc)
        self.registry_error[model] = str(exc)

    def _registry_answers(self, model: str) -> None:
        if self.registry_error.pop(model, None) is not None:
            log.info("canary %s: the registry answers again", model)

    # -- 2. a new challenger -------------------------------------------------------------
    def _discover(self, model: str, state: CanaryState | None) -> bool:
        """Poll the registry when due; True when a canary started."""
        now = self.monotonic()
        if self._next_poll.get(model, 0.0) > now:
            return False
        self._next_poll[model] = now + self.config.mlflow.poll_interval
        policy = self.policies[model]
        keys = [run.idempotency_key for run in self.store.runs(model, limit=5)]
        try:
            candidate = find_candidate(self.registry, model, policy, state, keys, RUN_TAG)
        except RegistryError as exc:
            self._registry_failed(model, exc)
            self._next_poll[model] = now  # poll again at the next tick
            return False
        self._registry_answers(model)
        if candidate is None:
            return False
        decision = start(model, candidate.champion, candidate.version, self.clock(), policy,
                         state, source=candidate.source)
        if not decision.changed:
            if self._said.get(model) != decision.sentence:
                self._said[model] = decision.sentence
                log.info("%s", decision.sentence)
            return False
        self._save(model, decision)
        self._soon()
        return True

    # -- 3. judge an interval ------------------------------------------------------------
    def _judge(self, model: str, state: CanaryState) -> None:
        policy = self.policies[model]
        started = self._interval_started.get(model)
        if started is None:  # first tick of this process: the interval starts now
            self._new_interval(model)
            return
        if self.monotonic() - started < policy.interval_seconds:
            return
        arms = self._take(model)
        self._interval_started[model] = self.monotonic()
        champion, challenger = aligned_arms(arms.get(state.champion, ArmStats()),
                                        arms.get(state.challenger, ArmStats()))
        if champion.n_events == 0 and challenger.n_events == 0:
            # nothing consumed at all (a rebalance, the broker away): not a check
            log.info("canary %s v%s: no event of either version this interval; not judged",
                     model, state.challenger)
            return
        verdict = judge(champion, challenger, policy.judge)
        now = self.clock()
        check_id = f"{model}-v{state.challenger}-{int(now.timestamp() * 1000)}"
        decision = step(state, Judged(check_id, verdict), now, policy)
        self._save(model, decision)
        if decision.kind in _COUNTED:
            self._soon()

    def _new_interval(self, model: str) -> None:
        self._take(model)
        self._interval_started[model] = self.monotonic()

    def _take(self, model: str) -> dict[str, ArmStats]:
        """The interval's statistics: this replica's, and with kafka.partials those the
        other replicas shipped (``monitor.stream.scaleout.ScaleOut.ship_arms``)."""
        return merged_arms(model, [self.arms.take(model),
                                   *shipped_shares(model, self.store.take_arms(model))])

    # -- operators and registry events (HTTP threads) -------------------------------------
    def request(self, model: str, action: str, request_id: str, requested_by: str = "",
                note: str = "") -> CanaryOutcome:
        """An operator's abort, promote or rollback; applied by the next tick (soon)."""
        if action not in ("abort", "promote", "rollback"):
            raise ValueError(f"canary action: got {action!r}, expected abort, promote or "
                             "rollback")
        policy = self.policies[model]
        with self._lock:
            state = load_state(self.store, model)
            if state is None:
                return CanaryOutcome(model, action, "refuse", f"refused {action} of {model}: "
                                     "no canary has run for it", False)
            request = OperatorRequest(action, request_id,  # type: ignore[arg-type]
                                      printable(requested_by), printable(note, 1000))
            decision = step(state, request, self.clock(), policy)
            self._save(model, decision)
        if decision.changed:
            self._soon()
        found = decision.state or state
        return CanaryOutcome(model, action, decision.kind, decision.sentence, decision.changed,
                             found.phase, decision.decision_id)

    def look_now(self, model: str) -> bool:
        """A registry event about ``model``: poll its versions at the next tick, which
        runs soon. False for a model without a canary."""
        if model not in self.policies:
            return False
        with self._lock:
            self._next_poll[model] = 0.0
        self._soon()
        return True

    def state(self, model: str) -> CanaryState | None:
        return load_state(self.store, model)

    def interval(self, model: str) -> Mapping[str, ArmStats]:
        """The running interval's statistics per version (left running)."""
        return merged_arms(model, [self.arms.peek(model),
                                   *shipped_shares(model, self.store.peek_arms(model))])

    def close(self) -> None:
        for model, launcher in self.hooks.items():
            close = getattr(launcher, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    log.exception("canary %s: closing the deploy hook failed", model)

    # -- helpers -------------------------------------------------------------------------
    def _save(self, model: str, decision: CanaryDecision) -> None:
        """Persist a changed state with its sentence, then log, count and export it."""
        if not decision.changed or decision.state is None:
            return
        with self.store.transaction() as tx:
            tx.save_canary_document(decision.state.to_dict())
            if decision.kind in _LOGGED:
                tx.log_decision(model, "canary", decision.sentence)
        log.info("%s", decision.sentence)
        counted = _COUNTED.get(decision.kind)
        if counted is not None:
            self.metrics.count_canary_decision(model, counted)  # type: ignore[arg-type]
        self.metrics.set_canary_status(model, decision.state.status)

    def _soon(self) -> None:
        if self.wake is not None:
            self.wake()

