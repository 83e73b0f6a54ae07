"""The service-wide sections of ``driftloop.yaml`` and the root :class:`Config`.

``kafka`` (clients, topics, formats), ``state`` (the state store), ``mlflow``
(the registry), ``server`` (the HTTP API), ``reports`` (HTML drift reports of
drifted windows); ``models`` maps a model name to its
:class:`monitor.config.model.ModelConfig`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from monitor.config.base import Section
from monitor.config.model import ModelConfig
from monitor.config.values import (
    Duration,
    EventTime,
    NonNegativeInt,
    Origin,
    Port,
    PositiveDuration,
    PositiveInt,
)

__all__ = [
    "Config",
    "JobsConfig",
    "KafkaConfig",
    "MlflowConfig",
    "ReportsConfig",
    "ServerConfig",
    "StateConfig",
]


class KafkaConfig(Section):
    """``kafka``: the Kafka clients, topics and accepted formats."""

    bootstrap_servers: list[str] = Field(default_factory=lambda: ["127.0.0.1:9092"], min_length=1)
    """Kafka brokers to bootstrap from (host:port)."""
    group_id: str = "driftloop"
    """Consumer group shared by every replica of the service."""
    predictions_topic: str = "predictions"
    """Topic of prediction events (design 3.1, 3.3)."""
    labels_topic: str = "labels"
    """Topic of label events (design 3.2)."""
    dead_letter_topic: str = "driftloop-dlq"
    """Where records that cannot be decoded or validated go, unchanged, with the reason in the
    driftloop_error header."""
    formats: list[Literal["native", "kserve", "oip"]] = Field(
        default_factory=lambda: ["native"], min_length=1  # type: ignore[arg-type]
    )
    """Prediction formats accepted: native (design 3.1), kserve / oip (KServe inference-logger
    CloudEvents with V1 or Open Inference Protocol bodies)."""
    consumer: dict[str, Any] = Field(default_factory=dict)
    """Settings passed to kafka-python's KafkaConsumer (e.g. security_protocol, sasl_mechanism);
    unknown names are an error at start."""
    producer: dict[str, Any] = Field(default_factory=dict)
    """Settings passed to kafka-python's KafkaProducer (dead letters); unknown names are an
    error at start."""
    max_record_bytes: PositiveInt = 1_048_576
    """Records longer than this are dead letters (oversized)."""
    poll_max_records: PositiveInt = 20_000
    """Records per poll at most; one 4 MiB fetch holds about 6,700 events of 800 bytes, and a
    smaller poll leaves the next fetch waiting."""
    commit_interval_seconds: Duration = 5.0
    """How often open windows are checkpointed and offsets stored when no window closes."""
    snapshot_interval_seconds: Duration = 10.0
    """How often the full state of a stream (its open windows) is written; persists in between
    store only what cannot be re-read from Kafka, and a restart re-reads the records since each
    stream's last snapshot (at most this interval times the event rate). 0: every persist.
    Not used with the kserve or oip formats (their streams are written at every persist)."""
    endpoint_versions: dict[str, str] = Field(default_factory=dict)
    """KServe ce_endpoint (default, canary) -> model version. Without an entry the version is
    the OIP body's model_version, else the endpoint's name."""
    max_future_skew: Duration = 3600.0
    """Event times more than this ahead of the record's broker time are dead letters
    (bad_timestamp): one far-future event would close every open window."""
    min_event_time: EventTime = "2000-01-01T00:00:00Z"
    """Event times before this (RFC 3339) are dead letters (bad_timestamp)."""
    max_rows_per_record: PositiveInt = 10_000
    """Rows one record may carry (a KServe batch); more is a dead letter (too_many_rows)."""
    label_alignment_seconds: Duration = 0.1
    """When both topics hold a backlog (after downtime or a group reset), label records are
    read no further than this ahead of the slowest predictions partition (record
    timestamps), so labels and their predictions pair in memory instead of waiting in the
    state store; 0 turns it off. Labels arriving after their predictions are never held."""
    max_persist_attempts: PositiveInt = 3
    """A record whose results fail to store this many times, each after reloading the stored
    state, is dead-lettered as poison and the stream moves past it."""
    partials: bool = False
    """Scale-out (issue 15): each replica turns the event-time windows (window.duration) its
    partitions close into partial summaries published to partials_topic, keyed by model,
    and the replica assigned the model's partition of that topic merges them into one
    window stream per model, keeps the model's realized performance (the pairs joined on
    any replica are shipped to it through the store) and runs its canary (on every
    replica's arms). Off: windows per (model, version, partition), as one replica has
    them. Count windows (window.rows) stay per partition either way."""
    partials_topic: str | None = None
    """Internal topic of partial window summaries; null: the group_id followed by -partials.
    Created at start when missing (partials_partitions), without log compaction."""
    partials_partitions: PositiveInt = 6
    """Partitions of partials_topic when the service creates it: the number of replicas that
    can own models at once."""
    partials_heartbeat_seconds: Duration = 0.5
    """How often at most a replica reports a partition's watermark to a model's owner when it
    moved (at once when it passes a window boundary); every 5 s when it did not."""

    kserve_split: bool = False
    """Scale-out of KServe pairing (issue 15): a replica does not pair the KServe halves it
    reads from predictions_topic; it forwards each, unchanged, to kserve_topic keyed by its
    CloudEvents id, so both halves of a call meet on one partition of that topic, and the
    replica assigned that partition pairs them. Needs the kserve or oip format and a producer
    that keeps order through retries (idempotence, the default). With partials, the windows
    of the pairs are published as partials too, and a model's owner waits for the
    watermarks of the partitions of both topics. Off: a replica pairs the halves it reads,
    so halves of one call on partitions owned by different replicas never meet (dead
    letters, unpaired)."""
    kserve_topic: str | None = None
    """Internal topic of forwarded KServe halves; null: the group_id followed by -kserve.
    Created at start when missing (kserve_partitions), without log compaction."""
    kserve_partitions: PositiveInt = 6
    """Partitions of kserve_topic when the service creates it: the number of replicas that
    can pair KServe halves at once."""

    @property
    def partials_topic_name(self) -> str:
        return self.partials_topic or f"{self.group_id}-partials"

    @property
    def kserve_topic_name(self) -> str:
        return self.kserve_topic or f"{self.group_id}-kserve"

    @model_validator(mode="after")
    def _split_needs_cloudevents(self) -> KafkaConfig:
        if self.kserve_split and not {"kserve", "oip"} & set(self.formats):
            raise ValueError(
                "expected kserve or oip among the formats with kserve_split (it forwards "
                "KServe halves)")
        if self.kserve_split and self.producer.get("enable_idempotence") is False \
                and self.producer.get("max_in_flight_requests_per_connection", 5) != 1:
            raise ValueError(
                "expected producer.enable_idempotence true or "
                "producer.max_in_flight_requests_per_connection 1 with kserve_split (the "
                "forwards of one partition must keep their order through retries)")
        return self


class StateConfig(Section):
    """``state``: where windows, checkpoints, offsets, joins and decisions are kept."""

    url: str = "sqlite:///driftloop.db"
    """SQLAlchemy URL of the state store: sqlite:///PATH or postgresql+psycopg://USER@HOST/DB."""


class MlflowConfig(Section):
    """``mlflow``: the MLflow tracking server and model registry."""

    tracking_uri: str | None = None
    """MLflow tracking and registry server; null turns the registry features off."""
    poll_interval: Duration = 60.0
    """How often registry aliases are polled (baselines that follow an alias, new versions)."""
    webhook_secret_env: str | None = None
    """Environment variable holding the HMAC secret of MLflow registry webhooks
    (POST /api/v1/mlflow/webhook); unset: every delivery is refused (401)."""
    request_timeout: PositiveInt | None = 10
    """Seconds one call of the service to MLflow may take (MLFLOW_HTTP_REQUEST_TIMEOUT of the
    service's MLflow client); null: MLflow's own default (120 s)."""
    request_max_retries: NonNegativeInt | None = 1
    """Retries of a failed call to MLflow (MLFLOW_HTTP_REQUEST_MAX_RETRIES of the service's
    MLflow client); low, so a registry outage leaves a canary decision pending within seconds
    instead of blocking its job for minutes; null: MLflow's own default (7)."""


class ServerConfig(Section):
    """``server``: the HTTP API (health, metrics, reads, alerts, retrain, canary)."""

    host: str = "127.0.0.1"
    """Address the HTTP API binds to; a non-loopback address needs a token."""
    port: Port = 8080
    """Port of the HTTP API."""
    auth_token_env: str | None = "DRIFTLOOP_TOKEN"
    """Environment variable holding the bearer token of mutating routes (and of reads under
    protect_reads); null or unset leaves them open (loopback only)."""
    grafana_hmac_secret_env: str | None = None
    """Environment variable holding the HMAC secret of Grafana's alert webhook."""
    grafana_timestamp_header: str | None = "X-Grafana-Alerting-Signature-Timestamp"
    """Header carrying the unix timestamp Grafana signs with the body (the contact point's
    hmacConfig.timestampHeader); deliveries without it, more than 300 s from now, or seen before
    are refused. null: Grafana signs the body alone, and a captured delivery can be replayed."""
    max_body_bytes: PositiveInt = 1_048_576
    """Request bodies longer than this are refused (413)."""
    allowed_origins: list[Origin] = Field(default_factory=list)
    """Origins (scheme://host[:port]) of web pages allowed to call mutating routes besides the
    service's own; a request with any other Origin header is refused (403)."""
    protect_reads: bool | None = None
    """Read routes, /readyz details and the API docs (/docs, /redoc, /openapi.json) need the
    token too; null: on when a token is configured and host is not a loopback address."""
    protect_metrics: bool = False
    """/metrics needs the token too (Prometheus sends it with authorization in the scrape
    config); /healthz is always open."""


class ReportsConfig(Section):
    """``reports``: an Evidently HTML report per drifted window, served by the HTTP API at
    /api/v1/models/{model}/reports/latest and /reports/{window_key}."""

    enabled: bool = True
    """Write a report for every window with drift (dataset drift or any drifted feature);
    needs the baseline's reference sample (baseline build --sample-rows)."""
    dir: str | None = None
    """Directory of the reports; null: a folder named after a SQLite state file beside it
    (driftloop.db -> driftloop-reports/), else a new temporary directory per start (set it
    with PostgreSQL, or the reports go with the process)."""
    keep: PositiveInt = 20
    """Reports kept per model; older ones are deleted (newest by window end time)."""
    max_rows: PositiveInt = 5000
    """Rows of an open window kept for its report; beyond, a uniform sample of this many
    (memory: about 1 KB per row per open window)."""
    queue_size: PositiveInt = 8
    """Closed drifted windows waiting for the report writer; when full, a window gets no
    report (counted in driftloop_drift_reports_total{outcome="queue_full"})."""


class JobsConfig(Section):
    """Intervals of the service's periodic jobs (``monitor.runtime.jobs``)."""

    retrain_interval: PositiveDuration = 5.0
    """How often launches that failed are retried and running retrains polled."""
    label_expiry_interval: PositiveDuration = 60.0
    """How often label-join rows past their TTL are dropped and the pending gauges refreshed."""
    metrics_interval: PositiveDuration = 5.0
    """How often consumer lag is refreshed."""
    broker_check_interval: PositiveDuration = 5.0
    """How often the brokers are probed for /readyz."""
    run_pruning_interval: PositiveDuration = 3600.0
    """How often finished retrain runs beyond retrain.keep_runs are deleted."""
    canary_interval: PositiveDuration = 5.0
    """How often the canary job runs: applies pending registry moves and hooks, looks for new
    challengers, and judges each model whose canary.interval has elapsed."""


class Config(Section):
    """The whole ``driftloop.yaml``."""

    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    """Kafka clients, topics and formats."""
    state: StateConfig = Field(default_factory=StateConfig)
    """The state store."""
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    """The MLflow registry."""
    server: ServerConfig = Field(default_factory=ServerConfig)
    """The HTTP API."""
    jobs: JobsConfig = Field(default_factory=JobsConfig)
    """Intervals of the periodic jobs."""
    reports: ReportsConfig = Field(default_factory=ReportsConfig)
    """HTML drift reports of drifted windows."""
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    """The monitored models, by name (the name events carry in model)."""


