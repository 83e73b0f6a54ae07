"""Build ``driftloop serve`` from its config: the store, metrics, pipelines, service, loop.

Start-up fails fast on bad config or an unreadable baseline (the caller prints one
line and exits 2); everything that can come and go later (broker, store, MLflow)
is reported by ``/readyz`` and retried instead.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from monitor.api import Dependency, ServiceStatus
from monitor.baseline import RegistryWatch, initial_baseline, load_baseline, watch_for
from monitor.config import Config
from monitor.ingest import Decoder
from monitor.metrics import Metrics
from monitor.react import RetrainReactor, known_secrets
from monitor.store import Store
from monitor.stream import ModelPipeline, Reactor, Service
from monitor.stream.consumer import ConsumerLoop

__all__ = ["Runtime", "build"]


@dataclass
class Runtime:
    """Everything ``serve`` runs, wired together; ``stopping`` ends the consumer loop."""

    config: Config
    service: Service
    loop: ConsumerLoop
    store: Store
    registry: CollectorRegistry
    metrics: Metrics
    stopping: threading.Event
    reactor: Reactor | None = None
    watch: RegistryWatch | None = None  # baselines that follow an MLflow alias
    secrets: tuple[str, ...] = ()  # values no response or log line may carry

    def status(self) -> ServiceStatus:
        broker_reason = "" if self.loop.broker_ok else (self.loop.last_error or "unreachable")
        store_ok = self.store.ping()
        mlflow = () if self.watch is None else (
            Dependency("mlflow", self.watch.last_error is None, self.watch.last_error or ""),)
        return ServiceStatus((
            *mlflow,
            Dependency("broker", self.loop.broker_ok, broker_reason),
            Dependency("state_store", store_ok, "" if store_ok else "not answering"),
        ))

    def close(self) -> None:
        """Stop the launchers' runs, then close the Kafka clients and the store."""
        close = getattr(self.reactor, "close", None)
        if callable(close):
            close()
        self.loop.close()
        self.store.close()


def build(config: Config, *, reactor: Reactor | None = None) -> Runtime:
    """``reactor=None``: the retrain reactor of the config (policy and launchers)."""
    store = Store(config.state.url)
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    if reactor is None:
        reactor = RetrainReactor.from_config(config, store, metrics)
    pipelines = {}
    tracking_uri = config.mlflow.tracking_uri
    for name, model_config in config.models.items():
        baseline, key = initial_baseline(model_config.baseline, name, tracking_uri)
        pipelines[name] = ModelPipeline(
            name, model_config, baseline, on_late=metrics.count_late, baseline_key=key,
            loader=lambda uri: load_baseline(uri, tracking_uri=tracking_uri))
    decoder = Decoder(
        config.kafka.formats,
        max_record_bytes=config.kafka.max_record_bytes,
        feature_order=lambda model: list(pipelines[model].baseline.feature_order)
        if model in pipelines else None,
        endpoint_version=lambda model, endpoint: config.kafka.endpoint_versions.get(endpoint),
        known_models=lambda model: model in pipelines,
    )
    # the Kafka clients are created by ConsumerLoop.connect, on the consumer thread
    service = Service(config, pipelines, store, metrics, decoder, None, None, reactor=reactor)
    watch = watch_for(config, {name: p.baseline_key for name, p in pipelines.items()})
    stopping = threading.Event()
    loop = ConsumerLoop(config, service, stopping, watch)
    return Runtime(config, service, loop, store, registry, metrics, stopping, reactor, watch,
                   known_secrets(config))
