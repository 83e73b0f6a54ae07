"""``driftloop serve``: start the HTTP API, the jobs and the consumer loop; stop them cleanly.

After start-up nothing stops the service but SIGTERM/SIGINT: broker, store and
MLflow outages are reported by ``/readyz`` and retried. On SIGTERM the in-flight
batch is finished, persisted and committed, and the jobs finish what they are
doing, before the process exits 0.
"""

from __future__ import annotations

import gc
import logging
import signal
import socket
import threading
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from monitor.api import check_bind, resolve_protect_reads
from monitor.config import ConfigError, load_config, read_secret
from monitor.errors import InputError
from monitor.react import RetrainReactor, known_secrets
from monitor.runtime.app import service_app
from monitor.runtime.build import Runtime, build
from monitor.runtime.jobs import Jobs, schedule_service_jobs
from monitor.runtime.logs import mask_secrets_in_logs
from monitor.runtime.malloc import tune_malloc

__all__ = ["run"]

log = logging.getLogger("driftloop")


def _serve_http(runtime: Runtime) -> uvicorn.Server:
    server_config = runtime.config.server
    app = service_app(runtime)
    server = uvicorn.Server(uvicorn.Config(app, host=server_config.host, port=server_config.port,
                                           log_level="warning", access_log=False))
    # uvicorn configured its own handlers just now
    mask_secrets_in_logs(runtime.secrets)
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
    # one line per job run is noise; driftloop.jobs logs failures with the job's name
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # before any thread of the service allocates: see monitor.runtime.malloc
    tuned = tune_malloc()
    if tuned:
        log.info("glibc malloc: %s", ", ".join(f"{k} {v}" for k, v in tuned.items()))
    config = load_config(config_path)
    mask_secrets_in_logs(known_secrets(config))
    token = read_secret(config.server.auth_token_env)
    try:
        check_bind(config.server.host, token)
        resolve_protect_reads(config.server.protect_reads, config.server.host, token)
        if config.server.protect_metrics and token is None:
            raise ValueError("server.protect_metrics: got true, but no token is configured; "
                             "expected a token in the variable named by server.auth_token_env")
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
        try:  # windows persisted just before a crash, not yet reacted to
            runtime.reactor.catch_up()
        except Exception:
            log.exception("retrain reactor: catching up on stored windows failed")
    jobs = Jobs(runtime.metrics)
    schedule_service_jobs(jobs, runtime)
    jobs.start()
    if runtime.report_writer is not None:
        runtime.report_writer.start()
    log.info("driftloop serving %d model(s) on http://%s:%d (jobs: %s)", len(config.models),
             config.server.host, config.server.port, ", ".join(jobs.names))
    try:
        runtime.loop.run()
    finally:
        server.should_exit = True
        jobs.stop()
        if runtime.report_writer is not None:
            runtime.report_writer.stop()
        runtime.close()
    log.info("driftloop stopped cleanly")
    return 0
