"""The seeded examples in the detectors' docstrings run as doctests."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["binned", "calibration", "canary", "canary_stats", "estimation", "isotonic",
           "materiality", "numeric", "performance", "profile", "quality", "summary",
           "twosample"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(f"detectors.{name}")
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
