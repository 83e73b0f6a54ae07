"""Decoded events: what :mod:`monitor.ingest.codecs.decoder` makes of a Kafka record.

Both types are slotted dataclasses, not frozen ones: a frozen dataclass
initialises through ``object.__setattr__`` per field, which costs about twice
as much on the per-event path. Treat instances as immutable all the same.

``topic``, ``partition`` and ``offset`` name the Kafka record an event came
from (for a KServe prediction, the record that completed the request/response
pair); they are ``""`` / ``-1`` for events built by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LABEL_FIELDS", "PREDICTION_FIELDS", "FeatureValue", "Label", "Prediction"]

FeatureValue = float | int | str | bool | None

# The native JSON shapes (design 3.1, 3.2) as (field, required, JSON type, meaning):
# what the codec accepts, for docs/reference/events.md.
PREDICTION_FIELDS: tuple[tuple[str, bool, str, str], ...] = (
    ("model", True, "string", "a model configured under models"),
    ("version", True, "string or integer", "the model version that answered"),
    ("request_id", True, "string or integer", "joins the label; unique per model"),
    ("timestamp", True, "RFC 3339 text with a UTC offset, or epoch milliseconds",
     "when the prediction was made (event time)"),
    ("features", True, "object of number, string, boolean or null",
     "the model's inputs, by name"),
    ("prediction", True, "number or string", "the model's output (class or value)"),
    ("score", False, "number", "probability of the positive class (binary tasks)"),
    ("scores", False, "object of class -> number", "class probabilities (multiclass)"),
    ("latency_ms", False, "number", "serving latency"),
)
LABEL_FIELDS: tuple[tuple[str, bool, str, str], ...] = (
    ("model", True, "string", "a model configured under models"),
    ("request_id", True, "string or integer", "the prediction this label belongs to"),
    ("label", True, "number or string", "the ground truth"),
    ("timestamp", False, "RFC 3339 text or epoch milliseconds",
     "when the truth became known; the record's broker time when absent"),
)


@dataclass(slots=True)
class Prediction:
    """One scored row (design 3.1); a batched KServe request yields one per instance."""

    model: str
    version: str
    request_id: str
    timestamp_ms: int
    # JSON integers stay ints: the window code converts columns to float64 anyway
    features: dict[str, FeatureValue]
    prediction: float | int | str
    score: float | None = None
    scores: dict[str, float] | None = None
    latency_ms: float | None = None
    topic: str = ""
    partition: int = -1
    offset: int = -1


@dataclass(slots=True)
class Label:
    """Ground truth for one request (design 3.2); joins on (model, request_id)."""

    model: str
    request_id: str
    label: float | int | str
    timestamp_ms: int
    topic: str = ""
    partition: int = -1
    offset: int = -1
