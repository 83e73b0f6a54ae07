"""HTTP launchers against httpx.MockTransport: the exact request each target gets."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from triggers.launchers import (
    AirflowLauncher,
    ArgoLauncher,
    GithubLauncher,
    KfpLauncher,
    LaunchError,
    LaunchRequest,
    RunRef,
    WebhookLauncher,
)

REQUEST = LaunchRequest(
    model="carloan",
    version="3",
    reason="dataset_drift",
    window_start=datetime(2019, 5, 1, tzinfo=UTC),
    window_end=datetime(2019, 5, 31, 8, tzinfo=UTC),
    idempotency_key="carloan-dataset_drift-0123456789abcdef",
    sentence="retrain carloan: dataset drift in 2 consecutive windows (share 0.57 >= 0.50)",
)
PAYLOAD = {
    "model": "carloan",
    "version": "3",
    "reason": "dataset_drift",
    "window_start": "2019-05-01T00:00:00Z",
    "window_end": "2019-05-31T08:00:00Z",
    "idempotency_key": "carloan-dataset_drift-0123456789abcdef",
    "sentence": "retrain carloan: dataset drift in 2 consecutive windows (share 0.57 >= 0.50)",
}


class Recorder:
    """A MockTransport that answers from a script and keeps every request."""

    def __init__(self, *answers: httpx.Response | Callable[[httpx.Request], httpx.Response]):
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(request) if callable(answer) else answer

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))

    def body(self, index: int = 0) -> object:
        return json.loads(self.requests[index].content)


def fast(**kwargs: Any) -> dict[str, Any]:
    return {"max_attempts": 3, "retry_wait_seconds": 0.0, **kwargs}


def test_webhook_posts_signed_json_with_idempotency_key() -> None:
    rec = Recorder(httpx.Response(202, json={"run_id": "job-7"}))
    launcher = WebhookLauncher("https://ci.example/hooks/retrain", client=rec.client(),
                               secret="s3cret", **fast())
    ref = launcher.launch(REQUEST)
    sent = rec.requests[0]
    assert (sent.method, str(sent.url)) == ("POST", "https://ci.example/hooks/retrain")
    assert rec.body() == PAYLOAD
    expected = hmac.new(b"s3cret", sent.content, hashlib.sha256).hexdigest()
    assert sent.headers["X-Driftloop-Signature"] == f"sha256={expected}"
    assert sent.headers["X-Driftloop-Idempotency-Key"] == REQUEST.idempotency_key
    assert sent.headers["Content-Type"] == "application/json"
    assert ref == RunRef("webhook", "job-7", REQUEST.idempotency_key,
                         url="https://ci.example/hooks/retrain")
    assert launcher.status(ref).state == "unknown"


def test_webhook_without_secret_sends_no_signature() -> None:
    rec = Recorder(httpx.Response(204))
    ref = WebhookLauncher("http://h/x", client=rec.client(), **fast()).launch(REQUEST)
    assert "X-Driftloop-Signature" not in rec.requests[0].headers
    assert ref.run_id == REQUEST.idempotency_key


def test_github_repository_dispatch_exact_request() -> None:
    rec = Recorder(httpx.Response(204))
    launcher = GithubLauncher("acme/models", client=rec.client(), secret="ghp_x", **fast())
    ref = launcher.launch(REQUEST)
    sent = rec.requests[0]
    assert (sent.method, str(sent.url)) == (
        "POST", "https://api.github.com/repos/acme/models/dispatches")
    assert sent.headers["Authorization"] == "Bearer ghp_x"
    assert sent.headers["Accept"] == "application/vnd.github+json"
    assert sent.headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert rec.body() == {"event_type": "retrain", "client_payload": PAYLOAD}
    assert len(PAYLOAD) <= 10
    assert ref.run_id == REQUEST.idempotency_key
    assert launcher.status(ref).state == "unknown"


def test_github_retries_429_then_succeeds() -> None:
    rec = Recorder(httpx.Response(429), httpx.Response(204))
    GithubLauncher("acme/models", client=rec.client(), secret="t", **fast()).launch(REQUEST)
    assert len(rec.requests) == 2


def test_github_422_is_final_and_names_target_and_response() -> None:
    rec = Recorder(httpx.Response(422, json={"message": "Invalid request"}))
    launcher = GithubLauncher("acme/models", client=rec.client(), secret="t", **fast())
    with pytest.raises(LaunchError) as info:
        launcher.launch(REQUEST)
    assert len(rec.requests) == 1
    assert (info.value.retryable, info.value.status) == (False, 422)
    message = str(info.value)
    assert message.startswith("github launcher acme/models: POST https://api.github.com/repos/")
    assert 'got HTTP 422 {"message":"Invalid request"}; expected HTTP 204' in message


def test_kfp_creates_a_v2beta1_run_and_reads_its_state() -> None:
    rec = Recorder(
        httpx.Response(200, json={"run_id": "r-42", "state": "PENDING"}),
        httpx.Response(200, json={"run_id": "r-42", "state": "SUCCEEDED"}),
    )
    launcher = KfpLauncher(
        "http://kfp:8888/", "pipe-1", "ver-2", experiment_id="exp-3",
        parameters={"model_name": "{model}", "window_end": "{window_end}", "epochs": 3},
        client=rec.client(), secret="tok", **fast(),
    )
    ref = launcher.launch(REQUEST)
    sent = rec.requests[0]
    assert (sent.method, str(sent.url)) == ("POST", "http://kfp:8888/apis/v2beta1/runs")
    assert sent.headers["Authorization"] == "Bearer tok"
    assert rec.body() == {
        "display_name": "driftloop carloan dataset_drift",
        "description": f"{REQUEST.sentence} (idempotency key {REQUEST.idempotency_key})",
        "experiment_id": "exp-3",
        "pipeline_version_reference": {"pipeline_id": "pipe-1", "pipeline_version_id": "ver-2"},
        "runtime_config": {"parameters": {
            "model_name": "carloan", "window_end": "2019-05-31T08:00:00Z", "epochs": 3}},
    }
    assert ref.run_id == "r-42"
    status = launcher.status(ref)
    assert (rec.requests[1].method, rec.requests[1].url.path) == ("GET", "/apis/v2beta1/runs/r-42")
    assert status.state == "succeeded"


def test_kfp_retries_5xx_and_network_errors_then_gives_up_retryable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    rec = Recorder(httpx.Response(503, text="overloaded"), refuse, httpx.Response(502))
    launcher = KfpLauncher("http://kfp", "p", "v", client=rec.client(), **fast())
    with pytest.raises(LaunchError) as info:
        launcher.launch(REQUEST)
    assert len(rec.requests) == 3
    assert info.value.retryable is True
    assert info.value.status == 502
    assert "kfp launcher http://kfp: POST http://kfp/apis/v2beta1/runs failed after 3 attempts" \
        in str(info.value)


def test_kfp_default_parameters_are_model_and_reason() -> None:
    rec = Recorder(httpx.Response(200, json={"run_id": "r"}))
    KfpLauncher("http://kfp", "p", "v", client=rec.client(), **fast()).launch(REQUEST)
    body = rec.body()
    assert isinstance(body, dict)
    assert body["runtime_config"] == {"parameters": {"model": "carloan", "reason": "dataset_drift"}}
    assert "experiment_id" not in body


def test_argo_submits_from_workflow_template() -> None:
    rec = Recorder(
        httpx.Response(200, json={"metadata": {"name": "retrain-carloan-x7k2q"}}),
        httpx.Response(200, json={"status": {"phase": "Failed"}}),
    )
    launcher = ArgoLauncher("https://argo:2746", namespace="ml", client=rec.client(),
                            secret="argo-token", **fast())
    ref = launcher.launch(REQUEST)
    sent = rec.requests[0]
    assert (sent.method, str(sent.url)) == ("POST", "https://argo:2746/api/v1/workflows/ml/submit")
    assert sent.headers["Authorization"] == "Bearer argo-token"
    assert rec.body() == {
        "resourceKind": "WorkflowTemplate",
        "resourceName": "retrain",
        "submitOptions": {
            "generateName": "retrain-carloan-",
            "parameters": ["model=carloan", "reason=dataset_drift"],
            "labels": "driftloop/model=carloan,driftloop/reason=dataset_drift",
        },
    }
    assert ref.run_id == "retrain-carloan-x7k2q"
    status = launcher.status(ref)
    assert rec.requests[1].url.path == "/api/v1/workflows/ml/retrain-carloan-x7k2q"
    assert status.state == "failed"


def test_argo_configured_parameters_take_placeholders() -> None:
    rec = Recorder(httpx.Response(200, json={"metadata": {"name": "w"}}))
    launcher = ArgoLauncher("http://argo", parameters={"key": "{idempotency_key}"},
                            client=rec.client(), **fast())
    launcher.launch(REQUEST)
    body = rec.body()
    assert isinstance(body, dict)
    assert body["submitOptions"]["parameters"] == [f"key={REQUEST.idempotency_key}"]


def test_argo_403_is_final() -> None:
    rec = Recorder(httpx.Response(403, json={"code": 7, "message": "forbidden"}))
    with pytest.raises(LaunchError) as info:
        ArgoLauncher("http://argo", client=rec.client(), **fast()).launch(REQUEST)
    assert (info.value.retryable, info.value.status, len(rec.requests)) == (False, 403, 1)


def test_airflow_dag_run_id_is_the_idempotency_key() -> None:
    rec = Recorder(
        httpx.Response(200, json={"dag_run_id": REQUEST.idempotency_key, "state": "queued"}),
        httpx.Response(200, json={"state": "success"}),
    )
    launcher = AirflowLauncher("http://airflow:8080", "retrain_carloan", client=rec.client(),
                               secret="jwt", **fast())
    ref = launcher.launch(REQUEST)
    sent = rec.requests[0]
    assert (sent.method, str(sent.url)) == (
        "POST", "http://airflow:8080/api/v2/dags/retrain_carloan/dagRuns")
    assert sent.headers["Authorization"] == "Bearer jwt"
    assert rec.body() == {
        "dag_run_id": REQUEST.idempotency_key,
        "logical_date": None,
        "conf": PAYLOAD,
    }
    assert ref.run_id == REQUEST.idempotency_key
    assert launcher.status(ref).state == "succeeded"
    assert rec.requests[1].url.path == (
        f"/api/v2/dags/retrain_carloan/dagRuns/{REQUEST.idempotency_key}")


def test_airflow_409_means_already_launched_and_gives_the_same_ref() -> None:
    first = Recorder(httpx.Response(200, json={}))
    again = Recorder(httpx.Response(409, json={"detail": "DAGRun exists"}))
    ref1 = AirflowLauncher("http://a", "d", client=first.client(), **fast()).launch(REQUEST)
    ref2 = AirflowLauncher("http://a", "d", client=again.client(), **fast()).launch(REQUEST)
    assert ref1 == ref2
    assert len(again.requests) == 1


def test_airflow_retries_429_and_5xx_but_not_400() -> None:
    rec = Recorder(httpx.Response(429), httpx.Response(500), httpx.Response(200, json={}))
    AirflowLauncher("http://a", "d", client=rec.client(), **fast()).launch(REQUEST)
    assert len(rec.requests) == 3
    bad = Recorder(httpx.Response(400, json={"detail": "logical_date required"}))
    with pytest.raises(LaunchError, match=r"airflow launcher http://a dag d: POST .* got HTTP 400"):
        AirflowLauncher("http://a", "d", client=bad.client(), **fast()).launch(REQUEST)
    assert len(bad.requests) == 1


def test_unknown_placeholder_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match=r"unknown placeholder \{modle\}"):
        ArgoLauncher("http://argo", parameters={"m": "{modle}"})


HOSTILE_RUN_ID = "../../x?y=1#z"


def test_kfp_status_quotes_the_run_id_as_one_path_segment() -> None:
    rec = Recorder(httpx.Response(200, json={"state": "RUNNING"}))
    launcher = KfpLauncher("http://kfp", "p", "v", client=rec.client(), **fast())
    launcher.status(RunRef("kfp", HOSTILE_RUN_ID, "k"))
    sent = rec.requests[0].url
    assert sent.raw_path == b"/apis/v2beta1/runs/..%2F..%2Fx%3Fy%3D1%23z"
    assert sent.query == b""


def test_kfp_run_id_from_the_answer_is_quoted_in_the_ref_url() -> None:
    rec = Recorder(httpx.Response(200, json={"run_id": "a/b?c"}))
    ref = KfpLauncher("http://kfp", "p", "v", client=rec.client(), **fast()).launch(REQUEST)
    assert ref.url == "http://kfp/apis/v2beta1/runs/a%2Fb%3Fc"


def test_argo_status_quotes_namespace_and_workflow_name() -> None:
    rec = Recorder(httpx.Response(200, json={"status": {"phase": "Running"}}))
    launcher = ArgoLauncher("http://argo", namespace="ml team", client=rec.client(), **fast())
    launcher.status(RunRef("argo", HOSTILE_RUN_ID, "k"))
    sent = rec.requests[0].url
    assert sent.raw_path == b"/api/v1/workflows/ml%20team/..%2F..%2Fx%3Fy%3D1%23z"
    assert sent.query == b""


@pytest.mark.parametrize("run_id", ["", ".", ".."])
@pytest.mark.parametrize("kind", ["kfp", "argo", "airflow"])
def test_dot_segment_run_id_is_refused_without_a_request(kind: str, run_id: str) -> None:
    rec = Recorder(httpx.Response(200, json={}))
    launcher = {
        "kfp": lambda: KfpLauncher("http://kfp", "p", "v", client=rec.client(), **fast()),
        "argo": lambda: ArgoLauncher("http://argo", client=rec.client(), **fast()),
        "airflow": lambda: AirflowLauncher("http://af", "d", client=rec.client(), **fast()),
    }[kind]()
    expected = re.escape("expected a non-empty name other than '.' and '..'")
    with pytest.raises(LaunchError, match=expected) as info:
        launcher.status(RunRef(kind, run_id, "k"))
    assert info.value.retryable is False
    assert rec.requests == []
