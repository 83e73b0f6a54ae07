"""``driftloop serve``: build the service from the config, run it, stop it cleanly.

Start-up fails fast on bad config or an unreadable baseline (exit 2 with one
line naming the problem). After start-up nothing stops the service but
SIGTERM/SIGINT: broker, store and MLflow outages are reported by ``/readyz``
and retried. On SIGTERM the in-flight batch is finished, persisted and
committed before the process exits 0.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from kafka import ConsumerRebalanceListener, TopicPartition
from prometheus_client import CollectorRegistry

from monitor.api import Dependency, ServiceStatus, create_app
from monitor.api_triggers import create_trigger_router
from monitor.baseline_io import load_baseline
from monitor.codecs import Decoder
from monitor.config import Config, load_config, read_secret
from monitor.deadletter import DeadLetterWriter
from monitor.kafka import broker_reachable, consumer_lag, make_consumer, make_producer
from monitor.metrics import Metrics
from monitor.pipeline import ModelPipeline
from monitor.reactor import RetrainReactor
from monitor.service import Reactor, Service
from monitor.store import Store

__all__ = ["Runtime", "build", "run"]

log = logging.getLogger("driftloop")


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.runtime.service.revoke((tp.topic, tp.partition) for tp in revoked)

    def on_partitions_assigned(self, assigned: Any) -> None:
        seeks = self.runtime.service.restore((tp.topic, tp.partition) for tp in assigned)
        for (topic, partition), offset in seeks.items():
            self.runtime.consumer.seek(TopicPartition(topic, partition), offset)


@dataclass
class Runtime:
    config: Config
    service: Service
    consumer: Any
    producer: Any
    store: Store
    registry: CollectorRegistry
    metrics: Metrics
    stopping: threading.Event
    reactor: Reactor | None = None
    broker_ok: bool = True
    last_poll_error: str | None = None

    def status(self) -> ServiceStatus:
        broker_reason = "" if self.broker_ok else (self.last_poll_error or "unreachable")
        store_ok = self.store.ping()
        return ServiceStatus((
            Dependency("broker", self.broker_ok, broker_reason),
            Dependency("state_store", store_ok, "" if store_ok else "not answering"),
        ))

    def loop(self) -> None:
        kafka = self.config.kafka
        self.consumer.subscribe([kafka.predictions_topic, kafka.labels_topic],
                                listener=_Rebalance(self))
        last_check = 0.0
        needs_rewind = False
        while not self.stopping.is_set():
            if needs_rewind:
                needs_rewind = not self._rewind()
                if needs_rewind:
                    self.stopping.wait(1.0)
                    continue
            try:
                self.service.step()
            except Exception as exc:  # stay up: report, back off, reload the stored state
                log.warning("consumer step failed (%s: %s); reloading the stored state and "
                            "retrying", type(exc).__name__, exc)
                self.stopping.wait(1.0)
                needs_rewind = True
                continue
            now = time.monotonic()
            # kafka-python's poll() returns nothing while the broker is away: ask it
            if now - last_check > (5.0 if self.broker_ok else 1.0):
                last_check = now
                self.broker_ok = broker_reachable(kafka.bootstrap_servers, timeout=1.0)
                self.last_poll_error = None if self.broker_ok else (
                    f"no answer from {', '.join(kafka.bootstrap_servers)}")
                with contextlib.suppress(Exception):  # lag is best effort
                    self.metrics.set_lags(consumer_lag(self.consumer))
        if not needs_rewind:
            self.service.persist(force=True)

    def _rewind(self) -> bool:
        """Reload the stored state and seek to its offsets; False if that failed too."""
        try:
            assigned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
            seeks = self.service.rewind(assigned)
            for tp in assigned:
                if tp in seeks:
                    self.consumer.seek(TopicPartition(*tp), seeks[tp])
                else:
                    self.consumer.seek_to_beginning(TopicPartition(*tp))
        except Exception as exc:
            log.warning("could not reload the stored state yet (%s: %s)", type(exc).__name__, exc)
            return False
        return True

    def close(self) -> None:
        for closer in (self.consumer.close, self.producer.close, self.store.close):
            try:
                closer()
            except Exception as exc:
                log.warning("while closing: %s", exc)


def build(config: Config, *, reactor: Reactor | None = None) -> Runtime:
    """``reactor=None``: the retrain reactor of the config (policy and launchers)."""
    store = Store(config.state.url)
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    if reactor is None:
        reactor = RetrainReactor.from_config(config, store, metrics)
    pipelines = {}
    for name, model_config in config.models.items():
        baseline = load_baseline(model_config.baseline, model=name,
                                 tracking_uri=config.mlflow.tracking_uri)
        pipelines[name] = ModelPipeline(name, model_config, baseline, on_late=metrics.count_late)
    decoder = Decoder(
        config.kafka.formats,
        max_record_bytes=config.kafka.max_record_bytes,
        feature_order=lambda model: list(pipelines[model].baseline.feature_order)
        if model in pipelines else None,
        endpoint_version=lambda model, endpoint: config.kafka.endpoint_versions.get(endpoint),
        known_models=lambda model: model in pipelines,
    )
    consumer = make_consumer(config.kafka)
    producer = make_producer(config.kafka)
    dead_letters = DeadLetterWriter(producer, config.kafka.dead_letter_topic)
    service = Service(config, pipelines, store, metrics, decoder, consumer, dead_letters,
                      reactor=reactor)
    return Runtime(config, service, consumer, producer, store, registry, metrics, threading.Event(),
                   reactor)


def _serve_http(runtime: Runtime) -> uvicorn.Server:
    server_config = runtime.config.server
    app = create_app(runtime.store, runtime.registry, status=runtime.status,
                     auth_token=read_secret(server_config.auth_token_env),
                     models=list(runtime.config.models),
                     max_body_bytes=server_config.max_body_bytes)
    if isinstance(runtime.reactor, RetrainReactor):
        app.include_router(create_trigger_router(
            runtime.store, runtime.reactor, models=list(runtime.config.models),
            max_body_bytes=server_config.max_body_bytes,
            grafana_secret=read_secret(server_config.grafana_hmac_secret_env)))
    server = uvicorn.Server(uvicorn.Config(app, host=server_config.host, port=server_config.port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="driftloop-http", daemon=True)
    thread.start()
    return server


def run(config_path: str | Path) -> int:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(config_path)
    runtime = build(config)
    server = _serve_http(runtime)
    if isinstance(runtime.reactor, RetrainReactor):
        runtime.reactor.start()  # run-status polling and launch retries

    def _stop(signum: int, _frame: Any) -> None:
        log.info("received %s: finishing the in-flight batch", signal.Signals(signum).name)
        runtime.stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("driftloop serving %d model(s) on http://%s:%d", len(config.models),
             config.server.host, config.server.port)
    try:
        runtime.loop()
    finally:
        server.should_exit = True
        if isinstance(runtime.reactor, RetrainReactor):
            runtime.reactor.stop()
        runtime.close()
    log.info("driftloop stopped cleanly")
    return 0
