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
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
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
    "format_validation_error",
    "load_config",
    "parse_duration",
    "read_secret",
]

ENV_PREFIX = "DRIFTLOOP__"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


class ConfigError(ValueError):
    """Raised for a configuration that cannot be used; the message is for people."""


def parse_duration(value: Any) -> float:
    """``"1h"`` -> 3600.0; numbers are seconds. Raises ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 90s, 30m, 1h, 30d or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError("expected a duration like 90s, 30m, 1h, 30d or a number of seconds")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]
    if seconds < 0:
        raise ValueError("expected a non-negative duration")
    return seconds


def _number(value: Any, expected: str) -> float:
    # bool is an int subclass: ``rows: true`` is a mistake, not 1
    if isinstance(value, bool):
        raise ValueError(expected)
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        raise ValueError(expected) from None


def _positive_int(value: Any) -> int:
    expected = "expected a positive integer"
    number = _number(value, expected)
    if number != number or number <= 0 or number != int(number):
        raise ValueError(expected)
    return int(number)


def _checked(test: Any, expected: str) -> Any:
    def check(value: Any) -> float:
        number = _number(value, expected)
        if number != number or not test(number):  # NaN fails every test
            raise ValueError(expected)
        return number

    return check


def _auto_or(test: Any, expected: str) -> Any:
    check = _checked(test, expected)
    return lambda value: "auto" if value == "auto" else check(value)


def _positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("expected a positive duration like 90s, 30m, 1h or 30d")
    return seconds


def _port(value: Any) -> int:
    expected = "expected a port number from 0 to 65535"
    number = _number(value, expected)
    if number != int(number) or not 0 <= number <= 65535:
        raise ValueError(expected)
    return int(number)


Duration = Annotated[float, BeforeValidator(parse_duration)]
PositiveDuration = Annotated[float, BeforeValidator(_positive_duration)]
PositiveInt = Annotated[int, BeforeValidator(_positive_int)]
Share = Annotated[
    float, BeforeValidator(_checked(lambda x: 0 < x <= 1, "expected a number in (0, 1]"))]
Alpha = Annotated[
    float, BeforeValidator(_checked(lambda x: 0 < x < 1, "expected a number in (0, 1)"))]
NonNegative = Annotated[
    float, BeforeValidator(_checked(lambda x: x >= 0, "expected a non-negative number"))]
Port = Annotated[int, BeforeValidator(_port)]
# one message for the union: pydantic would report each member separately
AutoOrPositive = Annotated[
    Literal["auto"] | float,
    BeforeValidator(_auto_or(lambda x: x > 0, "expected auto or a positive number")),
]
AutoOrNonNegative = Annotated[
    Literal["auto"] | float,
    BeforeValidator(_auto_or(lambda x: x >= 0, "expected auto or a non-negative number")),
]


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
    poll_max_records: PositiveInt = 5000
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
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            raise ConfigError(
                f"config {'.'.join(path)}: got {raw!r} from {name}, expected a YAML value "
                "(quote it if it is text)"
            ) from None
        node[path[-1]] = value
        applied[tuple(path)] = name
    return applied


# pydantic error type -> what was expected, for people
_EXPECTED_TYPE = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "missing": "a value (this key is required)",
}
_LAUNCHER_TAGS = ("command", "webhook", "kfp", "argo", "github", "airflow")


def _expected(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind in _EXPECTED_TYPE:
        return _EXPECTED_TYPE[kind]
    if kind == "literal_error" and "expected" in ctx:
        return f"one of {ctx['expected']}"
    if kind == "union_tag_invalid":
        return f"a launcher type, one of {', '.join(_LAUNCHER_TAGS)}"
    if kind == "union_tag_not_found":
        return f"a mapping with a type key, one of {', '.join(_LAUNCHER_TAGS)}"
    if kind == "too_short" and ctx.get("min_length") == 1:
        return "a non-empty list"
    if kind == "string_pattern_mismatch":
        return f"text matching {ctx.get('pattern')}"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Input should be ", "expected "):
        message = message.removeprefix(prefix)
    return message


def _section_at(loc: Sequence[Any]) -> type[BaseModel] | None:
    """The config model at ``loc`` (a pydantic error location), for listing its keys."""
    model: type[BaseModel] | None = Config
    pending = ""  # "dict": the next part is a key of a dict; "launcher": a launcher tag
    for part in loc:
        if pending == "launcher":
            model, pending = _LAUNCHER_BY_TAG.get(str(part)), ""
            if model is None:
                return None
            continue
        if pending == "dict":
            pending = ""
            continue
        field = model.model_fields.get(str(part)) if model is not None else None
        if field is None:
            return None
        if part == "launcher":
            pending = "launcher"
            continue
        model = _model_of(field.annotation)
        if model is None:
            return None
        pending = "dict" if get_origin(field.annotation) is dict else ""
    return model if not pending else None


def _model_of(annotation: Any) -> Any:
    """The section model of a field annotation: ``X``, ``X | None`` or ``dict[str, X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def format_validation_error(
    exc: ValidationError,
    source: str = "config",
    overrides: Mapping[tuple[str, ...], str] | None = None,
) -> str:
    """One line per problem: ``config <dotted.key>: got <value>, expected <what>``."""
    lines: list[str] = []
    seen: set[str] = set()
    for error in exc.errors():
        parts = [p for p in error["loc"] if not str(p).startswith("function-")]
        # the union tag pydantic puts after "launcher" is not a key people write
        tag = next((str(p) for i, p in enumerate(parts) if i and parts[i - 1] == "launcher"
                    and p in _LAUNCHER_TAGS), None)
        shown_parts = [str(p) for i, p in enumerate(parts)
                       if not (i and parts[i - 1] == "launcher" and p in _LAUNCHER_TAGS)]
        loc = ".".join(shown_parts) or "(top level)"
        if loc in seen:  # one line per key, even when pydantic reports several
            continue
        seen.add(loc)
        if error["type"] == "extra_forbidden":
            section = _section_at(parts[:-1])
            known = ", ".join(section.model_fields) if section is not None else ""
            what = f"one of {known}" if known else "a documented key"
            line = f"{source} {loc}: got an unknown key (a typo?), expected {what}"
        else:
            got = error.get("input")
            if error["type"] == "union_tag_invalid":  # name the type key, not the mapping
                loc, got = f"{loc}.type", (error.get("ctx") or {}).get("tag")
            shown = "nothing" if error["type"] == "missing" else repr(got)
            if len(shown) > 80:
                shown = shown[:77] + "..."
            expected = _expected(error)
            if error["type"] == "missing" and tag is not None:
                expected = f"a value (required by a {tag} launcher)"
            line = f"{source} {loc}: got {shown}, expected {expected}"
        variable = (overrides or {}).get(tuple(str(p) for p in shown_parts))
        lines.append(f"{line} (set by {variable})" if variable else line)
    return "\n".join(lines)


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
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{source}: file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ConfigError(f"{source}: cannot be read ({reason})") from None
        except yaml.YAMLError as exc:
            raise ConfigError(_yaml_problem(source, exc)) from None
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
        raise ConfigError(format_validation_error(exc, overrides=applied)) from None


def _yaml_problem(source: str, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc)
    return f"{source}{where}: not valid YAML ({problem})".replace("\n", " ")


_LAUNCHER_BY_TAG: dict[str, type[BaseModel]] = {
    "command": CommandLauncher,
    "webhook": WebhookLauncher,
    "kfp": KfpLauncher,
    "argo": ArgoLauncher,
    "github": GithubLauncher,
    "airflow": AirflowLauncher,
}
