"""Value types of the config: durations, bounded numbers, ports, ``auto`` or a number.

Each validator raises ValueError("expected ...") so that the config's error
lines read ``config <key>: got <value>, expected <what>``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

import yaml
from pydantic import BeforeValidator

__all__ = [
    "Alpha",
    "AutoOrNonNegative",
    "AutoOrPositive",
    "Confidence",
    "ConfigError",
    "Duration",
    "EventTime",
    "NonNegative",
    "NonNegativeInt",
    "Origin",
    "Port",
    "PositiveDuration",
    "PositiveInt",
    "Share",
    "YamlLoader",
    "event_time_ms",
    "parse_duration",
]


class ConfigError(ValueError):
    """Raised for a configuration that cannot be used; the message is for people."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


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


def _non_negative_int(value: Any) -> int:
    expected = "expected a non-negative integer"
    number = _number(value, expected)
    if number != number or number < 0 or number != int(number):
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


def _checked_text(ok: Any, expected: str) -> Any:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not ok(value):
            raise ValueError(expected)
        return value

    return check


def _event_time(value: Any) -> str:
    """An RFC 3339 time with a UTC offset, kept as written (``event_time_ms`` reads it)."""
    expected = "expected an RFC 3339 time with a UTC offset, like 2000-01-01T00:00:00Z"
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise ValueError(expected) from None
    if moment.tzinfo is None:
        raise ValueError(expected)
    return str(value)


def event_time_ms(value: str) -> int:
    """Epoch milliseconds of a validated ``EventTime``."""
    return int(datetime.fromisoformat(value).timestamp() * 1000)


def _port(value: Any) -> int:
    expected = "expected a port number from 0 to 65535"
    number = _number(value, expected)
    if number != int(number) or not 0 <= number <= 65535:
        raise ValueError(expected)
    return int(number)


Duration = Annotated[float, BeforeValidator(parse_duration)]
PositiveDuration = Annotated[float, BeforeValidator(_positive_duration)]
PositiveInt = Annotated[int, BeforeValidator(_positive_int)]
NonNegativeInt = Annotated[int, BeforeValidator(_non_negative_int)]
Share = Annotated[
    float, BeforeValidator(_checked(lambda x: 0 < x <= 1, "expected a number in (0, 1]"))]
Alpha = Annotated[
    float, BeforeValidator(_checked(lambda x: 0 < x < 1, "expected a number in (0, 1)"))]
Confidence = Annotated[
    float, BeforeValidator(_checked(lambda x: 0.5 < x < 1, "expected a number in (0.5, 1)"))]
NonNegative = Annotated[
    float, BeforeValidator(_checked(lambda x: x >= 0, "expected a non-negative number"))]
Port = Annotated[int, BeforeValidator(_port)]
# what a browser sends in Origin: scheme, host and port, no path, no userinfo
_ORIGIN = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")
Origin = Annotated[str, BeforeValidator(_checked_text(
    _ORIGIN.fullmatch, "expected an origin: http(s)://host[:port], no path"))]
EventTime = Annotated[str, BeforeValidator(_event_time)]
# one message for the union: pydantic would report each member separately
AutoOrPositive = Annotated[
    Literal["auto"] | float,
    BeforeValidator(_auto_or(lambda x: x > 0, "expected auto or a positive number")),
]
AutoOrNonNegative = Annotated[
    Literal["auto"] | float,
    BeforeValidator(_auto_or(lambda x: x >= 0, "expected auto or a non-negative number")),
]


class YamlLoader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. PyYAML follows YAML 1.1, where ``on``, ``off``,
    ``yes``, ``no`` are booleans too, which would turn the documented key ``retrain.on``
    into ``True``."""


YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
