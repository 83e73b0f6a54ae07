"""Kafka record -> decoded events, or a ``DecodeError`` with a reason slug.

- :mod:`~monitor.ingest.codecs.fields`: ``DecodeError``, the reason slugs, JSON and
  field checks shared by every format;
- :mod:`~monitor.ingest.codecs.decoder`: ``Decoder``, the entry point (native events of
  design 3.1/3.2, and CloudEvents routed to the KServe codec);
- :mod:`~monitor.ingest.codecs.kserve`: KServe inference-logger CloudEvents (V1 and OIP
  bodies);
- :mod:`~monitor.ingest.codecs.join`: ``KServeJoiner``, pairing request and response halves.
"""

from monitor.ingest.codecs.decoder import KNOWN_FORMATS, Decoder
from monitor.ingest.codecs.fields import REASONS, DecodeError, Models, Record
from monitor.ingest.codecs.join import Evicted, KServeJoiner

__all__ = [
    "KNOWN_FORMATS",
    "REASONS",
    "DecodeError",
    "Decoder",
    "Evicted",
    "KServeJoiner",
    "Models",
    "Record",
]
