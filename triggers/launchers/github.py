"""GitHub Actions through ``repository_dispatch``.

``POST {api_url}/repos/{owner}/{repo}/dispatches`` with
``{"event_type": ..., "client_payload": {...}}`` (GitHub allows at most 10
top-level keys in client_payload; we send 7), answered by 204. GitHub returns
no run id, so ``tracks_status`` is False. 429 is retried like 5xx.
"""

from __future__ import annotations

from typing import ClassVar

import httpx

from triggers.launch import LaunchRequest, RunRef, RunStatus
from triggers.launchers.http import HttpTarget, bearer

__all__ = ["GITHUB_API_VERSION", "MAX_PAYLOAD_KEYS", "GithubLauncher"]

GITHUB_API_VERSION = "2022-11-28"
MAX_PAYLOAD_KEYS = 10


class GithubLauncher:
    type: ClassVar[str] = "github"
    tracks_status: ClassVar[bool] = False

    def __init__(
        self,
        repository: str,
        event_type: str = "retrain",
        api_url: str = "https://api.github.com",
        timeout: float = 10.0,
        *,
        client: httpx.Client | None = None,
        secret: str | None = None,
        max_attempts: int = 5,
        retry_wait_seconds: float = 0.5,
    ) -> None:
        if repository.count("/") != 1:
            raise ValueError(f"github launcher repository: got {repository!r}, expected owner/name")
        self.repository = repository
        self.event_type = event_type
        self.url = f"{api_url.rstrip('/')}/repos/{repository}/dispatches"
        self.secret = secret
        self._http = HttpTarget(
            f"github launcher {repository}", client or httpx.Client(), timeout, max_attempts,
            retry_wait_seconds, frozenset({429}), secrets=(secret or "",),
        )

    def launch(self, request: LaunchRequest) -> RunRef:
        payload = request.to_dict()
        assert len(payload) <= MAX_PAYLOAD_KEYS, "GitHub rejects client_payload over 10 keys"
        headers = {
            **bearer(self.secret),
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": GITHUB_API_VERSION,
        }
        self._http.send(
            "POST",
            self.url,
            json={"event_type": self.event_type, "client_payload": payload},
            headers=headers,
            expected="HTTP 204",
        )
        return RunRef(
            "github", request.idempotency_key, request.idempotency_key,
            url=f"https://github.com/{self.repository}/actions",
        )

    def status(self, ref: RunRef) -> RunStatus:
        return RunStatus("unknown", "repository_dispatch returns no run id to follow")
