"""The base of every config section: frozen, and unknown keys are errors naming the key."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Section"]


class Section(BaseModel):
    # attribute docstrings are the keys' meanings in docs/reference/configuration.md
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


