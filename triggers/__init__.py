"""Acting on what the detectors found: when to retrain, and how to start it.

- ``triggers.policy``: pure ``decide(state, evidence, now, policy) -> Decision``.
- ``triggers.state``: ``TriggerState`` and the table of allowed transitions.
- ``triggers.evidence``: window results, alerts, manual requests, run outcomes.
- ``triggers.launchers``: command, webhook, KFP, Argo, GitHub, Airflow launchers.
- ``triggers.alerts``: Alertmanager v4 / Grafana v1 webhook payloads, Grafana HMAC.
- ``triggers.text``: untrusted text escaped for log lines and sentences.
- ``triggers.redact``: URLs and secret values kept out of what is stored and shown.

This package may import ``detectors`` but never ``monitor``.
"""
