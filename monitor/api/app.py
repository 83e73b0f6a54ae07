"""The HTTP API (FastAPI): health, readiness, metrics and the read routes of design 7.

``create_app`` takes everything it serves as arguments (the store, the metrics
registry, a readiness callable, the token, the secrets to mask), so tests build it
with a real SQLite store and a fresh registry, and the service wires in its own.

Routes added later (``app.include_router`` or ``@app.get``) use the guards of
``monitor.api.guards``: ``Depends(protect_reads)`` on every read route and page,
``Depends(require_token)`` on mutating routes without their own authentication,
``Depends(limited_body)`` for the raw body. ``guard_mutation`` (Origin, Host,
``application/json``) is installed app-wide and needs nothing.

Every error answers ``{"detail": "<one sentence>"}``; an unexpected exception is
logged with an error id and answers 500 without a stack trace; no response carries
a secret value (``monitor.api.errors``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, Response
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from pydantic import SecretStr

from monitor.api import views
from monitor.api.errors import install_error_handling, json_response
from monitor.api.guards import (
    check_bind,
    guard_mutation,
    has_token,
    limited_body,
    normalized_origin,
    read_body,
    require_model,
    require_token,
)
from monitor.api.guards import protect_reads as reads_guard
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
    protect_reads: bool = False,
    protect_metrics: bool = False,
    allowed_origins: Sequence[str] = (),
    secrets: Sequence[str] = (),
    reports: ReportFiles | None = None,
) -> FastAPI:
    """The FastAPI app. ``models``: the configured model names (others answer 404).

    ``reports``: the drift reports on disk (None: reports are off, their routes say so).

    ``versions(model)`` gives champion and challenger (e.g. from the MLflow aliases);
    by default they come from the canary state in the store.
    ``status()`` is called on every ``/readyz``: keep it cheap (cached checks).
    ``protect_reads`` / ``protect_metrics``: the resolved ``server.*`` settings (see
    ``resolve_protect_reads``); ``allowed_origins``: ``server.allowed_origins``;
    ``secrets``: values no response may carry (the token is always one of them).
    """
    origins = {origin: normalized_origin(origin) for origin in allowed_origins}
    wrong = [origin for origin, found in origins.items() if found is None]
    if wrong:
        raise ValueError(f"server.allowed_origins: got {wrong[0]!r}, expected "
                         "scheme://host[:port] with scheme http or https")
    app = FastAPI(title="driftloop", version=app_version, docs_url=None, redoc_url=None,
                  openapi_url=None, dependencies=[Depends(guard_mutation)])
    app.state.auth_token = auth_token
    app.state.max_body_bytes = max_body_bytes
    app.state.protect_reads = protect_reads
    app.state.allowed_origins = frozenset(found for found in origins.values() if found)
    masked = [*secrets, *([auth_token.get_secret_value()] if auth_token is not None else [])]
    install_error_handling(app, masked)
    known = list(dict.fromkeys(models))
    app.state.models = known
    _add_docs(app)

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
    def readyz(request: Request) -> Response:
        try:
            current = status()
        except Exception as exc:
            logger.exception("readiness check failed")
            reason = f"readiness check failed: {type(exc).__name__}"
            return json_response({"ready": False, "detail": reason, "dependencies": {}}, 503)
        # the status code is for probes; the reasons name hosts and errors, for operators
        explain = not protect_reads or has_token(request)
        deps = {d.name: {"ready": d.ready, "reason": d.reason if explain else ""}
                for d in current.dependencies}
        waiting = [
            f"{d.name} ({d.reason})" if d.reason and explain else d.name
            for d in current.dependencies
            if not d.ready
        ]
        detail = "ready" if not waiting else "not ready: " + "; ".join(waiting)
        return json_response(
            {"ready": not waiting, "detail": detail, "dependencies": deps}, 503 if waiting else 200
        )

    @app.get("/metrics", tags=["health"], response_class=Response)
    def metrics(request: Request) -> Response:
        if protect_metrics:
            require_token(request, None)
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(registry), media_type=None, headers={"Content-Type": content_type})

    @app.get("/api/v1/models", response_model=views.ModelsResponse, tags=["models"],
             dependencies=[Depends(reads_guard)])
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
        dependencies=[Depends(reads_guard)],
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
        dependencies=[Depends(reads_guard)],
    )
    def list_windows(
        model: Annotated[str, Depends(require_model)],
        limit: Annotated[int, Query(ge=1, le=MAX_WINDOWS, description="newest first")] = 100,
    ) -> Response:
        found = store.windows(model, limit=limit)
        return json_response({"model": model, "count": len(found), "windows": found})

    # read routes with their own routers, so a guard applies to each at include time
    app.include_router(create_report_router(reports), dependencies=[Depends(reads_guard)])

    def champion_challenger(model: str) -> tuple[str | None, str | None]:
        names = model_versions(model)
        return names.champion, names.challenger

    app.include_router(create_page_router(store, models=known, versions=champion_challenger,
                                          reports=reports, decisions_limit=decisions_limit),
                       dependencies=[Depends(reads_guard)])
    return app


def _add_docs(app: FastAPI) -> None:
    """FastAPI's /openapi.json, /docs and /redoc, behind ``protect_reads`` like the reads."""
    guarded = [Depends(reads_guard)]

    @app.get("/openapi.json", include_in_schema=False, dependencies=guarded)
    def openapi() -> Response:
        return json_response(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=guarded)
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - API",
                                   oauth2_redirect_url="/docs/oauth2-redirect")

    @app.get("/docs/oauth2-redirect", include_in_schema=False, dependencies=guarded)
    def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False, dependencies=guarded)
    def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} - ReDoc")
