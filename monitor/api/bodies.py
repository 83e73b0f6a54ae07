"""Request bodies the trigger routes read raw, described for the OpenAPI document.

Those routes parse the bytes themselves (an HMAC covers the raw body, and a bad
body must answer with driftloop's reasons), so FastAPI cannot infer the schema;
``openapi_extra=json_body(...)`` puts it in the document, where people and
schemathesis find it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ALERT_PAYLOAD_SCHEMA", "json_body"]

_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
ALERT_PAYLOAD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Alertmanager (version 4) or Grafana (version 1) webhook payload; "
                   "other keys are ignored",
    "required": ["version", "status", "alerts"],
    "properties": {
        "version": {"type": "string", "enum": ["4", "1"]},
        "status": {"type": "string", "enum": ["firing", "resolved"]},
        "receiver": {"type": "string"},
        "groupKey": {"type": "string"},
        "truncatedAlerts": {"type": "integer"},
        "externalURL": {"type": "string"},
        "alerts": {"type": "array", "items": {
            "type": "object",
            "required": ["status", "labels", "startsAt"],
            "properties": {
                "status": {"type": "string", "enum": ["firing", "resolved"]},
                "labels": _LABELS,
                "annotations": _LABELS,
                "startsAt": {"type": "string", "format": "date-time"},
                "endsAt": {"type": "string", "format": "date-time"},
                "generatorURL": {"type": "string"},
                "fingerprint": {"type": "string"},
            },
        }},
    },
}


def json_body(schema: dict[str, Any], *, required: bool) -> dict[str, Any]:
    """``openapi_extra`` of a route that parses its raw body itself."""
    return {"requestBody": {"required": required,
                            "content": {"application/json": {"schema": schema}}}}
