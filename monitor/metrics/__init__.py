"""The Prometheus metrics of design section 8, on an injected registry.

Nothing registers at import time: ``Metrics(registry)`` creates every metric on
the registry it is given, so each test uses a fresh ``CollectorRegistry()`` and
the service one of its own. ``METRICS`` lists the names, types and labels for
the dashboards and alert rules, which depend on them; the names are fixed.

- :mod:`~monitor.metrics.specs`: ``METRICS``, ``DESIGN_METRICS``, ``CANARY_STATUS``:
  the contract the dashboards, alert rules and reference are built from;
- :mod:`~monitor.metrics.instruments`: ``Metrics``, the metric objects on a registry
  and the helpers the service calls once per window or per batch, never per event.
"""

from monitor.metrics.instruments import Metrics
from monitor.metrics.specs import CANARY_STATUS, DESIGN_METRICS, METRICS, MetricSpec

__all__ = ["CANARY_STATUS", "DESIGN_METRICS", "METRICS", "MetricSpec", "Metrics"]
