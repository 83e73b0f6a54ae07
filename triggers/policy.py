"""When to retrain: a pure function of (state, evidence, now, policy).

``decide`` never reads a clock or does I/O; it returns a ``Decision`` holding
the action, a reason slug, a sentence a person can grep, the idempotency key
of the launch (derived only from model, reason and the evidence's identity, so
a replay after a restart yields the same key) and the next state. The service
persists ``decision.state`` first, then acts.

Order of checks for a trigger: enabled in ``retrain.on`` -> not seen before
-> hysteresis met (window signals) -> nothing running -> not in cooldown.

Labels come late: with ``Policy.use_estimate``, a window of a version that has had
no realized performance window yet moves the ``performance_drop`` streak with its
estimated performance (CBPE) instead; the version's first realized performance
window ends that for good. ``estimated_performance_drop`` always reads the
estimate; when both are enabled and met on an estimate, that more precise reason
is named.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from triggers.evidence import (
    AlertEvidence,
    Evidence,
    ManualRequest,
    Policy,
    RunFinished,
    WindowEvidence,
)
from triggers.launch import LaunchRequest, format_time
from triggers.state import TriggerState, transition
from triggers.text import printable

__all__ = ["Decision", "decide", "idempotency_key"]

# window signals, strongest first: the reason named when several are met at once
_WINDOW_SIGNALS = (
    ("performance_drop", "performance_windows"),
    ("estimated_performance_drop", "estimated_windows"),
    ("dataset_drift", "drift_windows"),
    ("quality", "quality_windows"),
)
_TEXT = {
    "dataset_drift": "dataset drift",
    "performance_drop": "performance drop",
    "estimated_performance_drop": "estimated performance drop",
    "quality": "data-quality violations",
    "alert": "alert",
    "manual": "manual request",
}


@dataclass(frozen=True)
class Decision:
    action: Literal["retrain", "none"]
    reason: str
    sentence: str
    idempotency_key: str | None
    state: TriggerState
    version: str | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None

    def launch_request(self) -> LaunchRequest | None:
        """What to hand the launcher when ``action == "retrain"``."""
        if self.action != "retrain" or self.idempotency_key is None:
            return None
        # imported here: importing the launchers package loads httpx, which the pure
        # policy does not need until a launch is handed over

        return LaunchRequest(
            self.state.model,
            self.version,
            self.reason,
            self.window_start,
            self.window_end,
            self.idempotency_key,
            self.sentence,
        )


def idempotency_key(model: str, reason: str, identity: str) -> str:
    """``<model>-<reason>-<16 hex>``: at most 63 characters of [a-z0-9_-]."""
    digest = hashlib.sha256(f"{model}\x00{reason}\x00{identity}".encode()).hexdigest()[:16]
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")[:19].strip("-") or "model"
    return f"{slug}-{reason}-{digest}"


def decide(state: TriggerState, evidence: Evidence, now: datetime, policy: Policy) -> Decision:
    if now.tzinfo is None:
        raise ValueError(f"decide for {state.model}: got a naive now={now!r}, expected UTC-aware")
    prefix = ""
    if state.phase == "running" and state.running_since is not None:
        lost_at = state.running_since + timedelta(seconds=policy.run_timeout_seconds)
        if now >= lost_at:
            since = _t(state.running_since)
            prefix = f"run {state.running_key} presumed lost (no outcome since {since}); "
            state = transition(
                state, "expire", running_key=None, running_reason=None, running_since=None
            )
    if isinstance(evidence, RunFinished):
        decision = _finished(state, evidence)
    elif isinstance(evidence, WindowEvidence):
        decision = _window(state, evidence, now, policy)
    elif isinstance(evidence, AlertEvidence):
        decision = _alert(state, evidence, now, policy)
    elif isinstance(evidence, ManualRequest):
        decision = _manual(state, evidence, now, policy)
    else:
        raise TypeError(f"decide for {state.model}: unknown evidence {type(evidence).__name__}")
    return replace(decision, sentence=prefix + decision.sentence) if prefix else decision


def _finished(state: TriggerState, done: RunFinished) -> Decision:
    reason = state.running_reason or ""
    if state.phase != "running" or state.running_key != done.idempotency_key:
        now_running = state.running_key or "nothing"
        sentence = (
            f"ignored for {state.model}: run {done.idempotency_key} finished ({done.outcome}) "
            f"but {now_running} is running"
        )
        return Decision("none", reason, sentence, None, transition(state, "hold"))
    new = transition(state, "finish", running_key=None, running_reason=None, running_since=None)
    sentence = f"retrain run {done.idempotency_key} for {state.model} {done.outcome}"
    if new.cooldown_until is not None:
        sentence += f"; cooldown until {_t(new.cooldown_until)}"
    return Decision("none", reason, sentence, None, new)


def _window(state: TriggerState, window: WindowEvidence, now: datetime, policy: Policy) -> Decision:
    model = state.model
    if window.window_id in state.seen_windows:
        sentence = f"no retrain for {model}: window {window.window_id} already counted"
        return Decision("none", "", sentence, None, transition(state, "hold"))
    quality = None if window.quality_violations is None else bool(window.quality_violations)
    version = window.version or ""
    estimated = _stands_in(state, window, policy)
    performance = window.estimated_degraded if estimated else window.performance_degraded
    realized = state.realized_versions
    if window.performance_degraded is not None and version not in realized:
        realized = _remember(realized, version, policy)
    state = replace(
        state,
        drift_windows=_streak(state.drift_windows, window.dataset_drift),
        performance_windows=_streak(state.performance_windows, performance),
        estimated_windows=_streak(state.estimated_windows, window.estimated_degraded),
        quality_windows=_streak(state.quality_windows, quality),
        seen_windows=_remember(state.seen_windows, window.window_id, policy),
        realized_versions=realized,
    )
    signals = _signals(estimated, policy)
    streaks: dict[str, int] = {name: getattr(state, name) for _, name in signals}
    met = [
        r
        for r, name in signals
        if r in policy.on and streaks[name] >= policy.consecutive_windows
    ]
    if not met:
        return Decision(
            "none", "", _quiet(model, window, streaks, policy, signals, estimated), None,
            transition(state, "hold")
        )
    reason = met[0]
    count = streaks[dict(signals)[reason]]
    detail = _detail(reason, window, policy, estimated)
    because = f"{_TEXT[reason]} in {count} consecutive windows{detail}"
    key = idempotency_key(model, reason, window.window_id)
    return _gate(state, reason, because, key, now, policy, window.version, window.start, window.end)


def _alert(state: TriggerState, alert: AlertEvidence, now: datetime, policy: Policy) -> Decision:
    model = state.model
    # alert text is the sender's: escaped so a sentence stays one line
    name, fingerprint = printable(alert.alertname), printable(alert.fingerprint, 128)
    if "alert" not in policy.on:
        sentence = f"no retrain for {model}: alert {name} ignored, 'alert' is not in retrain.on"
        return Decision("none", "alert", sentence, None, transition(state, "hold"))
    if alert.identity in state.seen_alerts:
        sentence = (
            f"no retrain for {model}: alert {name} (fingerprint {fingerprint}, "
            f"firing since {_t(alert.starts_at)}) already handled"
        )
        return Decision("none", "alert", sentence, None, transition(state, "hold"))
    state = replace(state, seen_alerts=_remember(state.seen_alerts, alert.identity, policy))
    because = f"alert {name} firing since {_t(alert.starts_at)} (fingerprint {fingerprint})"
    key = idempotency_key(model, "alert", alert.identity)
    return _gate(state, "alert", because, key, now, policy)


def _manual(state: TriggerState, request: ManualRequest, now: datetime, policy: Policy) -> Decision:
    model = state.model
    if "manual" not in policy.on:
        sentence = f"no retrain for {model}: manual request refused, 'manual' is not in retrain.on"
        return Decision("none", "manual", sentence, None, transition(state, "hold"))
    # the caller's text: escaped so a sentence stays one line
    request_id = printable(request.request_id, 100)
    if request.request_id in state.seen_requests:
        sentence = f"no retrain for {model}: manual request {request_id} already handled"
        return Decision("none", "manual", sentence, None, transition(state, "hold"))
    state = replace(state, seen_requests=_remember(state.seen_requests, request.request_id, policy))
    who = f" by {printable(request.requested_by, 100)}" if request.requested_by else ""
    note = f": {printable(request.note, 300)}" if request.note else ""
    because = f"manual request {request_id}{who}{note}"
    key = idempotency_key(model, "manual", request.request_id)
    ignore_cooldown = policy.manual_ignores_cooldown
    return _gate(
        state, "manual", because, key, now, policy, request.version, cooldown=not ignore_cooldown
    )


def _gate(
    state: TriggerState,
    reason: str,
    because: str,
    key: str,
    now: datetime,
    policy: Policy,
    version: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    cooldown: bool = True,
) -> Decision:
    """One run at a time, then the cooldown; otherwise launch."""
    model = state.model
    if state.phase == "running":
        sentence = (
            f"no retrain for {model}: run {state.running_key} ({state.running_reason}) "
            f"still running since {_t(state.running_since)}, one at a time ({because})"
        )
        return Decision("none", reason, sentence, None, transition(state, "hold"))
    if cooldown and state.cooldown_until is not None and now < state.cooldown_until:
        sentence = (
            f"no retrain for {model}: in cooldown until {_t(state.cooldown_until)} ({because})"
        )
        return Decision("none", reason, sentence, None, transition(state, "hold"))
    new = transition(
        state,
        "launch",
        running_key=key,
        running_reason=reason,
        running_since=now,
        last_launch_at=now,
        launches=state.launches + 1,
        cooldown_until=now + timedelta(seconds=policy.cooldown_seconds),
        # a launch consumes the streaks: the next one needs fresh consecutive windows
        drift_windows=0,
        performance_windows=0,
        estimated_windows=0,
        quality_windows=0,
    )
    return Decision("retrain", reason, f"retrain {model}: {because}", key, new, version, start, end)


def _stands_in(state: TriggerState, window: WindowEvidence, policy: Policy) -> bool:
    """Whether the window's estimate stands in for realized performance (no labels yet)."""
    return (policy.use_estimate and window.performance_degraded is None
            and window.estimated_degraded is not None
            and (window.version or "") not in state.realized_versions)


def _signals(estimated: bool, policy: Policy) -> tuple[tuple[str, str], ...]:
    """The window signals in the order they are named; when the estimate stands in for
    performance and estimated_performance_drop is enabled, that one says it better."""
    if not estimated or "estimated_performance_drop" not in policy.on:
        return _WINDOW_SIGNALS
    first = [s for s in _WINDOW_SIGNALS if s[0] == "estimated_performance_drop"]
    return (*first, *(s for s in _WINDOW_SIGNALS if s[0] != "estimated_performance_drop"))


def _quiet(model: str, window: WindowEvidence, streaks: dict[str, int], policy: Policy,
           signals: tuple[tuple[str, str], ...], estimated: bool) -> str:
    """Why a window did not trigger: the signal closest to triggering, or clean."""
    for reason, name in signals:
        if streaks[name] == 0:
            continue
        detail = _detail(reason, window, policy, estimated)
        if reason not in policy.on:
            return (
                f"no retrain for {model}: {_TEXT[reason]}{detail}, "
                f"but '{reason}' is not in retrain.on"
            )
        return (
            f"no retrain for {model}: {_TEXT[reason]} in {streaks[name]} of "
            f"{policy.consecutive_windows} consecutive windows needed{detail}"
        )
    share = ""
    if window.drift_share is not None:
        share = f" (share {window.drift_share:.2f} < {policy.drift_share:.2f})"
    return f"no retrain for {model}: window {window.window_id} clean{share}"


def _detail(reason: str, window: WindowEvidence, policy: Policy, estimated: bool = False) -> str:
    if reason == "dataset_drift" and window.drift_share is not None:
        return f" (share {window.drift_share:.2f} >= {policy.drift_share:.2f})"
    if reason == "performance_drop" and estimated and window.estimated_value is not None:
        base = ("" if window.estimated_baseline is None
                else f" vs baseline {window.estimated_baseline:.3f}")
        return (f" (estimated {window.estimated_metric or 'performance'} "
                f"{window.estimated_value:.3f}{base}; no realized performance of version "
                f"{window.version or '?'} yet)")
    if reason == "performance_drop" and window.performance_value is not None:
        base = (
            ""
            if window.performance_baseline is None
            else f" vs baseline {window.performance_baseline:.3f}"
        )
        return f" ({window.performance_metric} {window.performance_value:.3f}{base})"
    if reason == "estimated_performance_drop" and window.estimated_value is not None:
        return f" (estimated {window.estimated_value:.3f})"
    if reason == "quality" and window.quality_violations:
        return f" ({'; '.join(window.quality_violations[:3])})"
    return ""


def _streak(count: int, flag: bool | None) -> int:
    """Consecutive windows with a signal; an unmeasured signal (None) leaves it as it was."""
    if flag is None:
        return count
    return count + 1 if flag else 0


def _remember(seen: tuple[str, ...], identity: str, policy: Policy) -> tuple[str, ...]:
    return (*seen, identity)[-policy.remember :]


def _t(value: datetime | None) -> str:
    return format_time(value) or "?"
