"""Log lines without secrets: every handler's output is masked of the service's secret values.

A launcher error, a store error or a traceback may quote a configured URL with its
password or query token, or a value the service holds in its environment. Masking at
the formatter covers every logger, driftloop's, uvicorn's and the libraries', and the
traceback text too, whatever code wrote the line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from triggers.redact import mask

__all__ = ["MaskingFormatter", "mask_secrets_in_logs"]


class MaskingFormatter(logging.Formatter):
    """Formats with ``inner``, then replaces each secret by ``[redacted]``."""

    def __init__(self, inner: logging.Formatter, secrets: Sequence[str]) -> None:
        super().__init__()
        self.inner = inner
        self.secrets = tuple(secrets)

    def format(self, record: logging.LogRecord) -> str:
        return mask(self.inner.format(record), self.secrets)


def _all_handlers() -> list[logging.Handler]:
    loggers = [logging.getLogger(), *(
        found for found in logging.root.manager.loggerDict.values()
        if isinstance(found, logging.Logger))]
    return list(dict.fromkeys(h for found in loggers for h in found.handlers))


def mask_secrets_in_logs(secrets: Sequence[str],
                         handlers: Iterable[logging.Handler] | None = None) -> None:
    """Wrap the formatter of ``handlers`` (default: every handler configured now) so no
    line they write carries one of ``secrets``. Call it after logging is configured."""
    if not secrets:
        return
    for handler in _all_handlers() if handlers is None else handlers:
        inner = handler.formatter or logging.Formatter()
        if isinstance(inner, MaskingFormatter):
            inner = inner.inner
        handler.setFormatter(MaskingFormatter(inner, secrets))
