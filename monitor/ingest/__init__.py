"""What comes in from Kafka and what bad input turns into.

- :mod:`~monitor.ingest.clients`: kafka-python consumers and producers with driftloop's
  defaults, topic creation, lag, a broker probe for readiness;
- :mod:`~monitor.ingest.events`: the decoded ``Prediction`` and ``Label``;
- :mod:`~monitor.ingest.codecs`: records -> events, or a reason slug;
- :mod:`~monitor.ingest.deadletter`: bad records, unchanged, to the dead-letter topic.

May import: ``monitor.config``, ``monitor.errors``.
"""

from monitor.ingest.clients import (
    CONSUMER_DEFAULTS,
    PRODUCER_DEFAULTS,
    Consumer,
    broker_reachable,
    consumer_lag,
    consumer_settings,
    ensure_topics,
    make_consumer,
    make_producer,
    producer_settings,
)
from monitor.ingest.codecs import (
    KNOWN_FORMATS,
    REASONS,
    DecodeError,
    Decoder,
    Evicted,
    KServeJoiner,
    Record,
)
from monitor.ingest.deadletter import HEADERS, DeadLetterError, DeadLetters, DeadLetterWriter
from monitor.ingest.events import FeatureValue, Label, Prediction

__all__ = [
    "CONSUMER_DEFAULTS",
    "HEADERS",
    "KNOWN_FORMATS",
    "PRODUCER_DEFAULTS",
    "REASONS",
    "Consumer",
    "DeadLetterError",
    "DeadLetterWriter",
    "DeadLetters",
    "DecodeError",
    "Decoder",
    "Evicted",
    "FeatureValue",
    "KServeJoiner",
    "Label",
    "Prediction",
    "Record",
    "broker_reachable",
    "consumer_lag",
    "consumer_settings",
    "ensure_topics",
    "make_consumer",
    "make_producer",
    "producer_settings",
]
