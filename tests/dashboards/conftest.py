"""The live query test reuses the broker and stream fixtures of the integration tests."""

from __future__ import annotations

from tests.integration.conftest import stream_data, tansu

__all__ = ["stream_data", "tansu"]
