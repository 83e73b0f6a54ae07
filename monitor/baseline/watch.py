"""Baselines that follow an MLflow registry alias (``baseline: mlflow:champion``).

At start, :func:`initial_baseline` resolves the alias to its model version's run
and loads that run's baseline; the baseline's key is the run's ``runs:/<id>``
URI (a file baseline has the key ``""``). :class:`RegistryWatch` then polls
``MlflowClient.get_model_version_by_alias`` every ``mlflow.poll_interval`` on its
own thread; when the alias names another run it downloads the new baseline there
(slow work stays off the consumer thread) and queues a :class:`BaselineChange`.

The consumer thread applies queued changes between two batches
(:meth:`monitor.service.Service.swap_baseline`), which is a window boundary for
every stream: windows opened from then on use the new baseline, and windows
already open finish on the baseline they were binned with (their result names it
in ``baseline``), so no window mixes two baselines and none is cut short. Open
windows' checkpoints carry their baseline key, so after a restart they are
finished on the right baseline too (loaded again by key).

Registry outages are logged and retried at the next poll; ``last_error`` feeds
``/readyz``. Nothing here stops the service.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from monitor.baseline.loader import load_baseline, resolve_run_uri
from monitor.baseline.model import Baseline
from monitor.config import Config

__all__ = ["BaselineChange", "RegistryWatch", "alias_of", "initial_baseline", "watch_for"]

log = logging.getLogger("driftloop.registry")


@dataclass(frozen=True)
class BaselineChange:
    model: str
    alias: str
    version: str  # the registered model version the alias now names
    key: str  # runs:/<run_id>
    baseline: Baseline


def alias_of(source: str, model: str) -> tuple[str, str] | None:
    """(registered model name, alias) of an alias-form baseline source, else None."""
    if source.startswith("mlflow:"):
        return model, source[len("mlflow:"):]
    if source.startswith("models:/") and "@" in source:
        name, alias = source[len("models:/"):].split("@", 1)
        return name, alias
    return None


def initial_baseline(source: str, model: str,
                     tracking_uri: str | None) -> tuple[Baseline, str]:
    """The baseline to start with and its key (``""`` for a file)."""
    run_uri = resolve_run_uri(source, model, tracking_uri)
    if run_uri is None or alias_of(source, model) is None:
        return load_baseline(source, model=model, tracking_uri=tracking_uri), ""
    return load_baseline(run_uri, tracking_uri=tracking_uri), run_uri


class RegistryWatch:
    """Polls the registry aliases of ``watched`` (model -> (registered name, alias)).

    ``current`` maps each model to the key of the baseline it starts with.
    """

    def __init__(self, watched: Mapping[str, tuple[str, str]], current: Mapping[str, str], *,
                 tracking_uri: str | None, poll_interval: float,
                 client: Any = None,
                 loader: Callable[[str], Baseline] | None = None) -> None:
        self.watched = dict(watched)
        self.current = dict(current)
        self.tracking_uri = tracking_uri
        self.poll_interval = poll_interval
        self._client = client
        self._loader = loader or (lambda key: load_baseline(key, tracking_uri=tracking_uri))
        self._queue: list[BaselineChange] = []
        self._lock = threading.Lock()
        self.last_error: str | None = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    def check(self) -> list[BaselineChange]:
        """One poll of every watched alias; queues and returns the changes found."""
        changes = []
        errors = []
        for model, (name, alias) in self.watched.items():
            try:
                version = self.client.get_model_version_by_alias(name, alias)
                key = f"runs:/{version.run_id}"
                if not version.run_id or key == self.current.get(model):
                    continue
                baseline = self._loader(key)
            except Exception as exc:  # the registry or the artifact store is away: retry
                errors.append(f"{name}@{alias}: {type(exc).__name__}: {exc}".splitlines()[0])
                continue
            log.info("baseline of %s: alias %s@%s moved to version %s (%s); new windows "
                     "use it, open windows finish on the previous one", model, name, alias,
                     version.version, key)
            self.current[model] = key
            changes.append(BaselineChange(model, alias, str(version.version), key, baseline))
        self.last_error = "; ".join(errors) or None
        if errors:
            log.warning("MLflow registry poll failed (retrying in %.0fs): %s",
                        self.poll_interval, self.last_error)
        with self._lock:
            self._queue.extend(changes)
        return changes

    def take(self) -> list[BaselineChange]:
        """The changes queued since the last call (the consumer thread applies them)."""
        with self._lock:
            taken, self._queue = self._queue, []
        return taken


def watch_for(config: Config, current: Mapping[str, str]) -> RegistryWatch | None:
    """A watch of the config's alias-form baselines (None when there is none);
    ``current``: model -> key of the baseline it started with."""
    watched = {name: found for name, model in config.models.items()
               if (found := alias_of(model.baseline, name)) is not None}
    if not watched:
        return None
    return RegistryWatch(watched, {m: current[m] for m in watched if m in current},
                         tracking_uri=config.mlflow.tracking_uri,
                         poll_interval=config.mlflow.poll_interval)
