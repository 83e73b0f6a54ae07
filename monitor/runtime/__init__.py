"""Wiring: ``driftloop serve`` built from the config, started, and stopped cleanly.

May import: every room of ``monitor``.
"""

from monitor.runtime.app import service_app
from monitor.runtime.build import Runtime, build
from monitor.runtime.jobs import Jobs, processed_lag, schedule_service_jobs
from monitor.runtime.logs import MaskingFormatter, mask_secrets_in_logs
from monitor.runtime.serve import run

__all__ = [
    "Jobs",
    "MaskingFormatter",
    "Runtime",
    "build",
    "mask_secrets_in_logs",
    "processed_lag",
    "run",
    "schedule_service_jobs",
    "service_app",
]
