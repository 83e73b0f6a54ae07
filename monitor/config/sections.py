"""The service-wide sections of ``driftloop.yaml`` and the root :class:`Config`.

``kafka`` (clients, topics, formats), ``state`` (the state store), ``mlflow``
(the registry), ``server`` (the HTTP API); ``models`` maps a model name to its
:class:`monitor.config.model.ModelConfig`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from monitor.config.base import Section
from monitor.config.model import ModelConfig
from monitor.config.values import (
    Duration,
    Port,
    PositiveDuration,
    PositiveInt,
)

__all__ = ["Config", "JobsConfig", "KafkaConfig", "MlflowConfig", "ServerConfig", "StateConfig"]


class KafkaConfig(Section):
    bootstrap_servers: list[str] = Field(default_factory=lambda: ["127.0.0.1:9092"], min_length=1)
    group_id: str = "driftloop"
    predictions_topic: str = "predictions"
    labels_topic: str = "labels"
    dead_letter_topic: str = "driftloop-dlq"
    formats: list[Literal["native", "kserve", "oip"]] = Field(
        default_factory=lambda: ["native"], min_length=1  # type: ignore[arg-type]
    )
    # passed through to kafka-python's KafkaConsumer / KafkaProducer
    consumer: dict[str, Any] = Field(default_factory=dict)
    producer: dict[str, Any] = Field(default_factory=dict)
    max_record_bytes: PositiveInt = 1_048_576
    # one 4 MiB fetch holds ~6,700 events of 800 bytes: a smaller poll leaves records
    # buffered and the next fetch waits instead of overlapping with processing
    poll_max_records: PositiveInt = 20_000
    commit_interval_seconds: Duration = 5.0
    # KServe ce_endpoint -> model version, used before (or instead of) registry aliases
    endpoint_versions: dict[str, str] = Field(default_factory=dict)


class StateConfig(Section):
    url: str = "sqlite:///driftloop.db"


class MlflowConfig(Section):
    tracking_uri: str | None = None
    poll_interval: Duration = 60.0
    webhook_secret_env: str | None = None


class ServerConfig(Section):
    host: str = "127.0.0.1"
    port: Port = 8080
    auth_token_env: str | None = "DRIFTLOOP_TOKEN"
    grafana_hmac_secret_env: str | None = None
    max_body_bytes: PositiveInt = 1_048_576


class JobsConfig(Section):
    """Intervals of the service's periodic jobs (``monitor.runtime.jobs``)."""

    retrain_interval: PositiveDuration = 5.0
    label_expiry_interval: PositiveDuration = 60.0
    metrics_interval: PositiveDuration = 5.0
    broker_check_interval: PositiveDuration = 5.0


class Config(Section):
    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    state: StateConfig = Field(default_factory=StateConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    jobs: JobsConfig = Field(default_factory=JobsConfig)
    models: dict[str, ModelConfig] = Field(default_factory=dict)


