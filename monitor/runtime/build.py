"""Build ``driftloop serve`` from its config: the store, metrics, pipelines, service, loop.

Start-up fails fast on bad config or an unreadable baseline (the caller prints one
line and exits 2); everything that can come and go later (broker, store, MLflow)
is reported by ``/readyz`` and retried instead.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import make_url

from monitor.api import Dependency, ServiceStatus
from monitor.baseline import (
    RegistryWatch,
    configure_mlflow_requests,
    initial_baseline,
    load_baseline,
    load_reference_sample,
    watch_for,
)
from monitor.config import Config, ConfigError
from monitor.config.values import event_time_ms
from monitor.evaluate import ReportFiles
from monitor.ingest import Decoder
from monitor.metrics import Metrics
from monitor.react import (
    CanaryReactor,
    RetrainReactor,
    build_hooks,
    canary_policies,
    known_secrets,
)
from monitor.store import Store
from monitor.stream import (
    ArmAccumulator,
    ArmSpec,
    ModelPipeline,
    Reactor,
    ReportRows,
    ReportWriter,
    Service,
)
from monitor.stream.consumer import ConsumerLoop
from triggers.registry import MlflowRegistry

__all__ = ["Runtime", "build", "build_canary", "mlflow_registry", "reports_dir"]

log = logging.getLogger("driftloop")


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
    reports: ReportFiles | None = None  # drift reports on disk (reports.enabled)
    report_writer: ReportWriter | None = None
    canary: CanaryReactor | None = None  # models with a canary section (else None)

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
        if self.canary is not None:
            self.canary.close()
        self.loop.close()
        self.store.close()
        if self.reports is not None:
            self.reports.close()  # a temporary report folder goes with the process


def build(config: Config, *, reactor: Reactor | None = None) -> Runtime:
    """``reactor=None``: the retrain reactor of the config (policy and launchers)."""
    configure_mlflow_requests(config.mlflow.request_timeout, config.mlflow.request_max_retries)
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
        max_future_skew_seconds=config.kafka.max_future_skew,
        min_event_time_ms=event_time_ms(config.kafka.min_event_time),
        max_rows_per_record=config.kafka.max_rows_per_record,
    )
    reports = writer = rows = None
    if config.reports.enabled:
        reports = ReportFiles(reports_dir(config), config.reports.keep)
        log.info("drift reports of drifted windows go to %s (the last %d per model)",
                 reports.directory or "a temporary directory made at the first one",
                 reports.keep)

        def load_sample(model: str, key: str) -> pd.DataFrame | None:
            source = key or config.models[model].baseline
            return load_reference_sample(source, model, tracking_uri)

        writer = ReportWriter(reports, metrics, load_sample, queue_size=config.reports.queue_size)
        rows = ReportRows(config.reports.max_rows, writer.offer, metrics.count_drift_report)
    canary = build_canary(config, store, metrics, pipelines)
    # the Kafka clients are created by ConsumerLoop.connect, on the consumer thread
    service = Service(config, pipelines, store, metrics, decoder, None, None, reactor=reactor,
                      report_rows=rows, arms=canary.arms if canary is not None else None)
    if canary is not None and service.scaleout is not None:
        canary.owns = service.scaleout.owns  # a canary is judged by its model's owner
    watch = watch_for(config, {name: p.baseline_key for name, p in pipelines.items()})
    stopping = threading.Event()
    loop = ConsumerLoop(config, service, stopping, watch)
    return Runtime(config, service, loop, store, registry, metrics, stopping, reactor, watch,
                   known_secrets(config), reports, writer, canary)


def build_canary(config: Config, store: Store, metrics: Metrics,
                 pipelines: dict[str, ModelPipeline]) -> CanaryReactor | None:
    """The canary reactor of the models with a ``canary`` section (None when none has):
    their arms' accumulator (bins of each starting baseline's prediction profile), the
    MLflow registry and the deploy hooks. ConfigError names a bad section."""
    try:
        policies = canary_policies(config)
        hooks = build_hooks(config)
    except ValueError as exc:
        raise ConfigError(f"config {exc}") from None
    if not policies:
        return None
    arms = ArmAccumulator({name: ArmSpec.of(pipelines[name].baseline,
                                            config.models[name].performance.metric)
                           for name in policies})
    return CanaryReactor(config, store, metrics, arms, mlflow_registry(config), policies, hooks)


def mlflow_registry(config: Config) -> MlflowRegistry:
    """The registry adapter on an MlflowClient of ``mlflow.tracking_uri`` (its timeout and
    retries come from ``configure_mlflow_requests``, called by ``build``)."""
    from mlflow import MlflowClient

    return MlflowRegistry(MlflowClient(tracking_uri=config.mlflow.tracking_uri,
                                       registry_uri=config.mlflow.tracking_uri))


def reports_dir(config: Config) -> Path | None:
    """``reports.dir``, or a folder named after a SQLite state file beside it
    (``driftloop.db`` -> ``driftloop-reports``), or None: a new temporary directory,
    made at the first report."""
    if config.reports.dir is not None:
        return Path(config.reports.dir)
    url = make_url(config.state.url)
    database = url.database
    if url.get_backend_name() == "sqlite" and database and database != ":memory:" \
            and not database.startswith("file:"):
        path = Path(database)
        return path.with_name(f"{path.stem}-reports")
    return None
