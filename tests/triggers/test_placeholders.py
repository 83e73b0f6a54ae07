"""Launch placeholders: one pattern for every value, checked before any launcher uses it.

A ``{version}`` of ``--output=/etc/x`` would become an option of the training
command; ``$(curl ...)`` becomes shell injection in a workflow that
interpolates it. Every launcher must refuse such a value with a final
LaunchError and send or start nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import httpx
import pytest

from triggers.launch import PLACEHOLDER_PATTERN, check_placeholder_value
from triggers.launchers import (
    AirflowLauncher,
    ArgoLauncher,
    CommandLauncher,
    GithubLauncher,
    KfpLauncher,
    Launcher,
    LaunchError,
    LaunchRequest,
    RunRef,
    WebhookLauncher,
)

REQUEST = LaunchRequest(
    "carloan", "3", "dataset_drift", datetime(2019, 5, 1, tzinfo=UTC),
    datetime(2019, 5, 31, 8, 0, 0, 123456, tzinfo=UTC), "carloan-dataset_drift-0123456789abcdef",
    "retrain carloan: dataset drift in 2 consecutive windows (share 0.57 >= 0.50)",
)


@pytest.mark.parametrize(
    "value",
    [
        "", "3", "12", "carloan", "churn-v2", "Car_Loan.v1", "team/carloan",
        "models:/carloan@champion",
        "2019-05-31T08:00:00Z", "2019-05-31T08:00:00.123456Z", "2019-05-31T08:00:00+02:00",
        "carloan-dataset_drift-0123456789abcdef", "manual", "estimated_performance_drop",
        "a" * 200, "dGVzdA==",
    ],
)
def test_placeholder_value_of_the_documented_form_passes(value: str) -> None:
    assert check_placeholder_value("version", value) == value


@pytest.mark.parametrize(
    "value",
    [
        "--output=/etc/x", "-x", "a b", "a\tb", "a\nb", "3\n", "a;b", "$(id)", "`id`", "a|b", "a&b",
        "a>b", "a<b", "a'b", 'a"b', "a*", "~root", "a\\b", "a,b", "a{b}", "a#b", "a!b", "a%b",
        "a" * 201, "ü",
    ],
)
def test_placeholder_value_with_option_or_shell_syntax_is_a_final_launch_error(value: str) -> None:
    with pytest.raises(LaunchError) as info:
        check_placeholder_value("version", value)
    assert info.value.retryable is False
    message = str(info.value)
    assert message.startswith("launch placeholder {version}: got ")
    assert PLACEHOLDER_PATTERN in message


def test_refusal_message_bounds_and_escapes_the_value() -> None:
    with pytest.raises(LaunchError) as info:
        check_placeholder_value("reason", "x\r\nforged line" + "y" * 10_000)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message
    assert len(message) < 600


class _Recorder:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json={"run_id": "r", "metadata": {"name": "w"}})

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))


FAST = {"max_attempts": 1, "retry_wait_seconds": 0.0}
HTTP_LAUNCHERS: dict[str, Callable[[httpx.Client], Launcher]] = {
    "webhook": lambda c: WebhookLauncher("http://hook/x", client=c, **FAST),
    "kfp": lambda c: KfpLauncher("http://kfp", "p", "v", client=c, **FAST),
    "argo": lambda c: ArgoLauncher("http://argo", client=c, **FAST),
    "github": lambda c: GithubLauncher("acme/models", client=c, **FAST),
    "airflow": lambda c: AirflowLauncher("http://af", "d", client=c, **FAST),
}
BAD = [
    ("version", "--output=/etc/x"),
    ("reason", "drift; rm -rf /"),
    ("model", "-carloan"),
    ("idempotency_key", "k$(id)"),
]


@pytest.mark.parametrize("kind", sorted(HTTP_LAUNCHERS))
@pytest.mark.parametrize(("field", "value"), BAD)
def test_http_launcher_refuses_a_bad_placeholder_and_sends_nothing(
    kind: str, field: str, value: str
) -> None:
    rec = _Recorder()
    launcher = HTTP_LAUNCHERS[kind](rec.client())
    with pytest.raises(LaunchError) as info:
        launcher.launch(replace(REQUEST, **{field: value}))
    assert info.value.retryable is False
    assert f"{{{field}}}" in str(info.value)
    assert rec.requests == []


@pytest.mark.parametrize(("field", "value"), BAD)
def test_command_launcher_refuses_a_bad_placeholder_and_starts_nothing(
    field: str, value: str
) -> None:
    launcher = CommandLauncher([sys.executable, "-c", "pass", "{version}"])
    request = replace(REQUEST, **{field: value})
    with pytest.raises(LaunchError) as info:
        launcher.launch(request)
    assert info.value.retryable is False
    assert f"{{{field}}}" in str(info.value)
    ref = RunRef("command", "pid-0", request.idempotency_key)
    assert launcher.status(ref).state == "unknown"


def test_window_times_with_fractions_reach_the_target_unchanged() -> None:
    rec = _Recorder()
    KfpLauncher("http://kfp", "p", "v", parameters={"end": "{window_end}"}, client=rec.client(),
                **FAST).launch(REQUEST)
    assert b'"end":"2019-05-31T08:00:00.123456Z"' in rec.requests[0].content
