"""Tables of the state store (SQLAlchemy Core), the current schema.

Times are integers: epoch milliseconds in columns named ``*_ms``. JSON columns
hold what the service hands over (window results, evidence, payloads); SQL NULL
stands for "absent", never JSON ``null``.

These definitions describe the newest schema and are what queries use. The
tables are created by the versioned steps in ``monitor.store.migrations``; a change
here needs a new step there (see that module's docstring).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "SCHEMA_VERSION_TABLE",
    "alerts",
    "canary_state",
    "checkpoints",
    "consumer_offsets",
    "decisions",
    "metadata",
    "partition_owners",
    "pending_labels",
    "pending_predictions",
    "retrain_runs",
    "schema_version",
    "shipped_arms",
    "shipped_pairs",
    "trigger_state",
    "windows",
]

SCHEMA_VERSION_TABLE = "driftloop_schema_version"

metadata = MetaData()


def _json() -> JSON:
    return JSON(none_as_null=True)


schema_version = Table(
    SCHEMA_VERSION_TABLE,
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", Text, nullable=False),
    Column("applied_at_ms", BigInteger, nullable=False),
)

# One row per closed window; (model, version, window_key) is the window's identity,
# so a replay after a crash overwrites instead of adding a row. ``id`` keeps the
# order of first insertion, which is the "newest first" order of the API.
windows = Table(
    "windows",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("model", String(200), nullable=False),
    Column("version", String(200), nullable=False),
    Column("window_key", String(200), nullable=False),
    Column("window_index", BigInteger, nullable=False),
    Column("start_ms", BigInteger),
    Column("end_ms", BigInteger),
    Column("result", _json(), nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
    UniqueConstraint("model", "version", "window_key", name="uq_windows_identity"),
    Index("ix_windows_model_id", "model", "id"),
)

# The open (not yet closed) window of each stream, and the offsets it covers.
checkpoints = Table(
    "checkpoints",
    metadata,
    Column("model", String(200), primary_key=True),
    Column("version", String(200), primary_key=True),
    Column("kind", String(100), primary_key=True),
    Column("encoding", String(10), nullable=False),  # "msgpack" | "json" | "bytes"
    Column("state", LargeBinary, nullable=False),
    Column("offsets", _json(), nullable=False),  # [[topic, partition, next_offset], ...]
    Column("updated_at_ms", BigInteger, nullable=False),
)

consumer_offsets = Table(
    "consumer_offsets",
    metadata,
    Column("group_id", String(200), primary_key=True),
    Column("topic", String(250), primary_key=True),
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("next_offset", BigInteger, nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
)

pending_predictions = Table(
    "pending_predictions",
    metadata,
    Column("model", String(200), primary_key=True),
    Column("request_id", String(200), primary_key=True),
    Column("version", String(200), nullable=False),
    Column("prediction", _json()),
    Column("score", Double),
    Column("scores", _json()),
    Column("timestamp_ms", BigInteger, nullable=False),
    Column("expires_at_ms", BigInteger, nullable=False),
    Index("ix_pending_predictions_expires", "expires_at_ms"),
)

pending_labels = Table(
    "pending_labels",
    metadata,
    Column("model", String(200), primary_key=True),
    Column("request_id", String(200), primary_key=True),
    Column("label", _json()),
    Column("timestamp_ms", BigInteger, nullable=False),
    Column("expires_at_ms", BigInteger, nullable=False),
    Index("ix_pending_labels_expires", "expires_at_ms"),
)

trigger_state = Table(
    "trigger_state",
    metadata,
    Column("model", String(200), primary_key=True),
    Column("consecutive", _json(), nullable=False),  # reason -> windows in a row
    Column("last_trigger_ms", BigInteger),
    Column("cooldown_until_ms", BigInteger),
    Column("running_run_id", String(200)),
    Column("extra", _json(), nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
)

retrain_runs = Table(
    "retrain_runs",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("model", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("launcher", String(50), nullable=False),
    Column("status", String(50), nullable=False),
    Column("external_id", Text),
    Column("started_at_ms", BigInteger, nullable=False),
    Column("finished_at_ms", BigInteger),
    Column("detail", _json(), nullable=False),
    Index("ix_retrain_runs_model_started", "model", "started_at_ms"),
)

alerts = Table(
    "alerts",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("fingerprint", String(200), nullable=False),
    Column("starts_at", String(64), nullable=False),
    Column("model", String(200)),
    Column("status", String(20), nullable=False),
    Column("payload", _json(), nullable=False),
    Column("received_at_ms", BigInteger, nullable=False),
    UniqueConstraint("fingerprint", "starts_at", name="uq_alerts_fingerprint_starts_at"),
)

canary_state = Table(
    "canary_state",
    metadata,
    Column("model", String(200), primary_key=True),
    Column("phase", String(50), nullable=False),
    Column("champion", String(200)),
    Column("challenger", String(200)),
    Column("passed", Integer, nullable=False),
    Column("failed_checks", Integer, nullable=False),
    Column("evidence", _json(), nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
    # since migration step 2: the canary state machine's whole state
    # (triggers.canary_state.CanaryState.to_dict()); the columns above are its view
    Column("state", _json()),
)

decisions = Table(
    "decisions",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("model", String(200), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("kind", String(50), nullable=False),
    Column("sentence", Text, nullable=False),
    Index("ix_decisions_model_id", "model", "id"),
)

# Who owns each consumed partition, with a store-side fencing epoch: a member that
# takes a partition bumps its epoch, and a write for a partition whose epoch moved on
# is refused, so a member that lost a partition cannot overwrite the new owner's
# checkpoint. (Kafka's group generation restarts with the group, e.g. after a broker
# without durable storage restarts; this epoch never goes back.)
partition_owners = Table(
    "partition_owners",
    metadata,
    Column("group_id", String(200), primary_key=True),
    Column("topic", String(250), primary_key=True),
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("epoch", BigInteger, nullable=False),
    Column("owner", String(200), nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
)

# Joined (prediction, label) pairs on their way to the model's owner (issue 15,
# ``kafka.partials``): the replica that joins pairs of a model whose realized
# performance its owner keeps stores them here, one row per model and persist, in the
# transaction that joins them; the owner takes the rows (deleting them) in its own
# persist, with the performance windows they fill. One transaction on each side, so a
# pair is folded exactly once whichever replicas joined it.
shipped_pairs = Table(
    "shipped_pairs",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("model", String(200), nullable=False),
    Column("payload", LargeBinary, nullable=False),  # packed columns (monitor.stream.shipping)
    Column("rows", Integer, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Index("ix_shipped_pairs_model_id", "model", "id"),
)

# A replica's canary arm statistics on their way to the model's owner (issue 15,
# ``kafka.partials``): a replica that does not own a canary model ships what its
# partitions' traffic added to the running interval (monitor.stream.arms.pack_arms); the
# owner, which alone judges the canary, takes them with its own at the interval's end.
# Arms are interval statistics, not part of the exactly-once persist.
shipped_arms = Table(
    "shipped_arms",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("model", String(200), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Index("ix_shipped_arms_model_id", "model", "id"),
)
