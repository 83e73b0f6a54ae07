"""Airflow 3: trigger a DAG run whose ``dag_run_id`` is the idempotency key.

``POST {host}/api/v2/dags/{dag_id}/dagRuns`` with ``{"dag_run_id": key,
"logical_date": null, "conf": {...}}`` (``logical_date`` must be present).
A 409 means a run with that id exists: it was launched before (a replay after
a restart), so it is the same run and counts as success. 429 is retried.
Status reads ``state`` of ``GET .../dagRuns/{dag_run_id}``.
"""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import quote

import httpx

from triggers.launch import LaunchRequest, RunRef, RunState, RunStatus
from triggers.launchers.http import HttpTarget, bearer, path_segment
from triggers.redact import redact_url

__all__ = ["AirflowLauncher"]

_STATES: dict[str, RunState] = {
    "queued": "running",
    "running": "running",
    "success": "succeeded",
    "failed": "failed",
}


class AirflowLauncher:
    type: ClassVar[str] = "airflow"
    tracks_status: ClassVar[bool] = True

    def __init__(
        self,
        host: str,
        dag_id: str,
        timeout: float = 10.0,
        *,
        client: httpx.Client | None = None,
        secret: str | None = None,
        max_attempts: int = 5,
        retry_wait_seconds: float = 0.5,
    ) -> None:
        if dag_id in ("", ".", ".."):
            raise ValueError(f"airflow launcher dag_id: got {dag_id!r}, expected a DAG id")
        self.dag_id = dag_id
        self.base = f"{host.rstrip('/')}/api/v2/dags/{quote(dag_id, safe='')}/dagRuns"
        self.secret = secret
        self._http = HttpTarget(
            f"airflow launcher {redact_url(host)} dag {dag_id}", client or httpx.Client(),
            timeout, max_attempts, retry_wait_seconds, frozenset({429}), secrets=(secret or "",),
        )

    def launch(self, request: LaunchRequest) -> RunRef:
        body = {
            "dag_run_id": request.idempotency_key,
            "logical_date": None,
            "conf": request.to_dict(),
        }
        self._http.send(
            "POST", self.base, json=body, headers=bearer(self.secret), accept=(409,),
            expected="HTTP 200 (or 409: this dag_run_id exists already)",
        )
        return RunRef(
            "airflow", request.idempotency_key, request.idempotency_key,
            url=redact_url(self._run_url(request.idempotency_key)),
        )

    def status(self, ref: RunRef) -> RunStatus:
        url = self._run_url(ref.run_id)
        answer = self._http.send("GET", url, headers=bearer(self.secret)).json()
        state = str(answer.get("state", "")) if isinstance(answer, dict) else ""
        detail = f"airflow dag run {ref.run_id} state {state}"
        return RunStatus(_STATES.get(state, "unknown"), detail)

    def _run_url(self, dag_run_id: str) -> str:
        return f"{self.base}/{path_segment(dag_run_id, 'airflow launcher dag_run_id')}"
