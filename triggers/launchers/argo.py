"""Argo Workflows: submit a WorkflowTemplate.

``POST {host}/api/v1/workflows/{namespace}/submit`` with
``{"resourceKind": "WorkflowTemplate", "resourceName": template,
"submitOptions": {"generateName": "<template>-<model>-", "parameters":
["name=value", ...], "labels": "driftloop/model=...,driftloop/reason=..."}}``.
Parameters take the launcher placeholders; with none configured, ``model``
and ``reason`` are sent. Status reads ``status.phase`` of
``GET {host}/api/v1/workflows/{namespace}/{name}`` (namespace and name
quoted as path segments: the name comes from Argo's answer).
"""

from __future__ import annotations

import re
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

__all__ = ["ArgoLauncher", "kubernetes_name"]

_DEFAULT_PARAMETERS = {"model": "{model}", "reason": "{reason}"}
_STATES: dict[str, RunState] = {
    "Pending": "running",
    "Running": "running",
    "Succeeded": "succeeded",
    "Failed": "failed",
    "Error": "failed",
}


def kubernetes_name(value: str, limit: int = 40) -> str:
    """Lowercase DNS-label-safe text (names and label values)."""
    name = re.sub(r"[^a-z0-9-]+", "-", value.lower()).strip("-")
    return name[:limit].strip("-") or "model"


class ArgoLauncher:
    type: ClassVar[str] = "argo"
    tracks_status: ClassVar[bool] = True

    def __init__(
        self,
        host: str,
        namespace: str = "argo",
        template: str = "retrain",
        parameters: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        *,
        client: httpx.Client | None = None,
        secret: str | None = None,
        max_attempts: int = 5,
        retry_wait_seconds: float = 0.5,
    ) -> None:
        if namespace in ("", ".", ".."):
            raise ValueError(f"argo launcher namespace: got {namespace!r}, expected a namespace")
        self.host = host.rstrip("/")
        self.namespace = namespace
        self.template = template
        self.parameters = dict(parameters or _DEFAULT_PARAMETERS)
        for value in self.parameters.values():
            check_placeholders(value, "argo launcher parameters")
        self.secret = secret
        self._http = HttpTarget(
            f"argo launcher {redact_url(host)}", client or httpx.Client(), timeout, max_attempts,
            retry_wait_seconds, secrets=(secret or "",),
        )

    def launch(self, request: LaunchRequest) -> RunRef:
        values = request.placeholders()  # checked before any of them is used
        url = f"{self._workflows}/submit"
        body = {
            "resourceKind": "WorkflowTemplate",
            "resourceName": self.template,
            "submitOptions": {
                "generateName": f"{kubernetes_name(self.template)}-"
                f"{kubernetes_name(request.model)}-",
                "parameters": [
                    f"{name}={fill_placeholders(value, values)}"
                    for name, value in self.parameters.items()
                ],
                "labels": f"driftloop/model={kubernetes_name(request.model, 63)},"
                f"driftloop/reason={values['reason']}",
            },
        }
        response = self._http.send("POST", url, json=body, headers=bearer(self.secret))
        name = _workflow_name(response.json() if response.content else None)
        if name is None:
            raise LaunchError(
                f"argo launcher: POST {redact_url(url)} answered HTTP {response.status_code} "
                "without metadata.name; expected the submitted Workflow",
                retryable=False,
                status=response.status_code,
            )
        return RunRef(
            "argo", name, request.idempotency_key,
            url=redact_url(self._workflow_url(name)),
        )

    def status(self, ref: RunRef) -> RunStatus:
        url = self._workflow_url(ref.run_id)
        answer = self._http.send("GET", url, headers=bearer(self.secret)).json()
        status = (answer.get("status") or {}) if isinstance(answer, dict) else {}
        phase = str(status.get("phase", ""))
        return RunStatus(_STATES.get(phase, "unknown"), f"argo workflow {ref.run_id} phase {phase}")

    @property
    def _workflows(self) -> str:
        namespace = path_segment(self.namespace, "argo launcher namespace")
        return f"{self.host}/api/v1/workflows/{namespace}"

    def _workflow_url(self, name: str) -> str:
        return f"{self._workflows}/{path_segment(name, 'argo launcher workflow name')}"


def _workflow_name(answer: Any) -> str | None:
    if isinstance(answer, dict):
        name = (answer.get("metadata") or {}).get("name")
        if isinstance(name, str) and name:
            return name
    return None
