"""Kubeflow Pipelines v2: ``POST {host}/apis/v2beta1/runs``.

Body: ``display_name``, ``description`` (the decision sentence and the
idempotency key; KFP has no idempotency of its own), ``experiment_id`` when
set, ``pipeline_version_reference`` and ``runtime_config.parameters``. String
parameter values take the launcher placeholders; with no parameters
configured, ``model`` and ``reason`` are sent. Status reads the run's
``state`` from ``GET {host}/apis/v2beta1/runs/{run_id}`` (the run id quoted
as one path segment: it comes from the target's answer).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from triggers.launch import (
    LaunchError,
    LaunchRequest,
    RunRef,
    RunState,
    RunStatus,
    check_placeholders,
    fill_placeholders,
)
from triggers.launchers.http import HttpTarget, bearer, path_segment
from triggers.redact import redact_url

__all__ = ["DEFAULT_PARAMETERS", "KfpLauncher"]

DEFAULT_PARAMETERS: dict[str, Any] = {"model": "{model}", "reason": "{reason}"}

_STATES: dict[str, RunState] = {
    "PENDING": "running",
    "RUNNING": "running",
    "PAUSED": "running",
    "CANCELING": "running",
    "SUCCEEDED": "succeeded",
    "SKIPPED": "succeeded",
    "FAILED": "failed",
    "CANCELED": "failed",
}


def fill_parameters(parameters: Mapping[str, Any], values: dict[str, str]) -> dict[str, Any]:
    return {
        name: fill_placeholders(value, values) if isinstance(value, str) else value
        for name, value in parameters.items()
    }


class KfpLauncher:
    type: ClassVar[str] = "kfp"
    tracks_status: ClassVar[bool] = True

    def __init__(
        self,
        host: str,
        pipeline_id: str,
        pipeline_version_id: str,
        experiment_id: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        timeout: float = 10.0,
        *,
        client: httpx.Client | None = None,
        secret: str | None = None,
        max_attempts: int = 5,
        retry_wait_seconds: float = 0.5,
    ) -> None:
        self.base = f"{host.rstrip('/')}/apis/v2beta1/runs"
        self.pipeline_id = pipeline_id
        self.pipeline_version_id = pipeline_version_id
        self.experiment_id = experiment_id
        self.parameters = dict(parameters or DEFAULT_PARAMETERS)
        for value in self.parameters.values():
            if isinstance(value, str):
                check_placeholders(value, "kfp launcher parameters")
        self.secret = secret
        self._http = HttpTarget(
            f"kfp launcher {redact_url(host)}", client or httpx.Client(), timeout, max_attempts,
            retry_wait_seconds, secrets=(secret or "",),
        )

    def launch(self, request: LaunchRequest) -> RunRef:
        values = request.placeholders()  # checked before any of them is used
        body: dict[str, Any] = {
            "display_name": f"driftloop {values['model']} {values['reason']}",
            "description": f"{request.sentence} (idempotency key {request.idempotency_key})",
            "pipeline_version_reference": {
                "pipeline_id": self.pipeline_id,
                "pipeline_version_id": self.pipeline_version_id,
            },
            "runtime_config": {
                "parameters": fill_parameters(self.parameters, values)
            },
        }
        if self.experiment_id:
            body["experiment_id"] = self.experiment_id
        response = self._http.send("POST", self.base, json=body, headers=bearer(self.secret))
        run_id = _field(response, "run_id", redact_url(self.base))
        return RunRef("kfp", run_id, request.idempotency_key, url=redact_url(self._run_url(run_id)))

    def status(self, ref: RunRef) -> RunStatus:
        url = self._run_url(ref.run_id)
        response = self._http.send("GET", url, headers=bearer(self.secret))
        answer = response.json()
        state = str(answer.get("state", "")) if isinstance(answer, dict) else ""
        return RunStatus(_STATES.get(state, "unknown"), f"kfp run {ref.run_id} state {state}")

    def _run_url(self, run_id: str) -> str:
        return f"{self.base}/{path_segment(run_id, 'kfp launcher run_id')}"


def _field(response: httpx.Response, name: str, url: str) -> str:
    try:
        value = response.json()[name]
    except (ValueError, KeyError, TypeError):
        raise LaunchError(
            f"kfp launcher: POST {url} answered HTTP {response.status_code} without {name!r}; "
            f"expected a run object",
            retryable=False,
            status=response.status_code,
        ) from None
    return str(value)
