"""Dashboard annotations: markers where driftloop acted (retrains, canary decisions).

They are Prometheus queries that have a point wherever an event counter moved.
A labelled counter is born at 1 on its first event and ``increase()`` never
sees that first step, so each query also matches a series that did not exist a
little earlier (``x unless x offset 2m``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dashboards.common import DATASOURCE_UID

__all__ = ["FLEET_ANNOTATIONS", "MODEL_ANNOTATIONS", "new_events", "prometheus_annotation"]


def prometheus_annotation(
    name: str, expr: str, *, title: str, tag_keys: Sequence[str], color: str
) -> dict[str, Any]:
    """A dashboard annotation from a Prometheus query: a marker wherever ``expr`` has a point.

    Written as the dashboard JSON itself: the SDK's ``AnnotationQuery`` has no
    fields for Prometheus' step, title format and tag keys.
    """
    return {
        "datasource": {"type": "prometheus", "uid": DATASOURCE_UID},
        "enable": True,
        "expr": expr,
        "iconColor": color,
        "name": name,
        "step": "1m",
        "tagKeys": ",".join(tag_keys),
        "textFormat": "",
        "titleFormat": title,
        "useValueForTime": False,
    }


def new_events(metric: str, by: str, selector: str = "") -> str:
    """Points where the counter ``metric{selector}`` moved or appeared, summed ``by`` labels."""
    # PromQL refuses an empty matcher list ({}): no braces without a selector
    series = f"{metric}{{{selector}}}" if selector else metric
    return (f"sum by ({by}) (increase({series}[2m])) > 0 "
            f"or sum by ({by}) ({series} unless {series} offset 2m)")


# the model detail dashboard's markers (its $model variable selects the model)
MODEL_ANNOTATIONS: list[dict[str, Any]] = [
    prometheus_annotation(
        "Retrains", new_events("driftloop_retrain_triggers_total", "reason", 'model="$model"'),
        title="retrain started: {{reason}}", tag_keys=("reason",), color="orange"),
    prometheus_annotation(
        "Canary decisions",
        new_events("driftloop_canary_decisions_total", "decision", 'model="$model"'),
        title="canary: {{decision}}", tag_keys=("decision",), color="purple"),
]

# the fleet overview's markers: every model's
FLEET_ANNOTATIONS: list[dict[str, Any]] = [
    prometheus_annotation(
        "Retrains", new_events("driftloop_retrain_triggers_total", "model, reason"),
        title="retrain {{model}}: {{reason}}", tag_keys=("model", "reason"), color="orange"),
    prometheus_annotation(
        "Canary decisions", new_events("driftloop_canary_decisions_total", "model, decision"),
        title="canary {{model}}: {{decision}}", tag_keys=("model", "decision"),
        color="purple"),
]
