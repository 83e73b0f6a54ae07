"""The HTTP API (FastAPI, design section 7).

- :mod:`~monitor.api.app`: ``create_app``: health, readiness, ``/metrics``, the read
  routes and the API docs;
- :mod:`~monitor.api.guards`: bearer auth, ``protect_reads``, the app-wide guard of
  mutating requests (Origin, Host, ``application/json``), body limits, the bind check;
- :mod:`~monitor.api.errors`: error answers (one sentence, no stack traces) and the
  masking of secret values in every response;
- :mod:`~monitor.api.views`: response models (the OpenAPI document) and views of stored
  rows; :mod:`~monitor.api.bodies`: the request bodies read raw, for the same document;
- :mod:`~monitor.api.signatures`: signed webhooks (Grafana's timestamped HMAC) and the
  memory that refuses a delivery twice;
- :mod:`~monitor.api.retrain`: ``POST /api/v1/alerts`` and the manual retrain route;
- :mod:`~monitor.api.canary`: the canary's state and Argo verdict, operator actions and
  Flagger's gates (answers in :mod:`~monitor.api.canary_views`);
  :mod:`~monitor.api.mlflow_hooks`: ``POST /api/v1/mlflow/webhook``;
- :mod:`~monitor.api.reports`: the Evidently HTML report of a drifted window;
- :mod:`~monitor.api.page`: ``GET /``, the page for people (template in ``templates/``,
  SVG geometry in :mod:`~monitor.api.page_charts`).

May import: ``monitor.react``, ``monitor.store``, ``monitor.metrics``, ``monitor.evaluate``
(report files), ``triggers``, ``detectors``.
"""

from monitor.api.app import Dependency, ModelVersions, ServiceStatus, create_app
from monitor.api.canary import create_canary_router
from monitor.api.guards import (
    check_bind,
    guard_mutation,
    limited_body,
    protect_reads,
    read_body,
    require_model,
    require_token,
    resolve_protect_reads,
)
from monitor.api.mlflow_hooks import create_mlflow_webhook_router
from monitor.api.retrain import (
    GRAFANA_SIGNATURE_HEADER,
    MAX_IDEMPOTENCY_KEY_CHARS,
    ManualRetrainBody,
    create_trigger_router,
)
from monitor.api.signatures import GRAFANA_TIMESTAMP_HEADER, GrafanaVerifier, ReplayMemory

__all__ = [
    "GRAFANA_SIGNATURE_HEADER",
    "GRAFANA_TIMESTAMP_HEADER",
    "MAX_IDEMPOTENCY_KEY_CHARS",
    "Dependency",
    "GrafanaVerifier",
    "ManualRetrainBody",
    "ModelVersions",
    "ReplayMemory",
    "ServiceStatus",
    "check_bind",
    "create_app",
    "create_canary_router",
    "create_mlflow_webhook_router",
    "create_page_router",
    "create_report_router",
    "create_trigger_router",
    "guard_mutation",
    "limited_body",
    "protect_reads",
    "read_body",
    "require_model",
    "require_token",
    "resolve_protect_reads",
]
