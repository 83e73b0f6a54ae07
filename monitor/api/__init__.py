"""The HTTP API (FastAPI, design section 7).

- :mod:`~monitor.api.app`: ``create_app``: health, readiness, ``/metrics`` and the read
  routes;
- :mod:`~monitor.api.guards`: bearer auth, body limits, the bind check, error handling
  (one sentence per error, no stack traces);
- :mod:`~monitor.api.views`: response models (the OpenAPI document) and views of stored
  rows;
- :mod:`~monitor.api.retrain`: ``POST /api/v1/alerts`` and the manual retrain route;
- :mod:`~monitor.api.reports`: the Evidently HTML report of a drifted window;
- :mod:`~monitor.api.page`: ``GET /``, the page for people (template in ``templates/``,
  SVG geometry in :mod:`~monitor.api.page_charts`).

May import: ``monitor.react``, ``monitor.store``, ``monitor.metrics``, ``monitor.evaluate``
(report files), ``triggers``, ``detectors``.
"""

from monitor.api.app import Dependency, ModelVersions, ServiceStatus, create_app
from monitor.api.guards import check_bind, limited_body, read_body, require_model, require_token
from monitor.api.page import create_page_router
from monitor.api.reports import create_report_router
from monitor.api.retrain import GRAFANA_SIGNATURE_HEADER, ManualRetrainBody, create_trigger_router

__all__ = [
    "GRAFANA_SIGNATURE_HEADER",
    "Dependency",
    "ManualRetrainBody",
    "ModelVersions",
    "ServiceStatus",
    "check_bind",
    "create_app",
    "create_page_router",
    "create_report_router",
    "create_trigger_router",
    "limited_body",
    "read_body",
    "require_model",
    "require_token",
]
