"""Generic webhook launcher: POST the request as JSON, signed.

Headers: ``X-Driftloop-Signature: sha256=<hex HMAC-SHA256(secret, body)>``
(when a secret is set) and ``X-Driftloop-Idempotency-Key``. The receiver
cannot report a run's outcome back through this interface, so
``tracks_status`` is False. The URL may carry a token: what is stored or
shown is ``redact_url(url)``.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import ClassVar

import httpx
import orjson

from triggers.launch import LaunchRequest, RunRef, RunStatus
from triggers.launchers.http import HttpTarget
from triggers.redact import redact_url

__all__ = ["WebhookLauncher", "sign_body"]


def sign_body(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookLauncher:
    type: ClassVar[str] = "webhook"
    tracks_status: ClassVar[bool] = False

    def __init__(
        self,
        url: str,
        timeout: float = 10.0,
        *,
        client: httpx.Client | None = None,
        secret: str | None = None,
        max_attempts: int = 5,
        retry_wait_seconds: float = 0.5,
    ) -> None:
        self.url = url
        self.secret = secret
        self._http = HttpTarget(
            f"webhook launcher {redact_url(url)}", client or httpx.Client(), timeout,
            max_attempts, retry_wait_seconds, secrets=(secret or "",),
        )

    def launch(self, request: LaunchRequest) -> RunRef:
        body = orjson.dumps(request.to_dict())
        headers = {
            "Content-Type": "application/json",
            "X-Driftloop-Idempotency-Key": request.idempotency_key,
        }
        if self.secret:
            headers["X-Driftloop-Signature"] = sign_body(body, self.secret)
        response = self._http.send("POST", self.url, content=body, headers=headers)
        run_id = request.idempotency_key
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if isinstance(answer, dict):
            found = answer.get("run_id") or answer.get("id")
            if isinstance(found, str | int) and not isinstance(found, bool):
                run_id = str(found)
        return RunRef("webhook", run_id, request.idempotency_key, url=redact_url(self.url))

    def status(self, ref: RunRef) -> RunStatus:
        return RunStatus(
            "unknown", f"webhook {redact_url(self.url)} does not report run outcomes"
        )
