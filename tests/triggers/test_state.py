from __future__ import annotations

from datetime import UTC, datetime

import pytest

from triggers.state import TRANSITIONS, TriggerState, transition


def test_state_round_trips_through_dict() -> None:
    state = TriggerState(
        "carloan", "running", drift_windows=1, cooldown_until=datetime(2026, 1, 1, tzinfo=UTC),
        running_key="k", running_reason="alert", running_since=datetime(2026, 1, 1, tzinfo=UTC),
        seen_windows=("3:1", "3:2"), seen_alerts=("fp@t",), launches=2,
    )
    data = state.to_dict()
    assert data["seen_windows"] == ["3:1", "3:2"]
    assert data["cooldown_until"] == "2026-01-01T00:00:00+00:00"
    assert TriggerState.from_dict(data) == state


def test_state_from_dict_names_unknown_keys() -> None:
    with pytest.raises(ValueError, match="unknown keys \\['streak'\\]"):
        TriggerState.from_dict({"model": "carloan", "streak": 3})


def test_transition_outside_the_table_is_refused() -> None:
    with pytest.raises(KeyError, match="no transition for 'finish' from 'idle'"):
        transition(TriggerState("carloan"), "finish")


def test_table_covers_both_phases() -> None:
    assert {phase for phase, _ in TRANSITIONS} == {"idle", "running"}
    assert TRANSITIONS[("idle", "launch")] == "running"
    assert TRANSITIONS[("running", "finish")] == "idle"
