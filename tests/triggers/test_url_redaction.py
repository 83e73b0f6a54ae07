"""Configured URLs may carry credentials (userinfo, ``?token=``): they never leave in
a RunRef, a RunStatus or a LaunchError, whatever path the launch took."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from triggers.launchers import (
    AirflowLauncher,
    ArgoLauncher,
    GithubLauncher,
    KfpLauncher,
    Launcher,
    LaunchError,
    LaunchRequest,
    RunRef,
    WebhookLauncher,
)
from triggers.redact import mask, redact_url

REQUEST = LaunchRequest(
    "carloan", "3", "dataset_drift", datetime(2019, 5, 1, tzinfo=UTC),
    datetime(2019, 5, 31, 8, tzinfo=UTC), "carloan-dataset_drift-0123456789abcdef", "retrain",
)
HOOK = "https://user:pw-9c1d@hooks.example/x?token=SECRET-7f3a&team=ml"
HOST = "https://admin:pw-9c1d@ci.example:8443"
BEARER = "bearer-SECRET-55e0"
LEAKS = ("pw-9c1d", "SECRET-7f3a", "token=", BEARER)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (HOOK, "https://hooks.example/x"),
        ("https://user:pw@Hooks.Example:8443/a/b;p?q=1#frag", "https://hooks.example:8443/a/b;p"),
        ("http://[::1]:8080/hook?k=v", "http://[::1]:8080/hook"),
        ("http://kfp", "http://kfp"),
        ("http://h:notaport/x?t=s", "http://h/x"),
    ],
)
def test_redact_url_keeps_scheme_host_port_and_path(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_mask_hides_every_secret_and_ignores_empty_and_tiny_ones() -> None:
    assert mask("a SECRET b SECRETX t", ["SECRET", "", "t"]) == "a [redacted] b [redacted]X t"


def leak_free(*texts: object) -> None:
    for text in texts:
        for leak in LEAKS:
            assert leak not in str(text), f"{leak!r} leaked in {text!r}"


def echo_back(request: httpx.Request) -> str:
    """What a careless server answers: the URL and headers it was given."""
    return f"bad request {request.url} auth={request.headers.get('Authorization')}"


FAST = {"max_attempts": 2, "retry_wait_seconds": 0.0}
LAUNCHERS: dict[str, Callable[[httpx.Client], Launcher]] = {
    "webhook": lambda c: WebhookLauncher(HOOK, client=c, secret=BEARER, **FAST),
    "kfp": lambda c: KfpLauncher(HOST, "p", "v", client=c, secret=BEARER, **FAST),
    "argo": lambda c: ArgoLauncher(HOST, client=c, secret=BEARER, **FAST),
    "github": lambda c: GithubLauncher("acme/models", api_url=HOST, client=c, secret=BEARER,
                                       **FAST),
    "airflow": lambda c: AirflowLauncher(HOST, "d", client=c, secret=BEARER, **FAST),
}
ANSWERS = {
    "webhook": {"run_id": "job-7"},
    "kfp": {"run_id": "r-1", "state": "RUNNING"},
    "argo": {"metadata": {"name": "w-1"}, "status": {"phase": "Running"}},
    "github": None,
    "airflow": {"state": "running"},
}


def client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


@pytest.mark.parametrize("kind", sorted(LAUNCHERS))
def test_launch_and_status_carry_no_url_secret(kind: str) -> None:
    answer = ANSWERS[kind]

    def ok(request: httpx.Request) -> httpx.Response:
        return httpx.Response(204) if answer is None else httpx.Response(200, json=answer)

    launcher = LAUNCHERS[kind](client(ok))
    ref = launcher.launch(REQUEST)
    leak_free(ref, ref.to_dict(), launcher.status(ref))


@pytest.mark.parametrize("kind", sorted(LAUNCHERS))
@pytest.mark.parametrize("status_code", [400, 503])
def test_http_error_messages_carry_no_url_secret(kind: str, status_code: int) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status_code, text=echo_back(request))

    with pytest.raises(LaunchError) as info:
        LAUNCHERS[kind](client(refuse)).launch(REQUEST)
    assert "hooks.example" in str(info.value) or "ci.example" in str(info.value)
    leak_free(info.value, info.value.reason, info.value.args)


@pytest.mark.parametrize("kind", sorted(LAUNCHERS))
def test_network_error_messages_carry_no_url_secret(kind: str) -> None:
    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {request.url}", request=request)

    with pytest.raises(LaunchError) as info:
        LAUNCHERS[kind](client(unreachable)).launch(REQUEST)
    assert info.value.retryable is True
    leak_free(info.value, info.value.reason)


@pytest.mark.parametrize("kind", ["kfp", "argo", "airflow"])
def test_status_errors_carry_no_url_secret(kind: str) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, text=echo_back(request))

    ref = RunRef(kind, "r-1", REQUEST.idempotency_key)
    with pytest.raises(LaunchError) as info:
        LAUNCHERS[kind](client(refuse)).status(ref)
    leak_free(info.value, info.value.reason)


def test_unusable_url_is_a_final_launch_error_without_its_secrets() -> None:
    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request expected")

    url = "http://user:pw-9c1d@hooks.example:notaport/x?token=SECRET-7f3a"
    with pytest.raises(LaunchError) as info:
        WebhookLauncher(url, client=client(never), **FAST).launch(REQUEST)
    assert info.value.retryable is False
    assert "InvalidURL" in str(info.value)
    leak_free(info.value, info.value.reason)


def test_echoed_body_is_one_line_and_a_secret_at_the_cut_leaves_no_fragment() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        # the bearer token starts 4 characters before the 300-character cut
        body = "bad\r\nINFO forged " + "x" * (296 - len("bad\r\nINFO forged ")) + BEARER
        return httpx.Response(400, text=body)

    with pytest.raises(LaunchError) as info:
        LAUNCHERS["kfp"](client(refuse)).launch(REQUEST)
    message = str(info.value)
    assert "\r" not in message and "\n" not in message
    assert "bad\\r\\nINFO forged" in message
    assert BEARER[:4] not in message
