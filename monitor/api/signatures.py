"""Signed webhooks in: Grafana's HMAC with its timestamp, and a memory of deliveries seen.

A signature alone proves who wrote a body, not when: whoever captures one signed
delivery (a proxy log, a packet capture on plain HTTP) can send it again. So the
timestamp Grafana signs with the body must be within 300 s of now, and a
(timestamp, signature) pair already accepted within that window is refused.
``ReplayMemory`` is generic, for any webhook that signs a timestamp or a delivery
id (MLflow's ``X-MLflow-Delivery-Id`` too).

Every refusal is a 401 whose reason names the header and what was expected, never
the secret; a malformed or non-ASCII header is a refusal, not an error.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from datetime import UTC, datetime

from fastapi import HTTPException
from pydantic import SecretStr

from triggers.alerts import GRAFANA_MAX_SKEW_SECONDS, check_grafana_signature

__all__ = [
    "GRAFANA_SIGNATURE_HEADER",
    "GRAFANA_TIMESTAMP_HEADER",
    "GrafanaVerifier",
    "ReplayMemory",
]

GRAFANA_SIGNATURE_HEADER = "X-Grafana-Alerting-Signature"
GRAFANA_TIMESTAMP_HEADER = "X-Grafana-Alerting-Signature-Timestamp"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ReplayMemory:
    """Keys accepted within the last ``window_seconds``; a key offered again is a replay.

    Holds at most ``max_entries`` (the oldest are forgotten first): only a sender that
    knows the secret adds keys, so the bound is never reached in practice, and memory
    stays bounded whatever happens.
    """

    def __init__(self, window_seconds: float, max_entries: int = 10_000) -> None:
        self.window_seconds = window_seconds
        self.max_entries = max_entries
        self._expiry: OrderedDict[Hashable, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, key: Hashable, now: float) -> bool:
        """True (and remembered) when ``key`` was not accepted within the window."""
        with self._lock:
            # insertion order is expiry order: every key lives the same window
            while self._expiry and next(iter(self._expiry.values())) <= now:
                self._expiry.popitem(last=False)
            if key in self._expiry:
                return False
            self._expiry[key] = now + self.window_seconds
            while len(self._expiry) > self.max_entries:
                self._expiry.popitem(last=False)
            return True

    def __len__(self) -> int:
        return len(self._expiry)


class GrafanaVerifier:
    """Grafana's ``hmacConfig``: the hex HMAC-SHA256 of ``"{timestamp}:{body}"`` (or of the
    body alone when ``timestamp_header`` is None) under ``secret``."""

    def __init__(
        self,
        secret: SecretStr,
        timestamp_header: str | None = GRAFANA_TIMESTAMP_HEADER,
        *,
        clock: Callable[[], datetime] = _utcnow,
        max_skew_seconds: float = GRAFANA_MAX_SKEW_SECONDS,
    ) -> None:
        self.secret = secret
        self.timestamp_header = timestamp_header
        self.clock = clock
        self.max_skew_seconds = max_skew_seconds
        # a timestamp is accepted up to max_skew on either side of now
        self.seen = ReplayMemory(2 * max_skew_seconds)

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Return when the delivery is Grafana's and new; raise a 401 saying why not."""
        signature = headers.get(GRAFANA_SIGNATURE_HEADER, "")
        stamp = None
        if self.timestamp_header is not None:
            stamp = headers.get(self.timestamp_header)
            if stamp is None:
                raise _refused(
                    f"missing {self.timestamp_header}: this receiver verifies Grafana's "
                    f"timestamped HMAC; set timestampHeader: {self.timestamp_header} in the "
                    "contact point's hmacConfig, or server.grafana_timestamp_header: null to "
                    "accept signatures of the body alone"
                )
        now = self.clock()
        problem = check_grafana_signature(
            body, signature, self.secret.get_secret_value(), timestamp=stamp, now=now,
            max_skew_seconds=self.max_skew_seconds,
        )
        if problem is not None:
            raise _refused(
                f"{GRAFANA_SIGNATURE_HEADER}: {problem}; expected the hex HMAC-SHA256 of "
                f"{'the timestamp, a colon and ' if stamp is not None else ''}the body under "
                "the secret named by server.grafana_hmac_secret_env"
            )
        if stamp is None:
            return  # without a timestamp a repeat cannot be told from a replay
        key = (stamp, signature.strip().removeprefix("sha256=").lower())
        if not self.seen.first_time(key, now.timestamp()):
            raise _refused(
                f"{GRAFANA_SIGNATURE_HEADER}: this delivery (timestamp {stamp}) was already "
                "received; expected a new delivery (a replayed request)"
            )


def _refused(reason: str) -> HTTPException:
    return HTTPException(401, reason)
