"""``driftloop serve``: build the service from the config, run it, stop it cleanly.

Start-up fails fast on bad config or an unreadable baseline (exit 2 with one
line naming the problem). After start-up nothing stops the service but
SIGTERM/SIGINT: broker, store and MLflow outages are reported by ``/readyz``
and retried. On SIGTERM the in-flight batch is finished, persisted and
committed before the process exits 0.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from monitor.api import Dependency, ServiceStatus, check_bind, create_app, create_trigger_router
from monitor.baseline import RegistryWatch, initial_baseline, load_baseline, watch_for
from monitor.config import Config, ConfigError, load_config, read_secret
from monitor.errors import InputError
from monitor.ingest import (
    DeadLetterWriter,
    Decoder,
    broker_reachable,
    consumer_lag,
    make_consumer,
    make_producer,
)
from monitor.metrics import Metrics
from monitor.react import RetrainReactor
from monitor.store import Store
from monitor.stream import ModelPipeline, Reactor, Service

__all__ = ["Runtime", "build", "run"]

log = logging.getLogger("driftloop")

# how long one attempt to reach the bootstrap servers waits before the loop retries
CONNECT_TIMEOUT_MS = 5000
# a consumer with no partitions this long while the broker answers is replaced
STUCK_JOIN_SECONDS = 30.0


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
    consumer: Any  # None until a broker answers (``connect``)
    producer: Any
    store: Store
    registry: CollectorRegistry
    metrics: Metrics
    stopping: threading.Event
    reactor: Reactor | None = None
    broker_ok: bool = False  # ready only once the Kafka clients are connected
    last_poll_error: str | None = "not connected to the broker yet"
    watch: RegistryWatch | None = None  # baselines that follow an MLflow alias

    def status(self) -> ServiceStatus:
        broker_reason = "" if self.broker_ok else (self.last_poll_error or "unreachable")
        store_ok = self.store.ping()
        mlflow = () if self.watch is None else (
            Dependency("mlflow", self.watch.last_error is None, self.watch.last_error or ""),)
        return ServiceStatus((
            *mlflow,
            Dependency("broker", self.broker_ok, broker_reason),
            Dependency("state_store", store_ok, "" if store_ok else "not answering"),
        ))

    def connect(self) -> bool:
        """Create the Kafka clients; False, and not ready, while no broker answers."""
        kafka = self.config.kafka
        try:
            if self.producer is None:
                self.producer = make_producer(kafka, bootstrap_timeout_ms=CONNECT_TIMEOUT_MS)
            if self.consumer is None:
                self.consumer = make_consumer(kafka, bootstrap_timeout_ms=CONNECT_TIMEOUT_MS)
        except KafkaError as exc:
            self.broker_ok = False
            self.last_poll_error = (f"no broker answers at {', '.join(kafka.bootstrap_servers)} "
                                    f"({type(exc).__name__})")
            log.warning("%s; retrying", self.last_poll_error)
            return False
        self.service.consumer = self.consumer
        self.service.dead_letters = DeadLetterWriter(self.producer, kafka.dead_letter_topic)
        self.broker_ok, self.last_poll_error = True, None
        return True

    def loop(self) -> None:
        kafka = self.config.kafka
        # a broker that is down at start makes the service not ready, not a crash
        while not self.stopping.is_set() and not self.connect():
            self.stopping.wait(2.0)
        if self.stopping.is_set():
            return
        self._subscribe()
        last_check = 0.0
        unassigned_since: float | None = None
        needs_rewind = False
        while not self.stopping.is_set():
            if needs_rewind:
                needs_rewind = not self._rewind()
                if needs_rewind:
                    self.stopping.wait(1.0)
                    continue
            if self.watch is not None:  # between batches: a window boundary
                for change in self.watch.take():
                    self.service.swap_baseline(change.model, change.key, change.baseline)
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
                # a group join that never completes (seen after a broker restart) leaves
                # the consumer without partitions for good: start a new one
                if self.consumer.assignment() or not self.broker_ok:
                    unassigned_since = None
                elif unassigned_since is None:
                    unassigned_since = now
                elif now - unassigned_since > STUCK_JOIN_SECONDS:
                    log.warning("no partitions assigned for %.0f s although the broker answers: "
                                "starting a new consumer", now - unassigned_since)
                    unassigned_since = None
                    self._recreate_consumer()
        if not needs_rewind:
            self.service.persist(force=True)

    def _subscribe(self) -> None:
        kafka = self.config.kafka
        self.consumer.subscribe([kafka.predictions_topic, kafka.labels_topic],
                                listener=_Rebalance(self))

    def _recreate_consumer(self) -> None:
        old, self.consumer = self.consumer, None
        with contextlib.suppress(Exception):
            old.close(autocommit=False)
        while not self.stopping.is_set() and not self.connect():
            self.stopping.wait(2.0)
        if self.consumer is not None:
            self._subscribe()

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
        for client in (self.consumer, self.producer, self.store):
            if client is None:
                continue
            try:
                client.close()
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
    # the Kafka clients are created by Runtime.connect, in the loop
    service = Service(config, pipelines, store, metrics, decoder, None, None,
                      reactor=reactor)
    watch = watch_for(config, {name: p.baseline_key for name, p in pipelines.items()})
    return Runtime(config, service, None, None, store, registry, metrics, threading.Event(),
                   reactor, watch=watch)


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
    # bound here, not in uvicorn's thread: a port in use must stop the start, not leave
    # a service running without its API
    try:
        sock = socket.create_server((server_config.host, server_config.port))
    except OSError as exc:
        raise InputError(f"server {server_config.host}:{server_config.port}: cannot listen "
                         f"({exc.strerror or exc}); check server.host and server.port") from None
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="driftloop-http", daemon=True)
    thread.start()
    return server


def run(config_path: str | Path) -> int:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(config_path)
    try:
        check_bind(config.server.host, read_secret(config.server.auth_token_env))
    except ValueError as exc:
        raise ConfigError(f"config {exc}") from None
    try:
        runtime = build(config)
    except SQLAlchemyError as exc:
        url = make_url(config.state.url).render_as_string(hide_password=True)
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise InputError(f"state.url {url}: cannot open the state store ({reason})") from None
    # Every event allocates a dict of features: with the default thresholds the young
    # generation is collected every 700 allocations and the old one rescans everything
    # MLflow, SQLAlchemy and FastAPI created at import, about a third of the consume
    # rate (benchmarks/bench_service.py). Start-up objects are frozen out of collection
    # and young collections run every 50k allocations, which bounds them all the same.
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)

    def _stop(signum: int, _frame: Any) -> None:
        log.info("received %s: finishing the in-flight batch", signal.Signals(signum).name)
        runtime.stopping.set()

    # before the API answers: whoever sees it up may send SIGTERM at once
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server = _serve_http(runtime)
    if isinstance(runtime.reactor, RetrainReactor):
        runtime.reactor.start()  # run-status polling and launch retries
    if runtime.watch is not None:
        runtime.watch.start()

    log.info("driftloop serving %d model(s) on http://%s:%d", len(config.models),
             config.server.host, config.server.port)
    try:
        runtime.loop()
    finally:
        server.should_exit = True
        if isinstance(runtime.reactor, RetrainReactor):
            runtime.reactor.stop()
        if runtime.watch is not None:
            runtime.watch.stop()
        runtime.close()
    log.info("driftloop stopped cleanly")
    return 0
