"""Steps 6 and 7 of the loop: what one persist stored goes to the metrics and the reactor.

Only what is stored is exported or acted on, so a crash between the two never
shows or acts on a result that a restart would not find again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from monitor.metrics import Metrics
from monitor.stream.persist import Persisted
from monitor.stream.pipeline import WindowOutput

__all__ = ["Reactor", "export"]

log = logging.getLogger("driftloop.service")


class Reactor(Protocol):
    """What acts on results (the retrain policy); called after they are persisted, on the
    consumer thread, so it must only take note (monitor.react queues for its job)."""

    def on_windows(self, outputs: list[WindowOutput]) -> None: ...

    def on_performance(self, model: str, version: str, result: Mapping[str, Any]) -> None: ...


def export(persisted: Persisted, metrics: Metrics, reactor: Reactor | None) -> None:
    metrics.observe_checkpoint(persisted.checkpoint_bytes)
    log.debug("persisted %d window result(s), %d checkpoint(s) of %d bytes",
              len(persisted.outputs), persisted.checkpoints, persisted.checkpoint_bytes)
    for (model, version, kind), n in persisted.events.items():
        metrics.count_events(model, version, kind, n)  # type: ignore[arg-type]
    for reason, n in persisted.invalid.items():
        metrics.count_invalid(reason, n)
    for out in persisted.outputs:
        metrics.observe_window(out.model, out.version, out.result)
        log.info("window %s/%s %s: %d rows, dataset drift %s (share %.2f)",
                 out.model, out.version, out.key, out.result.get("rows", 0),
                 out.result.get("dataset_drift"), out.result.get("drift_share") or 0.0)
    for model, version, result in persisted.performance:
        metrics.observe_performance(model, version, result)
    for model, n in persisted.joined.items():
        metrics.count_joined(model, n)
    if reactor is not None:
        if persisted.outputs:
            reactor.on_windows(persisted.outputs)
        for model, version, result in persisted.performance:
            reactor.on_performance(model, version, result)
