"""What a demo run was asked for (:class:`DemoOptions`) and how fast it goes (:class:`Profile`).

The profile holds every number that sets the pace of the story: traffic rate,
window sizes, the row at which the drift starts, the label delay, the canary's
interval and limits. ``--short`` picks :data:`SHORT` (the tests' profile:
smaller windows, a shorter steady phase, a two-check canary); the numbers were
tuned on a 2-core machine so that the default story ends well inside five
minutes set-up included (docs/demo.md has the measurements).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "DEFAULT",
    "FORMATS",
    "MODEL",
    "SCENARIOS",
    "SHORT",
    "DemoOptions",
    "EventFormat",
    "Profile",
    "Scenario",
]

MODEL = "carloan"
Scenario = Literal["default", "bad-challenger", "alert"]
EventFormat = Literal["native", "kserve"]
SCENARIOS: tuple[Scenario, ...] = ("default", "bad-challenger", "alert")
FORMATS: tuple[EventFormat, ...] = ("native", "kserve")


@dataclass(frozen=True)
class Profile:
    """The pace of the story; every count is in prediction events unless named otherwise."""

    rate: float
    """Predictions per second the simulated model server makes."""
    window_rows: int
    """Rows per drift window (``models.carloan.window.rows``)."""
    performance_rows: int
    """Joined (prediction, label) pairs per performance window."""
    drift_row: int
    """The first drifted row of the stream: the steady phase lasts drift_row / rate seconds."""
    label_delay_seconds: float
    """How long after its prediction a label is published."""
    challenger_share: float
    """Share of the traffic the model server sends to the challenger while there is one."""
    canary_interval_seconds: float
    """Length of one canary check (``canary.interval``)."""
    canary_iterations: int
    """Passing checks in a row that promote (``canary.iterations``)."""
    canary_min_events: int
    """Events per version and interval for a check to count (``canary.min_events``)."""
    canary_min_labels: int
    """Labeled events per version and interval for performance to be compared."""
    retrain_rows: int
    """Fresh labeled rows the retrain waits for and trains on."""
    settle_windows: int
    """Windows of the serving version evaluated after the canary ends, before the story ends."""
    alert_windows: int
    """Drifted windows in a row before the alert scenario's Alertmanager fires (its ``for:``)."""
    phase_timeout_seconds: float
    """Longest wait for one step of the story before the demo gives up with an error."""
    training_rows: int = 6000
    """Rows of the first model's training data (two thirds fit it, one third is its baseline)."""


DEFAULT = Profile(
    rate=250.0, window_rows=600, performance_rows=400, drift_row=2400,
    label_delay_seconds=3.0, challenger_share=0.3, canary_interval_seconds=4.0,
    canary_iterations=3, canary_min_events=150, canary_min_labels=80, retrain_rows=1500,
    settle_windows=2, alert_windows=2, phase_timeout_seconds=150.0)

SHORT = Profile(
    rate=300.0, window_rows=400, performance_rows=300, drift_row=800,
    label_delay_seconds=1.5, challenger_share=0.5, canary_interval_seconds=3.0,
    canary_iterations=2, canary_min_events=120, canary_min_labels=60, retrain_rows=800,
    settle_windows=1, alert_windows=2, phase_timeout_seconds=120.0, training_rows=4500)


@dataclass(frozen=True)
class DemoOptions:
    """The command line of ``driftloop demo``."""

    scenario: Scenario = "default"
    event_format: EventFormat = "native"
    short: bool = False
    seed: int = 7
    out: Path | None = None
    """Keep every file here (config, logs, databases, reports); None: a temporary folder
    removed at the end."""
    keep_running: bool = False
    state_file: Path | None = None
    """Where the stack's URLs, children's PIDs and the story's phase are written as JSON."""

    @property
    def profile(self) -> Profile:
        return SHORT if self.short else DEFAULT
