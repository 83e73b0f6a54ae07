"""Fakes for the canary's unit tests: an in-memory registry that can go down, a hook that
records calls, a clock, and traffic for the arms accumulator."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import numpy as np

from monitor.ingest import Prediction
from monitor.store import JoinedPair
from monitor.stream import ArmAccumulator
from triggers.launch import LaunchError, LaunchRequest, RunRef, RunStatus
from triggers.registry import RegistryError, VersionInfo

__all__ = ["T0", "Clock", "HookRecorder", "MemoryRegistry", "traffic"]

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


class Clock:
    """Wall clock (``now``) and monotonic clock (``monotonic``) that move together."""

    def __init__(self) -> None:
        self.now = T0
        self.seconds = 1000.0

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.seconds

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.seconds += seconds


@dataclass
class MemoryRegistry:
    """``ModelRegistry`` over dicts; ``down`` makes every call a retryable outage; ``writes``
    lists the changes made, in order."""

    aliases: dict[str, str] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    run_tags: dict[str, dict[str, str]] = field(default_factory=dict)  # version -> its run's
    down: bool = False
    writes: list[str] = field(default_factory=list)

    def _up(self, operation: str) -> None:
        if self.down:
            raise RegistryError(operation, "connection refused", retryable=True)

    def get_alias(self, model: str, alias: str) -> str | None:
        self._up(f"get alias {alias}")
        return self.aliases.get(alias)

    def set_alias(self, model: str, alias: str, version: str) -> None:
        self._up(f"set alias {alias}")
        self.writes.append(f"{alias}->{version}")
        self.aliases[alias] = version

    def delete_alias(self, model: str, alias: str) -> None:
        self._up(f"delete alias {alias}")
        self.writes.append(f"delete {alias}")
        self.aliases.pop(alias, None)

    def get_version_tags(self, model: str, version: str) -> dict[str, str]:
        self._up(f"get tags of v{version}")
        if version not in self.tags:
            raise RegistryError(f"get tags of v{version}", "RESOURCE_DOES_NOT_EXIST",
                                retryable=False)
        return dict(self.tags[version])

    def set_version_tag(self, model: str, version: str, key: str, value: str) -> None:
        self._up(f"tag v{version}")
        self.writes.append(f"tag v{version} {key}={value[:20]}")
        self.tags.setdefault(version, {})[key] = value

    def get_run_id(self, model: str, version: str) -> str | None:
        return None

    def list_versions(self, model: str) -> list[VersionInfo]:
        self._up("list versions")
        return [VersionInfo(model, v, None, dict(t)) for v, t in sorted(self.tags.items())]

    def find_versions_by_run_tag(self, model: str, key: str, value: str) -> list[str]:
        self._up("find runs")
        return sorted(v for v, t in self.run_tags.items() if t.get(key) == value)

    def register(self, version: str, **run_tags: str) -> None:
        self.tags.setdefault(version, {})
        if run_tags:
            self.run_tags[version] = dict(run_tags)


class HookRecorder:
    """A deploy hook: records each request; ``errors`` are raised first, one per call."""

    type: ClassVar[str] = "webhook"
    tracks_status: ClassVar[bool] = False

    def __init__(self, errors: list[LaunchError] | None = None) -> None:
        self.calls: list[LaunchRequest] = []
        self.errors = list(errors or [])

    def launch(self, request: LaunchRequest) -> RunRef:
        if self.errors:
            raise self.errors.pop(0)
        self.calls.append(request)
        return RunRef("webhook", request.idempotency_key, request.idempotency_key)

    def status(self, ref: RunRef) -> RunStatus:
        return RunStatus("unknown")

    @property
    def keys(self) -> list[str]:
        return [c.idempotency_key for c in self.calls]

    @property
    def reasons(self) -> list[str]:
        return [c.reason for c in self.calls]


def traffic(arms: ArmAccumulator, model: str, version: str, n: int, accuracy: float,
            seed: int = 0, prefix: str = "") -> None:
    """``n`` predictions of ``version`` (classes 0/1, half each) and their labels, right
    for a share ``accuracy`` of them."""
    rng = np.random.default_rng(seed)
    predicted = rng.integers(0, 2, n)
    right = rng.random(n) < accuracy
    labels = np.where(right, predicted, 1 - predicted)
    ids = [f"{prefix}{version}-{seed}-{i}" for i in range(n)]
    arms.add_predictions(model, version, [
        Prediction(model, version, ids[i], 0, {}, int(predicted[i])) for i in range(n)])
    arms.add_pairs({model: [
        JoinedPair(model, ids[i], version, int(predicted[i]), None, None, int(labels[i]), 0, 0)
        for i in range(n)]})

