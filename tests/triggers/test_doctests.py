"""The examples in the triggers' docstrings run as doctests."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["triggers.text", "triggers.redact", "triggers.launchers.command"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
