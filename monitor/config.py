"""The one typed configuration of driftloop (``driftloop.yaml``).

This module is the only place that reads the environment. Every section is a
frozen pydantic model that forbids unknown keys, so a typo fails at start with
a message naming the key, the value seen and what was expected::

    config models.carloan.window.rows: got -5, expected a positive integer

Environment overrides: ``DRIFTLOOP__SECTION__KEY=value`` (double underscores
separate the path, values are read as YAML scalars), e.g.
``DRIFTLOOP__KAFKA__GROUP_ID=driftloop-b`` or
``DRIFTLOOP__MODELS__CARLOAN__WINDOW__ROWS=1000``.

Durations are written as ``90s``, ``30m``, ``1h``, ``30d`` or a number of
seconds; they are held as seconds (float) internally.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from monitor.config_errors import format_validation_error, yaml_problem
from monitor.config_values import (
    Alpha,
    AutoOrNonNegative,
    AutoOrPositive,
    ConfigError,
    Duration,
    NonNegative,
    Port,
    PositiveDuration,
    PositiveInt,
    Share,
    YamlLoader,
    parse_duration,
)

__all__ = [
    "ENV_PREFIX",
    "AirflowLauncher",
    "ArgoLauncher",
    "CanaryConfig",
    "CommandLauncher",
    "Config",
    "ConfigError",
    "DriftConfig",
    "FeatureDriftConfig",
    "GithubLauncher",
    "KafkaConfig",
    "KfpLauncher",
    "LauncherConfig",
    "MlflowConfig",
    "ModelConfig",
    "PerformanceConfig",
    "QualityConfig",
    "RetrainConfig",
    "ServerConfig",
    "StateConfig",
    "WebhookLauncher",
    "WindowConfig",
    "load_config",
    "parse_duration",
    "read_secret",
]

ENV_PREFIX = "DRIFTLOOP__"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaConfig(_Section):
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


class StateConfig(_Section):
    url: str = "sqlite:///driftloop.db"


class MlflowConfig(_Section):
    tracking_uri: str | None = None
    poll_interval: Duration = 60.0
    webhook_secret_env: str | None = None


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: Port = 8080
    auth_token_env: str | None = "DRIFTLOOP_TOKEN"
    grafana_hmac_secret_env: str | None = None
    max_body_bytes: PositiveInt = 1_048_576


class WindowConfig(_Section):
    rows: PositiveInt | None = None
    duration: PositiveDuration | None = None
    allowed_lateness: Duration = 0.0
    # cap on raw rows buffered before they are folded into the window summary
    buffer_rows: PositiveInt = 2048

    @model_validator(mode="after")
    def _one_kind(self) -> WindowConfig:
        if self.rows is not None and self.duration is not None:
            raise ValueError(
                "expected either rows (a count window) or duration (an event-time window), "
                "not both")
        if self.rows is None and self.duration is None:
            object.__setattr__(self, "rows", 5000)
        return self


NumericMethod = Literal["wasserstein", "ks", "psi", "jensenshannon"]
CategoricalMethod = Literal["jensenshannon", "chisquare", "linf", "psi"]


class FeatureDriftConfig(_Section):
    method: str | None = None
    threshold: AutoOrPositive | None = None


class DriftConfig(_Section):
    share: Share = 0.5
    numeric_method: NumericMethod = "wasserstein"
    categorical_method: CategoricalMethod = "jensenshannon"
    prediction_method: Literal["jensenshannon", "psi", "wasserstein", "ks", "linf"] = (
        "jensenshannon")
    threshold: AutoOrPositive = "auto"
    # p-value methods (ks, chisquare, z) are corrected for the number of features
    correction: Literal["none", "bonferroni", "fdr"] = "bonferroni"
    alpha: Alpha = 0.05
    min_rows: PositiveInt = 100
    features: dict[str, FeatureDriftConfig] = Field(default_factory=dict)


class QualityConfig(_Section):
    max_missing_increase: NonNegative = 0.1
    max_out_of_range: NonNegative = 0.05
    max_type_violations: NonNegative = 0.0


class PerformanceConfig(_Section):
    metric: Literal[
        "accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "mae", "rmse", "mape"
    ] = "accuracy"
    max_drop: AutoOrNonNegative = "auto"
    window_rows: PositiveInt = 5000
    label_ttl: Duration = 30 * 86400.0


class CommandLauncher(_Section):
    type: Literal["command"]
    argv: list[str] = Field(min_length=1)
    timeout: Duration = 3600.0
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)


class WebhookLauncher(_Section):
    type: Literal["webhook"]
    url: str
    secret_env: str | None = None
    timeout: Duration = 10.0


class KfpLauncher(_Section):
    type: Literal["kfp"]
    host: str
    pipeline_id: str
    pipeline_version_id: str
    experiment_id: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    token_env: str | None = None
    timeout: Duration = 10.0


class ArgoLauncher(_Section):
    type: Literal["argo"]
    host: str
    namespace: str = "argo"
    template: str = "retrain"
    parameters: dict[str, str] = Field(default_factory=dict)
    token_env: str | None = None
    timeout: Duration = 10.0


class GithubLauncher(_Section):
    type: Literal["github"]
    repository: Annotated[str, Field(pattern=r"^[\w.-]+/[\w.-]+$")]
    event_type: str = "retrain"
    api_url: str = "https://api.github.com"
    token_env: str = "GITHUB_TOKEN"
    timeout: Duration = 10.0


class AirflowLauncher(_Section):
    type: Literal["airflow"]
    host: str
    dag_id: str
    token_env: str | None = None
    timeout: Duration = 10.0


LauncherConfig = Annotated[
    CommandLauncher
    | WebhookLauncher
    | KfpLauncher
    | ArgoLauncher
    | GithubLauncher
    | AirflowLauncher,
    Field(discriminator="type"),
]

RetrainReason = Literal[
    "dataset_drift", "performance_drop", "estimated_performance_drop", "quality", "alert", "manual"
]


class RetrainConfig(_Section):
    on: list[RetrainReason] = Field(
        default_factory=lambda: ["dataset_drift", "performance_drop", "alert", "manual"]  # type: ignore[arg-type]
    )
    consecutive_windows: PositiveInt = 2
    cooldown: Duration = 3600.0
    launcher: LauncherConfig | None = None
    max_attempts: PositiveInt = 5


class CanaryConfig(_Section):
    champion_alias: str = "champion"
    challenger_alias: str = "challenger"
    min_events: PositiveInt = 2000
    iterations: PositiveInt = 3
    threshold: PositiveInt = 2
    max_performance_drop: NonNegative = 0.0
    interval: Duration = 300.0


class ModelConfig(_Section):
    baseline: str
    window: WindowConfig = Field(default_factory=WindowConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    performance: PerformanceConfig = Field(default_factory=PerformanceConfig)
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)
    canary: CanaryConfig | None = None


class Config(_Section):
    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    state: StateConfig = Field(default_factory=StateConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    models: dict[str, ModelConfig] = Field(default_factory=dict)


def read_secret(env_name: str | None) -> SecretStr | None:
    """The value of a secret named by an ``*_env`` key, or None when unset or empty."""
    if not env_name:
        return None
    value = os.environ.get(env_name, "")
    return SecretStr(value) if value else None


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """Apply ``DRIFTLOOP__`` overrides to ``data`` in place; returns path -> variable name."""
    applied: dict[tuple[str, ...], str] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__") if part]
        if not path:
            continue
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        try:
            value = yaml.load(raw, Loader=YamlLoader) if raw.strip() else raw
        except yaml.YAMLError:
            raise ConfigError(
                f"config {'.'.join(path)}: got {raw!r} from {name}, expected a YAML value "
                "(quote it if it is text)"
            ) from None
        node[path[-1]] = value
        applied[tuple(path)] = name
    return applied


def load_config(
    path: str | Path | None = None,
    *,
    data: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Read YAML (or take ``data``), apply ``DRIFTLOOP__`` overrides, validate.

    Raises ConfigError with one line per problem.
    """
    raw: Any
    source = f"config {path}" if path is not None else "config"
    if data is not None:
        raw = dict(data)
    elif path is not None:
        try:
            raw = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=YamlLoader)
        except FileNotFoundError:
            raise ConfigError(f"{source}: file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ConfigError(f"{source}: cannot be read ({reason})") from None
        except yaml.YAMLError as exc:
            raise ConfigError(yaml_problem(source, exc)) from None
        raw = {} if raw is None else raw
    else:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: got a {type(raw).__name__}, expected a mapping of sections "
            f"({', '.join(Config.model_fields)})")
    applied = _apply_env(raw, os.environ if environ is None else environ)
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(
            format_validation_error(exc, Config, _LAUNCHER_BY_TAG, overrides=applied)) from None


_LAUNCHER_BY_TAG: dict[str, type[BaseModel]] = {
    "command": CommandLauncher,
    "webhook": WebhookLauncher,
    "kfp": KfpLauncher,
    "argo": ArgoLauncher,
    "github": GithubLauncher,
    "airflow": AirflowLauncher,
}
