"""Pydantic validation errors -> one line per problem, for people.

``config <dotted.key>: got <value>, expected <what>``; an unknown key lists the
keys known at that level, a launcher names its type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

__all__ = ["format_validation_error", "yaml_problem"]

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


def _section_at(loc: Sequence[Any], root: type[BaseModel],
                launchers: Mapping[str, type[BaseModel]]) -> type[BaseModel] | None:
    """The config model at ``loc`` (a pydantic error location), for listing its keys."""
    model: type[BaseModel] | None = root
    pending = ""  # "dict": the next part is a key of a dict; "launcher": a launcher tag
    for part in loc:
        if pending == "launcher":
            model, pending = launchers.get(str(part)), ""
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
    root: type[BaseModel],
    launchers: Mapping[str, type[BaseModel]],
    source: str = "config",
    overrides: Mapping[tuple[str, ...], str] | None = None,
) -> str:
    """One line per problem: ``config <dotted.key>: got <value>, expected <what>``."""
    lines: list[str] = []
    seen: set[str] = set()
    for error in exc.errors():
        # "[key]": pydantic's marker of a mapping's key that failed, not a key people write
        parts = [p for p in error["loc"]
                 if not str(p).startswith("function-") and p != "[key]"]
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
            section = _section_at(parts[:-1], root, launchers)
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


def yaml_problem(source: str, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc)
    return f"{source}{where}: not valid YAML ({problem})".replace("\n", " ")
