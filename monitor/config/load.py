"""Loading ``driftloop.yaml``: YAML, environment overrides, validation, secrets.

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
from typing import Any

import yaml
from pydantic import SecretStr, ValidationError

from monitor.config.errors import format_validation_error, yaml_problem
from monitor.config.launchers import LAUNCHER_BY_TAG
from monitor.config.sections import Config
from monitor.config.values import ConfigError, YamlLoader

__all__ = ["ENV_PREFIX", "load_config", "read_secret"]

ENV_PREFIX = "DRIFTLOOP__"


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
            format_validation_error(exc, Config, LAUNCHER_BY_TAG, overrides=applied)) from None


