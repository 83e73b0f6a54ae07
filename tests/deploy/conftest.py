"""The traffic generator's replay test produces to the integration tests' broker."""

from __future__ import annotations

from tests.integration.conftest import tansu

__all__ = ["tansu"]
