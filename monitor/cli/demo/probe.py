"""What the demo knows of the service: read from its HTTP API and ``/metrics`` only.

Every :meth:`Probe.read` fetches the model (champion, challenger, the last window,
the last decisions, the retrain runs), its canary, its recent windows and the
metrics the live view shows. The API lists a model's ten newest decisions; the
probe reads often enough (twice a second) to keep every one in its
:class:`Timeline`, which is the table printed at the end.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Decision", "Probe", "Snapshot", "Timeline"]

_METRICS = ("driftloop_events", "driftloop_performance", "driftloop_dataset_drift_share",
            "driftloop_canary_decisions", "driftloop_retrain_triggers")
_RATE_SPAN_SECONDS = 4.0


@dataclass(frozen=True)
class Decision:
    at: str  # RFC 3339, the service's clock
    kind: str  # retrain, hold, run, launch, canary
    sentence: str


@dataclass
class Timeline:
    """Every decision seen, oldest first, each once."""

    decisions: list[Decision] = field(default_factory=list)
    _seen: set[Decision] = field(default_factory=set)

    def add(self, found: list[dict[str, Any]]) -> list[Decision]:
        """Add the API's decisions (newest first); returns the new ones, oldest first."""
        new = [Decision(str(d["at"]), str(d["kind"]), str(d["sentence"]))
               for d in reversed(found)]
        new = [d for d in new if d not in self._seen]
        self._seen.update(new)
        self.decisions.extend(new)
        self.decisions.sort(key=lambda d: d.at)
        return new


@dataclass(frozen=True)
class Snapshot:
    detail: dict[str, Any]  # GET /api/v1/models/{model}
    canary: dict[str, Any]  # GET /api/v1/models/{model}/canary
    windows: list[dict[str, Any]]  # newest first
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]
    rates: dict[str, float]  # version -> predictions per second, recently

    def metric(self, name: str, **labels: str) -> float | None:
        """The value of one series (None when absent); labels must all match."""
        wanted = set(labels.items())
        for (found, series), value in self.samples.items():
            if found == name and wanted <= series:
                return value
        return None

    @property
    def runs(self) -> list[dict[str, Any]]:
        return list(self.detail.get("retrain_runs") or [])


class Probe:
    def __init__(self, service_url: str, model: str) -> None:
        self.service_url = service_url
        self.model = model
        self.timeline = Timeline()
        self._client = httpx.Client(base_url=service_url, timeout=5.0)
        self._counts: deque[tuple[float, dict[str, float]]] = deque()

    def read(self) -> Snapshot:
        base = f"/api/v1/models/{self.model}"
        detail = self._json(base)
        canary = self._json(f"{base}/canary")
        windows = list(self._json(f"{base}/windows?limit=40").get("windows") or [])
        samples = self._samples(self._client.get("/metrics").text)
        self.timeline.add(list(detail.get("decisions") or []))
        return Snapshot(detail, canary, windows, samples, self._rates(samples))

    def close(self) -> None:
        self._client.close()

    def _json(self, path: str) -> dict[str, Any]:
        response = self._client.get(path)
        response.raise_for_status()
        return dict(response.json())

    def _samples(self, text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            if family.name not in _METRICS:
                continue
            for sample in family.samples:
                if sample.labels.get("model", self.model) == self.model:
                    found[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return found

    def _rates(self, samples: dict[tuple[str, frozenset[tuple[str, str]]], float]
               ) -> dict[str, float]:
        now = time.monotonic()
        counts: dict[str, float] = {}
        for (name, series), value in samples.items():
            labels = dict(series)
            if name == "driftloop_events_total" and labels.get("kind") == "prediction":
                counts[labels.get("version", "")] = value
        self._counts.append((now, counts))
        while len(self._counts) > 2 and now - self._counts[1][0] >= _RATE_SPAN_SECONDS:
            self._counts.popleft()
        then, before = self._counts[0]
        if now - then < 0.5:
            return {}
        return {version: max(count - before.get(version, 0.0), 0.0) / (now - then)
                for version, count in counts.items()}
