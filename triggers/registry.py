"""The model registry behind one narrow interface, and MLflow's adapter for it.

Exceptions::

    RegistryError        a registry call failed; .operation names it, .retryable says
    └── (no subclasses)  whether to keep the decision pending (outage, 5xx) or give
                         up (the version is gone, an alias was moved by someone else)

``apply_moves(registry, moves)`` applies ``SetAlias`` / ``DeleteAlias`` /
``TagVersion`` idempotently, reading before writing, and reports for each whether
it changed anything: applying the same moves twice changes nothing the second time.

``MlflowRegistry`` wraps an injected ``mlflow.MlflowClient`` (MLflow 3: aliases and
version tags, no stages). This module imports nothing of MLflow itself: the client
brings it. MLflow's client retries a refused connection for minutes by default;
set ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` / ``MLFLOW_HTTP_REQUEST_TIMEOUT`` low for
a service that must stay responsive, or call it off the consumer thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from triggers.moves import DeleteAlias, Move, SetAlias, TagVersion

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "MlflowRegistry",
    "ModelRegistry",
    "MoveResult",
    "RegistryError",
    "VersionInfo",
    "apply_moves",
]

# MLflow error codes that retrying cannot fix
_PERMANENT = frozenset({
    "RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "PERMISSION_DENIED",
    "UNAUTHENTICATED", "RESOURCE_ALREADY_EXISTS", "BAD_REQUEST", "INVALID_STATE",
    "FEATURE_DISABLED", "ENDPOINT_NOT_FOUND", "NOT_FOUND",
})


class RegistryError(Exception):
    """``operation`` failed (``detail``); ``applied``: moves done before it, if any."""

    def __init__(self, operation: str, detail: str, *, retryable: bool,
                 applied: tuple[MoveResult, ...] = ()) -> None:
        super().__init__(f"registry {operation}: {detail}")
        self.operation = operation
        self.detail = detail
        self.retryable = retryable
        self.applied = applied


@dataclass(frozen=True)
class VersionInfo:
    model: str
    version: str
    run_id: str | None
    tags: Mapping[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    created_at_ms: int | None = None


@dataclass(frozen=True)
class MoveResult:
    key: str
    changed: bool
    description: str


@runtime_checkable
class ModelRegistry(Protocol):
    def get_alias(self, model: str, alias: str) -> str | None: ...
    def set_alias(self, model: str, alias: str, version: str) -> None: ...
    def delete_alias(self, model: str, alias: str) -> None: ...
    def get_version_tags(self, model: str, version: str) -> dict[str, str]: ...
    def set_version_tag(self, model: str, version: str, key: str, value: str) -> None: ...
    def get_run_id(self, model: str, version: str) -> str | None: ...
    def list_versions(self, model: str) -> list[VersionInfo]: ...
    def find_versions_by_run_tag(self, model: str, key: str, value: str) -> list[str]: ...


def apply_moves(registry: ModelRegistry, moves: Iterable[Move]) -> tuple[MoveResult, ...]:
    """Apply each move if needed; a ``RegistryError`` carries the moves done before it."""
    results: list[MoveResult] = []
    try:
        for move in moves:
            results.append(_apply(registry, move))
    except RegistryError as exc:
        raise RegistryError(exc.operation, exc.detail, retryable=exc.retryable,
                            applied=tuple(results)) from exc
    return tuple(results)


def _apply(registry: ModelRegistry, move: Move) -> MoveResult:
    if isinstance(move, SetAlias):
        current = registry.get_alias(move.model, move.alias)
        if current == move.version:
            return MoveResult(move.key, False, f"{move.describe()}: already there")
        if move.guarded and current != move.expect:
            expected = "absent" if move.expect is None else f"on v{move.expect}"
            seen = "absent" if current is None else f"on v{current}"
            raise RegistryError(move.describe(), f"alias is {seen}, expected {expected} or "
                                f"v{move.version}: someone else moved it", retryable=False)
        registry.set_alias(move.model, move.alias, move.version)
        was = "" if current is None else f" (was v{current})"
        return MoveResult(move.key, True, move.describe() + was)
    if isinstance(move, DeleteAlias):
        current = registry.get_alias(move.model, move.alias)
        if current is None:
            return MoveResult(move.key, False, f"{move.describe()}: already absent")
        if move.version is not None and current != move.version:
            return MoveResult(move.key, False, f"{move.describe()}: left, it is on v{current}")
        registry.delete_alias(move.model, move.alias)
        return MoveResult(move.key, True, f"{move.describe()} (was v{current})")
    if isinstance(move, TagVersion):
        tags = registry.get_version_tags(move.model, move.version)
        changed = [(k, v) for k, v in move.tags if tags.get(k) != v]
        for key, value in changed:
            registry.set_version_tag(move.model, move.version, key, value)
        return MoveResult(move.key, bool(changed),
                          f"{move.describe()}: {len(changed)} of {len(move.tags)} tags set")
    raise TypeError(f"apply_moves: got {type(move).__name__}, expected SetAlias, DeleteAlias "
                    "or TagVersion (hooks are called by the caller)")


class MlflowRegistry:
    """``ModelRegistry`` over an ``mlflow.MlflowClient`` (its registry URI)."""

    def __init__(self, client: MlflowClient) -> None:
        self.client = client

    def apply(self, moves: Iterable[Move]) -> tuple[MoveResult, ...]:
        return apply_moves(self, moves)

    def get_alias(self, model: str, alias: str) -> str | None:
        found = self._call(f"get alias {model}@{alias}", self.client.get_registered_model, model)
        version = dict(found.aliases or {}).get(alias)
        return None if version is None else str(version)

    def set_alias(self, model: str, alias: str, version: str) -> None:
        self._call(f"set alias {model}@{alias} -> v{version}",
                   self.client.set_registered_model_alias, model, alias, version)

    def delete_alias(self, model: str, alias: str) -> None:
        # MLflow answers deleting an absent alias with success: a no-op, as promised
        self._call(f"delete alias {model}@{alias}", self.client.delete_registered_model_alias,
                   model, alias)

    def get_version_tags(self, model: str, version: str) -> dict[str, str]:
        found = self._call(f"get tags of {model} v{version}", self.client.get_model_version,
                           model, version)
        return {str(k): str(v) for k, v in dict(found.tags or {}).items()}

    def set_version_tag(self, model: str, version: str, key: str, value: str) -> None:
        self._call(f"tag {model} v{version} {key}", self.client.set_model_version_tag,
                   model, version, key, value)

    def get_run_id(self, model: str, version: str) -> str | None:
        found = self._call(f"get run of {model} v{version}", self.client.get_model_version,
                           model, version)
        return found.run_id or None

    def list_versions(self, model: str) -> list[VersionInfo]:
        operation = f"list versions of {model}"
        quoted = f'"{model}"' if "'" in model else f"'{model}'"
        versions: list[VersionInfo] = []
        token = None
        while True:
            page = self._call(operation, self.client.search_model_versions,
                              f"name = {quoted}", max_results=1000, page_token=token)
            versions.extend(_version(model, mv) for mv in page)
            token = getattr(page, "token", None)
            if not token:
                break
        return sorted(versions, key=lambda v: _number(v.version))

    def find_versions_by_run_tag(self, model: str, key: str, value: str) -> list[str]:
        """Versions whose own tags, or whose run's tags, carry ``key`` = ``value``."""
        if "'" in value or "`" in key:
            raise ValueError(f"registry run tag {key}={value!r}: quotes are not supported")
        versions = self.list_versions(model)
        found = {v.version for v in versions if v.tags.get(key) == value}
        by_run = {v.run_id: v.version for v in versions if v.run_id and v.version not in found}
        if by_run:
            operation = f"find runs of {model} tagged {key}={value}"
            experiments = [e.experiment_id for e in self._pages(
                operation, self.client.search_experiments)]
            runs = self._pages(operation, self.client.search_runs, experiments,
                               filter_string=f"tags.`{key}` = '{value}'")
            found |= {by_run[r.info.run_id] for r in runs if r.info.run_id in by_run}
        return sorted(found, key=_number)

    def _pages(self, operation: str, method: Any, *args: Any, **kwargs: Any) -> list[Any]:
        items: list[Any] = []
        token = None
        while True:
            page = self._call(operation, method, *args, max_results=1000, page_token=token,
                              **kwargs)
            items.extend(page)
            token = getattr(page, "token", None)
            if not token:
                return items

    def _call(self, operation: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            code = getattr(exc, "error_code", None)
            # requests' errors are OSErrors; MlflowException and RestException carry a code
            if code is None and not isinstance(exc, OSError):
                raise
            detail = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            raise RegistryError(operation, detail, retryable=code not in _PERMANENT) from exc


def _version(model: str, mv: Any) -> VersionInfo:
    created = getattr(mv, "creation_timestamp", None)
    return VersionInfo(model, str(mv.version), mv.run_id or None,
                       {str(k): str(v) for k, v in dict(mv.tags or {}).items()},
                       tuple(str(a) for a in (getattr(mv, "aliases", None) or ())),
                       None if created is None else int(created))


def _number(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 62, version)
