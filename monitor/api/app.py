"""The HTTP API (FastAPI): health, readiness, metrics and the read routes of design 7.

``create_app`` takes everything it serves as arguments (the store, the metrics
registry, a readiness callable, the token), so tests build it with a real
SQLite store and a fresh registry, and the service wires in its own.

For mutating routes added later (alerts, retrain, webhooks), re-exported from
``monitor.api.guards``:
- ``dependencies=[Depends(require_token)]``: Bearer auth against the app's token
  (401 + ``WWW-Authenticate: Bearer`` when missing or wrong; open when no token
  is configured, which ``check_bind`` allows on loopback addresses only);
- ``body: bytes = Depends(limited_body)`` (or ``await read_body(request)``): the raw
  body, 413 past ``max_body_bytes``; such routes parse the bytes themselves
  (HMAC checks need them) and declare no pydantic body parameter.

Every error answers ``{"detail": "<one sentence>"}``; an unexpected exception is
logged with an error id and answers 500 without a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from pydantic import SecretStr

from monitor.api import views
from monitor.api.guards import (
    check_bind,
    install_error_handling,
    json_response,
    limited_body,
    read_body,
    require_model,
    require_token,
)
from monitor.api.page import create_page_router
from monitor.api.reports import create_report_router
from monitor.evaluate import ReportFiles
from monitor.store import Store

__all__ = [
    "Dependency",
    "ModelVersions",
    "ServiceStatus",
    "check_bind",
    "create_app",
    "limited_body",
    "read_body",
    "require_model",
    "require_token",
]

logger = logging.getLogger("driftloop.api")

MAX_WINDOWS = 1000


@dataclass(frozen=True)
class Dependency:
    """One thing readiness depends on: ``broker``, ``state_store``, ``mlflow``."""

    name: str
    ready: bool
    reason: str = ""  # why not ready, for people


@dataclass(frozen=True)
class ServiceStatus:
    dependencies: tuple[Dependency, ...]

    @property
    def ready(self) -> bool:
        return all(d.ready for d in self.dependencies)


@dataclass(frozen=True)
class ModelVersions:
    champion: str | None = None
    challenger: str | None = None


def create_app(
    store: Store,
    registry: CollectorRegistry,
    *,
    status: Callable[[], ServiceStatus],
    auth_token: SecretStr | None,
    models: Sequence[str],
    versions: Callable[[str], ModelVersions] | None = None,
    max_body_bytes: int = 1_048_576,
    decisions_limit: int = 10,
    app_version: str = "0.1.0",
    reports: ReportFiles | None = None,
) -> FastAPI:
    """The FastAPI app. ``models``: the configured model names (others answer 404).

    ``reports``: the drift reports on disk (None: reports are off, their routes say so).

    ``versions(model)`` gives champion and challenger (e.g. from the MLflow aliases);
    by default they come from the canary state in the store.
    ``status()`` is called on every ``/readyz``: keep it cheap (cached checks).
    """
    app = FastAPI(title="driftloop", version=app_version)
    app.state.auth_token = auth_token
    app.state.max_body_bytes = max_body_bytes
    install_error_handling(app)
    known = list(dict.fromkeys(models))
    app.state.models = known

    def model_versions(model: str) -> ModelVersions:
        if versions is not None:
            return versions(model)
        canary = store.get_canary(model)
        return ModelVersions(canary.champion, canary.challenger) if canary else ModelVersions()

    def decisions(model: str) -> list[dict[str, Any]]:
        records = store.decisions(model, limit=decisions_limit)
        return [
            {"at": views.iso_ms(d.at_ms), "kind": d.kind, "sentence": d.sentence} for d in records
        ]

    @app.get("/healthz", response_model=views.HealthResponse, tags=["health"])
    def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get(
        "/readyz",
        response_model=views.ReadyResponse,
        responses={503: {"model": views.ReadyResponse}},
        tags=["health"],
    )
    def readyz() -> Response:
        try:
            current = status()
        except Exception as exc:
            logger.exception("readiness check failed")
            reason = f"readiness check failed: {type(exc).__name__}"
            return json_response({"ready": False, "detail": reason, "dependencies": {}}, 503)
        deps = {d.name: {"ready": d.ready, "reason": d.reason} for d in current.dependencies}
        waiting = [
            f"{d.name} ({d.reason})" if d.reason else d.name
            for d in current.dependencies
            if not d.ready
        ]
        detail = "ready" if not waiting else "not ready: " + "; ".join(waiting)
        return json_response(
            {"ready": not waiting, "detail": detail, "dependencies": deps}, 503 if waiting else 200
        )

    @app.get("/metrics", tags=["health"], response_class=Response)
    def metrics(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(registry), media_type=None, headers={"Content-Type": content_type})

    @app.get("/api/v1/models", response_model=views.ModelsResponse, tags=["models"])
    def list_models() -> Response:
        out = []
        for name in known:
            names = model_versions(name)
            last = store.windows(name, limit=1)
            out.append(
                {
                    "name": name,
                    "champion": names.champion,
                    "challenger": names.challenger,
                    "last_window": views.window_summary(last[0]) if last else None,
                    "decisions": decisions(name),
                }
            )
        return json_response({"models": out})

    @app.get(
        "/api/v1/models/{model}",
        response_model=views.ModelDetail,
        responses={404: {"model": views.ErrorResponse}},
        tags=["models"],
    )
    def get_model(model: Annotated[str, Depends(require_model)]) -> Response:
        names = model_versions(model)
        last = store.windows(model, limit=1)
        runs = [
            {
                "id": r.id,
                "reason": r.reason,
                "launcher": r.launcher,
                "status": r.status,
                "started_at": views.iso_ms(r.started_at_ms),
                "finished_at": views.iso_ms(r.finished_at_ms),
                "external_id": r.external_id,
            }
            for r in store.runs(model, limit=decisions_limit)
        ]
        return json_response(
            {
                "name": model,
                "champion": names.champion,
                "challenger": names.challenger,
                "last_window": last[0] if last else None,
                "decisions": decisions(model),
                "canary": views.canary_view(store.get_canary(model)),
                "trigger": views.trigger_view(store.get_trigger_state(model)),
                "retrain_runs": runs,
            }
        )

    @app.get(
        "/api/v1/models/{model}/windows",
        response_model=views.WindowsPage,
        responses={404: {"model": views.ErrorResponse}, 422: {"model": views.ErrorResponse}},
        tags=["models"],
    )
    def list_windows(
        model: Annotated[str, Depends(require_model)],
        limit: Annotated[int, Query(ge=1, le=MAX_WINDOWS, description="newest first")] = 100,
    ) -> Response:
        found = store.windows(model, limit=limit)
        return json_response({"model": model, "count": len(found), "windows": found})

    # read routes with their own routers, so a guard applies to each at include time
    app.include_router(create_report_router(reports))

    def champion_challenger(model: str) -> tuple[str | None, str | None]:
        names = model_versions(model)
        return names.champion, names.challenger

    app.include_router(create_page_router(store, models=known, versions=champion_challenger,
                                          reports=reports, decisions_limit=decisions_limit))
    return app
