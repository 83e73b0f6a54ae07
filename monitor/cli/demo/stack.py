"""The demo's stack: broker, MLflow, the first model, ``driftloop serve``, traffic; and its end.

:meth:`Stack.start` brings it up in order, recording every child the moment it
is started, so :meth:`Stack.close` (always called, from a ``finally``) stops
whatever exists by then: traffic threads first, then the service, MLflow and
the broker, each by its PID; then it removes the temporary work folder.

1. Tansu and ``mlflow server`` start side by side on free loopback ports (MLflow
   on SQLite in the work folder, webhooks to private addresses allowed, its
   webhook secrets encrypted with a key fixed for its lifetime);
2. meanwhile the first model is fitted on the world's training rows;
3. the topics are created, MLflow's registry webhook points at the service's
   port, and version 1 is logged with its baseline and aliased ``champion``;
4. ``driftloop serve`` starts on the config of :mod:`monitor.cli.demo.config`;
5. the label feed and the model server start.

The state file (``--state-file``) says where everything is, as JSON: URLs, the
children's PIDs, the work folder, the story's phase; it is rewritten whole at
every change.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

from monitor.cli.demo.config import KSERVE_ENDPOINTS, SECRET_ENV, service_config
from monitor.cli.demo.options import MODEL, DemoOptions
from monitor.cli.demo.processes import (
    Child,
    DemoError,
    free_port,
    mlflow_argv,
    port_open,
    start_child,
    stop_stray,
    tansu_argv,
    wait_until,
)
from monitor.cli.demo.traffic import LabelFeed, ModelServer
from monitor.cli.demo.training import fit_model, quiet_mlflow, register_version, scored
from monitor.cli.demo.world import World

__all__ = ["Stack"]

_WEBHOOK_EVENTS = ["model_version.created", "model_version_alias.created",
                   "model_version_alias.deleted"]


class Stack:
    """Everything the demo started; ``close`` stops it all."""

    def __init__(self, options: DemoOptions, workdir: Path, *, owns_workdir: bool) -> None:
        self.options = options
        self.profile = options.profile
        self.workdir = workdir
        self.owns_workdir = owns_workdir
        self.children: list[Child] = []
        self.world = World(options.seed, self.profile.drift_row)
        self.ports = {"broker": free_port(), "mlflow": free_port(), "service": free_port()}
        self.bootstrap = f"127.0.0.1:{self.ports['broker']}"
        self.mlflow_url = f"http://127.0.0.1:{self.ports['mlflow']}"
        self.service_url = f"http://127.0.0.1:{self.ports['service']}"
        self.labeled = workdir / "labeled.jsonl"
        self.config_path = workdir / "driftloop.yaml"
        self.state: dict[str, Any] = {
            "demo_pid": os.getpid(), "workdir": str(workdir), "removes_workdir": owns_workdir,
            "scenario": options.scenario, "format": options.event_format, "model": MODEL,
            "seed": options.seed, "phase": "setting up", "outcome": None, "error": None,
            "urls": {"service": self.service_url, "page": f"{self.service_url}/",
                     "metrics": f"{self.service_url}/metrics",
                     "report": f"{self.service_url}/api/v1/models/{MODEL}/reports/latest",
                     "mlflow": self.mlflow_url},
            "bootstrap": self.bootstrap, "config": str(self.config_path), "children": {}}
        self.producer: Any = None
        self.labels: LabelFeed | None = None
        self.server: ModelServer | None = None
        self.first_version: str | None = None
        self.retrain_pids: list[int] = []  # of runs the service launched (their external ids)

    # -- up -------------------------------------------------------------------------------
    def start(self, note: Callable[[str], None]) -> None:
        began = time.monotonic()
        self.write_state()
        mlflow_workdir = self.workdir / "mlflow"
        mlflow_workdir.mkdir(parents=True, exist_ok=True)
        tansu = self._child("tansu", tansu_argv(self.ports["broker"]), self.ports["broker"])
        mlflow_env = {**os.environ,
                      "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
                      "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
                      "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY":
                          base64.urlsafe_b64encode(os.urandom(32)).decode(),
                      "MLFLOW_WEBHOOK_CACHE_TTL": "1",
                      "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        mlflow = self._child("mlflow", mlflow_argv(self.ports["mlflow"], mlflow_workdir),
                             self.ports["mlflow"], env=mlflow_env, cwd=mlflow_workdir)
        note(f"Tansu broker on {self.bootstrap}, MLflow on {self.mlflow_url} (starting)")
        features, labels = self.world.training_frame(self.profile.training_rows)
        cut = len(labels) * 2 // 3
        model = fit_model(features.iloc[:cut], labels[:cut])
        wait_until(lambda: port_open(self.ports["broker"]), 30, "the Tansu broker", tansu)
        from monitor.ingest import ensure_topics

        ensure_topics(self.bootstrap, ["predictions", "labels", "driftloop-dlq"])
        wait_until(lambda: httpx.get(f"{self.mlflow_url}/health", timeout=1).text.strip() == "OK",
                   120, "mlflow server", mlflow)
        secret = secrets.token_urlsafe(24)
        self._register_first(model, cut, features.iloc[cut:], labels[cut:], secret)
        note(f"model {MODEL} version {self.first_version} trained on {cut} rows, its baseline "
             f"logged with it; alias champion -> {self.first_version}")
        self._start_service(secret)
        note(f"driftloop serve on {self.service_url} (config {self.config_path}); set up in "
             f"{time.monotonic() - began:.0f}s")
        self._start_traffic()

    def _register_first(self, model: Any, fitted_rows: int, features: Any, labels: Any,
                        secret: str) -> None:
        from mlflow import MlflowClient

        quiet_mlflow()
        client = MlflowClient(self.mlflow_url)
        client.create_webhook("driftloop", f"{self.service_url}/api/v1/mlflow/webhook",
                              _WEBHOOK_EVENTS, secret=secret)  # type: ignore[arg-type]
        with contextlib.redirect_stderr(io.StringIO()):  # MLflow's "Created version" notes
            trained = register_version(
                model, scored(model, features, labels), model_name=MODEL,
                tracking_uri=self.mlflow_url, seed=self.options.seed,
                tags={"demo.kind": "initial"}, fitted_rows=fitted_rows,
                description="the first model, trained before going live")
        client.set_registered_model_alias(MODEL, "champion", trained.version)
        self.first_version = trained.version
        if self.options.event_format == "kserve" and trained.version not in KSERVE_ENDPOINTS:
            raise DemoError(f"registry {self.mlflow_url}: the first version is "
                            f"{trained.version}, expected 1 (a new registry)")

    def _start_service(self, secret: str) -> None:
        from monitor.config import ConfigError, load_config

        config = service_config(self.options, self.profile, bootstrap=self.bootstrap,
                                mlflow_url=self.mlflow_url, port=self.ports["service"],
                                workdir=self.workdir, labeled=self.labeled)
        try:
            load_config(data=config, environ={})
        except ConfigError as exc:  # a bug of the demo, said plainly
            raise DemoError(f"the demo's own config is invalid: {exc}") from None
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP")}
        env.update({SECRET_ENV: secret, "PYTHONUNBUFFERED": "1"})
        service = self._child("driftloop", [sys.executable, "-m", "monitor.cli", "serve",
                                            "--config", str(self.config_path)],
                              self.ports["service"], env=env, cwd=self.workdir)
        wait_until(lambda: httpx.get(f"{self.service_url}/readyz", timeout=2).status_code == 200,
                   90, "driftloop serve", service)

    def _start_traffic(self) -> None:
        from kafka import KafkaProducer

        self.producer = KafkaProducer(bootstrap_servers=[self.bootstrap], linger_ms=20,
                                      batch_size=256 * 1024, acks=1)
        self.labels = LabelFeed(self.producer, topic="labels",
                                delay_seconds=self.profile.label_delay_seconds,
                                path=self.labeled).start()
        self.server = ModelServer(
            self.world, self.producer, self.labels, model=MODEL, topic="predictions",
            rate=self.profile.rate, challenger_share=self.profile.challenger_share,
            event_format=self.options.event_format, endpoints=KSERVE_ENDPOINTS,
            tracking_uri=self.mlflow_url, seed=self.options.seed).start()

    def _child(self, name: str, argv: list[str], port: int, **kwargs: Any) -> Child:
        # Ctrl-C waits until the child is on the list close() stops, never falls in between
        # (a signal handler that only remembers: a blocked mask would be inherited by the child)
        pending: list[int] = []
        previous = {number: signal.signal(number, lambda signum, _: pending.append(signum))
                    for number in (signal.SIGINT, signal.SIGTERM)}
        try:
            child = start_child(name, argv, self.workdir / "logs" / f"{name}.log", port, **kwargs)
            self.children.append(child)
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
        self.state["children"][name] = child.pid
        self.write_state()
        if pending:
            raise KeyboardInterrupt(signal.Signals(pending[0]).name)
        return child

    # -- state ----------------------------------------------------------------------------
    def write_state(self, **changes: Any) -> None:
        self.state.update(changes)
        path = self.options.state_file
        if path is None:
            return
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_bytes(orjson.dumps(self.state, option=orjson.OPT_INDENT_2))
        temporary.replace(path)

    def remember_run(self, external_id: str | None) -> None:
        """A retrain run's command-launcher id (``pid-<N>``): stopped at close should the
        service not have stopped it."""
        if external_id and external_id.startswith("pid-") and external_id[4:].isdigit():
            pid = int(external_id[4:])
            if pid not in self.retrain_pids:
                self.retrain_pids.append(pid)
                self.write_state(retrain_pids=self.retrain_pids)

    def check_traffic(self) -> None:
        """DemoError when the model server or the label feed stopped on an error."""
        for part, name in ((self.server, "the model server"), (self.labels, "the label feed")):
            if part is not None and part.error is not None:
                raise DemoError(f"{name} stopped: {type(part.error).__name__}: {part.error}")
        for child in self.children:
            if not child.alive():
                raise DemoError(f"{child.name} exited with {child.popen.returncode} "
                                f"({child.log_tail()})")

    # -- down -----------------------------------------------------------------------------
    def close(self) -> None:
        """Stop everything started, newest first; remove the work folder if it is ours."""
        for part in (self.server, self.labels):
            if part is not None:
                part.stop()
        if self.producer is not None:
            with contextlib.suppress(Exception):  # the broker may be gone: nothing to keep
                self.producer.close(5)
        for child in reversed(self.children):
            child.stop(timeout=30 if child.name == "driftloop" else 15)
        for pid in self.retrain_pids:  # the service stops its runs, unless it was killed
            stop_stray(pid, str(self.workdir))
        if self.owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.write_state(phase="stopped", stopped=True)
