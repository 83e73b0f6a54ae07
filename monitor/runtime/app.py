"""The HTTP app of ``driftloop serve``: the API, its guards and the trigger routes, as the
config says.

Kept apart from ``serve`` (which runs it under uvicorn) so tests build exactly the app
the service serves, from a ``Runtime``.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from monitor.api import (
    ModelVersions,
    check_bind,
    create_app,
    create_canary_router,
    create_mlflow_webhook_router,
    create_trigger_router,
    resolve_protect_reads,
)
from monitor.config import read_secret
from monitor.react import CanaryReactor, RetrainReactor
from monitor.runtime.build import Runtime

__all__ = ["service_app"]


def service_app(runtime: Runtime) -> FastAPI:
    """The app for ``runtime``; ValueError (naming the key) when the server settings
    contradict each other (no token on a public address, protect_reads without a token)."""
    server = runtime.config.server
    token = read_secret(server.auth_token_env)
    check_bind(server.host, token)
    models = list(runtime.config.models)
    app = create_app(
        runtime.store, runtime.registry, status=runtime.status, auth_token=token, models=models,
        max_body_bytes=server.max_body_bytes,
        protect_reads=resolve_protect_reads(server.protect_reads, server.host, token),
        protect_metrics=server.protect_metrics and token is not None,
        allowed_origins=server.allowed_origins, secrets=runtime.secrets,
        reports=runtime.reports, versions=_serving(runtime.canary),
    )
    if isinstance(runtime.reactor, RetrainReactor):
        app.include_router(create_trigger_router(
            runtime.store, runtime.reactor, models=models, max_body_bytes=server.max_body_bytes,
            grafana_secret=read_secret(server.grafana_hmac_secret_env),
            grafana_timestamp_header=server.grafana_timestamp_header))
    app.include_router(create_canary_router(runtime.canary, max_body_bytes=server.max_body_bytes))
    app.include_router(create_mlflow_webhook_router(
        runtime.canary, read_secret(runtime.config.mlflow.webhook_secret_env),
        max_body_bytes=server.max_body_bytes))
    return app


def _serving(canary: CanaryReactor | None) -> Callable[[str], ModelVersions] | None:
    """Champion and challenger as the canary last set them (None: the store's view)."""
    if canary is None:
        return None

    def versions(model: str) -> ModelVersions:
        state = canary.state(model) if model in canary.policies else None
        if state is None:
            return ModelVersions()
        return ModelVersions(state.serving_champion, state.serving_challenger)

    return versions
