"""Wiring: ``driftloop serve`` built from the config, started, and stopped cleanly.

May import: every room of ``monitor``.
"""

from monitor.runtime.build import Runtime, build, run

__all__ = ["Runtime", "build", "run"]
