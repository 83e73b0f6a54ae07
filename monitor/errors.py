"""User-facing errors of the command line and the batch tools.

Exception hierarchy::

    ValueError
     +-- InputError        a file, column, value or baseline a user gave cannot be used
          +-- BaselineError  a baseline document is missing, malformed or of another schema

The CLI prints the message of any of these as one line and exits with code 2;
``monitor.config.ConfigError`` is treated the same way. Messages name the
subject (a file, a column), what was seen and what was expected.
"""

from __future__ import annotations

__all__ = ["BaselineError", "InputError"]


class InputError(ValueError):
    """A user's input cannot be used; the message is one line for people."""


class BaselineError(InputError):
    """A baseline document cannot be read back."""
