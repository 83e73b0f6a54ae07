"""Joined pairs shipped to their model's owner through the store (issue 15).

With ``kafka.partials`` on, a model with event-time windows has one owner, the replica
Kafka assigns the model's partition of the partials topic (:mod:`monitor.stream.owner`).
Its realized performance is kept there too, so there is one series of performance
windows per model, not one per replica, and one checkpoint of them with one writer:

- a replica that joins pairs of such a model (the join runs wherever the label or the
  prediction was read, through the shared store, :mod:`monitor.stream.label_join`)
  stores them in the ``shipped_pairs`` table, packed (:func:`pack_pairs`), in the
  transaction of the persist that joins them;
- the owner takes every shipped row of its models in each of its persists (deleted as
  they are read), folds the pairs into the model's performance windows in the order
  they were stored, and writes the windows' results and the performance checkpoint in
  that same transaction.

A crash on either side rolls its transaction back whole, so a pair is folded exactly
once, whichever replicas joined it and whichever replica owns the model then; the
ownership epochs every persist checks keep a replica that lost the model from folding
any. The performance checkpoint moves with the ownership: restored by the replica that
takes the model's partials partition, dropped by the one that loses it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from monitor.store.engine import pack_state, unpack_state
from monitor.stream.label_join import JoinedPairs

__all__ = ["SHIPPED_FORMAT", "joined", "pack_pairs", "unpack_pairs"]

SHIPPED_FORMAT = 1
_JSON = b"J"  # prefix of a payload MessagePack could not hold (an integer past 64 bits)
_COLUMNS = ("request_ids", "versions", "predictions", "scores", "class_scores", "labels",
            "prediction_ms", "label_ms")


def pack_pairs(pairs: JoinedPairs) -> bytes:
    """The pairs' columns as MessagePack (JSON when it cannot hold a value)."""
    data: dict[str, Any] = {"format": SHIPPED_FORMAT,
                            **{name: getattr(pairs, name) for name in _COLUMNS}}
    try:
        return pack_state(data)
    except (TypeError, OverflowError):
        return _JSON + orjson.dumps(data)


def unpack_pairs(model: str, payload: bytes) -> JoinedPairs:
    """The pairs :func:`pack_pairs` packed; ValueError for anything else."""
    data = orjson.loads(payload[1:]) if payload[:1] == _JSON else unpack_state(payload)
    if not isinstance(data, dict) or data.get("format") != SHIPPED_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"shipped pairs of {model}: got format {found!r}, expected "
                         f"{SHIPPED_FORMAT}")
    columns = [list(data[name]) for name in _COLUMNS]
    if len({len(column) for column in columns}) != 1:
        raise ValueError(f"shipped pairs of {model}: columns of different lengths")
    return JoinedPairs(model, *columns)


def joined(model: str, parts: Iterable[JoinedPairs]) -> JoinedPairs:
    """One model's pairs of several persists, one after the other."""
    out = JoinedPairs(model)
    for part in parts:
        for name in _COLUMNS:
            getattr(out, name).extend(getattr(part, name))
    return out
