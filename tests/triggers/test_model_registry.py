"""Registry moves: idempotent apply on an in-memory registry, then on a real MLflow server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

from detectors.canary_results import CanaryVerdict
from tests.support.procs import free_port
from triggers.canary import CanaryPolicy, Judged, OperatorRequest, StepsDone, start, step
from triggers.canary_state import CanaryState
from triggers.moves import (
    STATUS_TAG,
    DeleteAlias,
    HookCall,
    Move,
    SetAlias,
    TagVersion,
    split_steps,
)
from triggers.registry import (
    MlflowRegistry,
    ModelRegistry,
    RegistryError,
    VersionInfo,
    apply_moves,
)

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
POLICY = CanaryPolicy(iterations=2, threshold=1)
KEY_TAG = "driftloop.idempotency_key"


@dataclass
class MemoryRegistry:
    """The ModelRegistry protocol over dicts; counts writes."""

    aliases: dict[str, str] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    writes: int = 0

    def get_alias(self, model: str, alias: str) -> str | None:
        return self.aliases.get(alias)

    def set_alias(self, model: str, alias: str, version: str) -> None:
        self.writes += 1
        self.aliases[alias] = version

    def delete_alias(self, model: str, alias: str) -> None:
        self.writes += 1
        self.aliases.pop(alias, None)

    def get_version_tags(self, model: str, version: str) -> dict[str, str]:
        return dict(self.tags.get(version, {}))

    def set_version_tag(self, model: str, version: str, key: str, value: str) -> None:
        self.writes += 1
        self.tags.setdefault(version, {})[key] = value

    def get_run_id(self, model: str, version: str) -> str | None:
        return None

    def list_versions(self, model: str) -> list[VersionInfo]:
        return []

    def find_versions_by_run_tag(self, model: str, key: str, value: str) -> list[str]:
        return []


def moves_of(decision_steps: tuple) -> tuple[Move, ...]:
    moves, _ = split_steps(decision_steps)
    return moves


def test_memory_registry_and_mlflow_adapter_satisfy_the_protocol() -> None:
    assert isinstance(MemoryRegistry(), ModelRegistry)
    assert isinstance(MlflowRegistry(MlflowClient("http://127.0.0.1:1")), ModelRegistry)


def test_apply_moves_twice_changes_nothing_the_second_time() -> None:
    registry = MemoryRegistry(aliases={"champion": "3", "challenger": "4"})
    moves = (SetAlias("k/0", "m", "previous_champion", "3"),
             SetAlias("k/1", "m", "champion", "4", expect="3", guarded=True),
             DeleteAlias("k/2", "m", "challenger", "4"),
             TagVersion("k/3", "m", "4", ((STATUS_TAG, "promoted"), ("x", "1"))))
    first = apply_moves(registry, moves)
    assert [r.changed for r in first] == [True, True, True, True]
    assert registry.aliases == {"champion": "4", "previous_champion": "3"}
    writes = registry.writes
    second = apply_moves(registry, moves)
    assert [r.changed for r in second] == [False, False, False, False]
    assert registry.writes == writes


def test_apply_moves_guarded_alias_moved_by_someone_else_raises_not_retryable() -> None:
    registry = MemoryRegistry(aliases={"champion": "7"})
    moves = (TagVersion("k/0", "m", "4", (("a", "b"),)),
             SetAlias("k/1", "m", "champion", "4", expect="3", guarded=True))
    with pytest.raises(RegistryError) as info:
        apply_moves(registry, moves)
    assert not info.value.retryable
    assert info.value.operation == "m@champion -> v4"
    assert "alias is on v7, expected on v3 or v4" in str(info.value)
    assert [r.key for r in info.value.applied] == ["k/0"]
    assert registry.aliases == {"champion": "7"}


def test_apply_moves_leaves_an_alias_that_now_points_elsewhere() -> None:
    registry = MemoryRegistry(aliases={"challenger": "5"})
    (result,) = apply_moves(registry, (DeleteAlias("k/0", "m", "challenger", "4"),))
    assert not result.changed and "left, it is on v5" in result.description
    assert registry.aliases == {"challenger": "5"}


def test_apply_moves_refuses_hook_calls() -> None:
    hook = HookCall("k/0", "start", "m", "3", "4", None, "k", "s")
    with pytest.raises(TypeError, match="got HookCall"):
        apply_moves(MemoryRegistry(), (hook,))  # type: ignore[arg-type]


def test_mlflow_registry_outage_raises_a_retryable_error_naming_the_operation(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    registry = MlflowRegistry(MlflowClient(f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(RegistryError) as info:
        registry.apply((SetAlias("k/0", "carloan", "champion", "4"),))
    assert info.value.retryable
    assert info.value.operation == "get alias carloan@champion"


# -- against a real MLflow server ------------------------------------------------------

@dataclass(frozen=True)
class Registered:
    client: MlflowClient
    registry: MlflowRegistry
    model: str
    runs: tuple[str, str]


@pytest.fixture(scope="module")
def logged_models(mlflow_server: str) -> Iterator[tuple[tuple[str, str], tuple[str, str]]]:
    """Two tiny scikit-learn models, each logged by a run tagged with a retrain key:
    ((run ids), (logged model ids)). Logged once; each test registers them under a new name."""
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(mlflow_server)
    x, y = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1])
    runs, uris = [], []
    try:
        for n in (1, 2):
            with mlflow.start_run() as run:
                mlflow.set_tag(KEY_TAG, f"retrain-{n}")
                # explicit requirements: inferring them costs seconds per model
                info = mlflow.sklearn.log_model(LogisticRegression(C=float(n)).fit(x, y),
                                                name="model", pip_requirements=["scikit-learn"])
                runs.append(run.info.run_id)
                uris.append(info.model_id)
        yield (runs[0], runs[1]), (uris[0], uris[1])
    finally:
        mlflow.set_tracking_uri(before)


@pytest.fixture
def registered(mlflow_server: str,
               logged_models: tuple[tuple[str, str], tuple[str, str]]) -> Registered:
    """Versions 1 and 2 of a fresh registered model, from the two logged models."""
    runs, model_ids = logged_models
    client = MlflowClient(mlflow_server)
    model = f"canary-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(model)
    for run_id, model_id in zip(runs, model_ids, strict=True):
        client.create_model_version(model, f"models:/{model_id}", run_id=run_id,
                                    model_id=model_id)
    return Registered(client, MlflowRegistry(client), model, runs)


def aliases(r: Registered) -> dict[str, str]:
    return dict(r.client.get_registered_model(r.model).aliases)


def tags(r: Registered, version: str) -> dict[str, str]:
    return dict(r.client.get_model_version(r.model, version).tags)


def judged(state: CanaryState, n: int, outcome: str) -> CanaryState:
    verdict = CanaryVerdict(outcome, 100.0 if outcome == "pass" else 0.0,  # type: ignore[arg-type]
                            f"{outcome} in interval {n}", (), 3000, 3000, "accuracy")
    decision = step(state, Judged(f"i{n}", verdict), T0 + timedelta(minutes=n), POLICY)
    assert decision.state is not None
    return decision.state


def apply_pending(r: Registered, state: CanaryState) -> tuple[CanaryState, list[bool]]:
    """What the service's tick does: moves, then (here: no) hooks, then StepsDone."""
    assert state.pending is not None
    moves, hooks = split_steps(state.pending.remaining)
    results = r.registry.apply(moves)
    done = tuple(m.key for m in moves) + tuple(h.key for h in hooks)
    decision = step(state, StepsDone(state.pending.decision_id, done), T0, POLICY)
    assert decision.state is not None
    return decision.state, [result.changed for result in results]


@pytest.mark.integration
def test_mlflow_registry_reads_versions_runs_and_retrain_tags(registered: Registered) -> None:
    r = registered
    versions = r.registry.list_versions(r.model)
    assert [(v.version, v.run_id) for v in versions] == [("1", r.runs[0]), ("2", r.runs[1])]
    assert r.registry.get_run_id(r.model, "2") == r.runs[1]
    assert r.registry.find_versions_by_run_tag(r.model, KEY_TAG, "retrain-2") == ["2"]
    assert r.registry.find_versions_by_run_tag(r.model, KEY_TAG, "no-such-key") == []
    assert r.registry.get_alias(r.model, "champion") is None


@pytest.mark.integration
def test_mlflow_registry_promotion_then_revert_moves_aliases_and_tags_once(
        registered: Registered) -> None:
    r = registered
    r.client.set_registered_model_alias(r.model, "champion", "1")
    decision = start(r.model, "1", "2", T0, POLICY, source="retrain")
    assert decision.state is not None
    state, changed = apply_pending(r, decision.state)
    assert changed == [True, True]
    assert aliases(r) == {"champion": "1", "challenger": "2"}
    assert tags(r, "2")[STATUS_TAG] == "progressing"

    promoting = judged(judged(state, 1, "pass"), 2, "pass")
    assert promoting.phase == "promoting" and promoting.pending is not None
    moves = moves_of(promoting.pending.steps)
    assert [x.changed for x in r.registry.apply(moves)] == [True, True, True, True, True]
    assert [x.changed for x in r.registry.apply(moves)] == [False] * 5
    assert aliases(r) == {"champion": "2", "previous_champion": "1"}
    assert (tags(r, "2")[STATUS_TAG], tags(r, "2")["driftloop.canary.score"]) == ("promoted",
                                                                                 "100")
    assert tags(r, "1")[STATUS_TAG] == "replaced"
    succeeded, _ = apply_pending(r, promoting)
    assert succeeded.phase == "succeeded"

    reverting = step(succeeded, OperatorRequest("rollback", "op-1"), T0, POLICY).state
    assert reverting is not None and reverting.pending is not None
    reverted, changed = apply_pending(r, reverting)
    assert reverted.phase == "reverted" and changed == [True, True, True, True]
    assert aliases(r) == {"champion": "1"}
    assert (tags(r, "2")[STATUS_TAG], tags(r, "1")[STATUS_TAG]) == ("reverted", "restored")
    assert [x.changed for x in r.registry.apply(moves_of(reverting.pending.steps))] == [False] * 4


@pytest.mark.integration
def test_mlflow_registry_rollback_removes_the_challenger_and_tags_it_rejected(
        registered: Registered) -> None:
    r = registered
    r.client.set_registered_model_alias(r.model, "champion", "1")
    r.client.set_registered_model_alias(r.model, "challenger", "2")
    decision = start(r.model, "1", "2", T0, POLICY)
    assert decision.state is not None
    state, changed = apply_pending(r, decision.state)
    assert changed == [False, True]  # the alias was already on v2
    rolling_back = judged(state, 1, "fail")
    assert rolling_back.phase == "rolling_back" and rolling_back.pending is not None
    moves = moves_of(rolling_back.pending.steps)
    rolled_back, changed = apply_pending(r, rolling_back)
    assert rolled_back.phase == "rolled_back" and changed == [True, True]
    assert aliases(r) == {"champion": "1"}
    version_tags = tags(r, "2")
    assert version_tags[STATUS_TAG] == "rejected"
    assert "1 failed checks (threshold 1)" in version_tags["driftloop.canary.reason"]
    assert '"outcome":"fail"' in version_tags["driftloop.canary.evidence"]
    assert [x.changed for x in r.registry.apply(moves)] == [False, False]


@pytest.mark.integration
def test_mlflow_registry_unknown_version_is_a_permanent_error(registered: Registered) -> None:
    r = registered
    with pytest.raises(RegistryError) as info:
        r.registry.apply((SetAlias("k/0", r.model, "champion", "99"),))
    assert not info.value.retryable
    assert info.value.operation == f"set alias {r.model}@champion -> v99"
