"""Bad HTTP input never stops the service: random bodies, headers, paths and queries on
every route answer a 4xx with a readable ``detail`` (or a 2xx), never a 5xx (except 503
for a store that is down on purpose), never a stack trace, and a rejected request
records nothing in the store."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import OperationalError

from tests.monitor.test_api_triggers import (
    AUTH,
    MAX_BYTES,
    TOKEN,
    Harness,
    alertmanager,
    grafana_body,
    grafana_signed,
)

FUZZ = settings(derandomize=True, max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])
MUTATING = ("/api/v1/alerts", "/api/v1/models/carloan/retrain")


@contextmanager
def harness() -> Iterator[Harness]:
    with tempfile.TemporaryDirectory() as tmp:
        built = Harness(Path(tmp), grafana=True)
        try:
            yield built
        finally:
            built.store.close()


@pytest.fixture(scope="module")
def shared() -> Iterator[Harness]:
    """One app for all examples of a hypothesis test (building one per example is slow);
    each request is checked against what the store held just before it."""
    with harness() as built:
        yield built


def recorded(h: Harness) -> tuple[int, int, int]:
    return len(h.store.alerts(limit=10_000)), len(h.store.runs("carloan")), len(
        h.launcher.launched)


def assert_answer_is_safe(response: httpx.Response, *, store_down: bool = False) -> None:
    text = response.text
    where = f"{response.request.method} {response.request.url} -> {response.status_code}"
    assert "Traceback" not in text and 'File "' not in text, f"{where}: {text[:300]}"
    allowed_5xx = {503} if store_down else set()
    assert response.status_code < 500 or response.status_code in allowed_5xx, (
        f"{where}: {text[:300]}")
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body, dict), f"{where}: {text[:300]}"
        detail = body.get("detail")
        assert isinstance(detail, str) and detail.strip(), f"{where}: {text[:300]}"
        assert len(detail) < 2000, f"{where}: a detail of {len(detail)} characters"


# -- strategies ------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=4),
    max_leaves=12,
)
# stdlib json: orjson refuses integers past 64 bits, which a sender may still send
json_bodies = json_values.map(lambda value: json.dumps(value).encode())
ALERT_KEYS = ["version", "status", "receiver", "groupKey", "alerts", "truncatedAlerts",
              "externalURL", "groupLabels", "commonLabels"]
ITEM_KEYS = ["status", "labels", "annotations", "startsAt", "endsAt", "fingerprint",
             "generatorURL"]


@st.composite
def mutated_alert(draw: st.DrawFn) -> bytes:
    """A real Alertmanager payload with one top-level or alert field replaced."""
    payload = alertmanager(fingerprint=draw(st.text(max_size=8)))
    value = draw(json_values)
    if draw(st.booleans()):
        payload[draw(st.sampled_from(ALERT_KEYS))] = value
    else:
        payload["alerts"][0][draw(st.sampled_from(ITEM_KEYS))] = value
    return json.dumps(payload).encode()


bodies = st.one_of(
    st.binary(max_size=600),
    json_bodies,
    mutated_alert(),
    st.sampled_from([b"", b"null", b"{}", b"[]", b'"x"', b"\xff\xfe", b"{" * 400,
                     b"[" * 5000 + b"]" * 5000, b'{"version": ["4"]}', b'{"version": {}}']),
)
auth_headers: st.SearchStrategy[dict[str, Any]] = st.sampled_from([
    {}, AUTH, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": "Bearer"}, {"Authorization": "Bearer  "},
    {"Authorization": b"Bearer \xe9\xff"}, {"Authorization": "Bearer " + "x" * 5000},
    {"X-Grafana-Alerting-Signature": "00" * 32},
    {"X-Grafana-Alerting-Signature": "not hex"},
    {**AUTH, "X-Grafana-Alerting-Signature": ""},
])
content_types = st.sampled_from([None, "application/json", "text/plain",
                                 "application/x-www-form-urlencoded",
                                 "multipart/form-data; boundary=x",
                                 "application/json; charset=latin-1"])
# the app's own origin (TestClient's host), foreign ones, and ones that are not origins
origins: st.SearchStrategy[Any] = st.sampled_from([
    None, "http://testserver", "http://evil.example", "null", "",
    "http://testserver.evil.example", "http://[::1", b"http://\xe9vil.example"])
path_params = st.one_of(
    st.text(max_size=40),
    st.text(min_size=300, max_size=3000, alphabet="ab\u00e9\u4e2d/%."),
    st.sampled_from(["carloan", "..", "../..", "%2e%2e", "carloan%00", "CARLOAN", " carloan",
                     "carloan/../carloan", "\u202ecarloan", "\x00", "%", "%%", "a" * 10_000]),
)
limits = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.sampled_from(["-1", "0", "1", "1000", "1001", "abc", "1e3", "10**9", "", " 5", "1.5",
                     "999999999999999999999999999", "\u0661"]),
)


def model_url(model: str, suffix: str = "", raw: bool = False) -> str:
    return f"/api/v1/models/{model if raw else quote(model, safe='')}{suffix}"


# -- mutating routes -----------------------------------------------------------------------
@FUZZ
@given(body=bodies, headers=auth_headers, content_type=content_types,
       route=st.sampled_from(MUTATING), signed=st.booleans(), origin=origins)
def test_random_bodies_to_mutating_routes_are_answered_safely(
        shared: Harness, body: bytes, headers: dict[str, Any], content_type: str | None,
        route: str, signed: bool, origin: Any) -> None:
    h = shared
    sent = dict(headers)
    if content_type is not None:
        sent["Content-Type"] = content_type
    if origin is not None:
        sent["Origin"] = origin
    if signed:  # a correct Grafana HMAC of whatever the body is
        sent.update(grafana_signed(body))
    before = recorded(h)
    response = h.client.post(route, content=body, headers=sent)
    assert_answer_is_safe(response)
    if response.status_code >= 400:
        assert recorded(h) == before, f"{route} {response.status_code} recorded something"
    if origin not in (None, "http://testserver"):
        assert response.status_code == 403, f"{route} from Origin {origin!r}"


@FUZZ
@given(model=path_params, body=st.one_of(st.just(b""), json_bodies),
       headers=auth_headers, key=st.one_of(st.none(), st.text(max_size=300)))
def test_manual_retrain_with_random_models_and_bodies_is_answered_safely(
        shared: Harness, model: str, body: bytes, headers: dict[str, Any],
        key: str | None) -> None:
    h = shared
    sent = dict(headers)
    if key is not None and key.isprintable() and key.isascii():
        sent["Idempotency-Key"] = key
    before = recorded(h)
    response = h.client.post(model_url(model, "/retrain"), content=body, headers=sent)
    assert_answer_is_safe(response)
    if response.status_code >= 400:
        assert recorded(h) == before


def test_rejected_requests_of_each_kind_record_nothing() -> None:
    with harness() as h:
        cases = [
            ("/api/v1/alerts", {}, orjson.dumps(alertmanager()), 401),
            ("/api/v1/alerts", {"Authorization": "Bearer wrong"}, orjson.dumps(alertmanager()),
             401),
            ("/api/v1/alerts", {"X-Grafana-Alerting-Signature": "00" * 32}, grafana_body(), 401),
            ("/api/v1/alerts", AUTH, b"\xff", 400),
            ("/api/v1/models/carloan/retrain", {}, b"", 401),
            ("/api/v1/models/carloan/retrain", AUTH, b'{"request_id": ""}', 422),
            ("/api/v1/models/carloan/retrain", AUTH, b'{"surprise": 1}', 422),
            ("/api/v1/models/churn/retrain", AUTH, b"", 404),
        ]
        for route, headers, body, status in cases:
            response = h.client.post(route, content=body, headers=headers)
            assert response.status_code == status, (route, body, response.text)
            assert_answer_is_safe(response)
        assert recorded(h) == (0, 0, 0)


@pytest.mark.parametrize("route", MUTATING)
@pytest.mark.parametrize("announced", [True, False], ids=["content-length", "chunked"])
def test_oversized_bodies_are_413_and_record_nothing(route: str, announced: bool) -> None:
    body = orjson.dumps(alertmanager(padding="x" * (MAX_BYTES * 4)))
    with harness() as h:
        content: Any = body if announced else iter([body[i:i + 1000]
                                                    for i in range(0, len(body), 1000)])
        response = h.client.post(route, content=content, headers=AUTH)
        assert response.status_code == 413, response.text
        assert_answer_is_safe(response)
        assert f"expected at most {MAX_BYTES} bytes" in response.json()["detail"]
        assert recorded(h) == (0, 0, 0)


# -- read routes ---------------------------------------------------------------------------
@FUZZ
@given(model=path_params, limit=st.one_of(st.none(), limits), raw=st.booleans(),
       suffix=st.sampled_from(["", "/windows", "/canary", "/reports/latest", "/"]))
def test_read_routes_with_random_paths_and_queries_are_answered_safely(
        shared: Harness, model: str, limit: str | None, raw: bool, suffix: str) -> None:
    h = shared
    params = None if limit is None else {"limit": limit}
    try:
        response = h.client.get(model_url(model, suffix, raw=raw), params=params)
    except (httpx.InvalidURL, UnicodeEncodeError):
        return  # the client refused to send it: nothing reached the service
    assert_answer_is_safe(response)


@pytest.mark.parametrize("limit, status", [
    ("-1", 422), ("0", 422), ("abc", 422), (str(10**9), 422), ("1.5", 422), ("", 422),
    ("1", 200), ("1000", 200)])
def test_windows_limit_outside_the_range_is_422_with_a_reason(limit: str, status: int) -> None:
    with harness() as h:
        response = h.client.get("/api/v1/models/carloan/windows", params={"limit": limit})
        assert response.status_code == status, response.text
        assert_answer_is_safe(response)
        if status == 422:
            assert "limit" in response.json()["detail"]


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("route", ["/healthz", "/readyz", "/metrics", "/api/v1/models",
                                   "/api/v1/models/carloan", *MUTATING])
def test_wrong_methods_are_4xx_with_a_detail(method: str, route: str) -> None:
    with harness() as h:
        response = h.client.request(method, route, content=b"{}", headers=AUTH)
        assert 400 <= response.status_code < 500
        assert_answer_is_safe(response)
        assert recorded(h) == (0, 0, 0)


@FUZZ
@given(accept=st.text(max_size=80), route=st.sampled_from(
    ["/healthz", "/readyz", "/metrics", "/api/v1/models", "/openapi.json", "/docs"]))
def test_fixed_routes_with_random_accept_headers_are_answered_safely(
        shared: Harness, accept: str, route: str) -> None:
    h = shared
    try:
        response = h.client.get(route, headers={"Accept": accept})
    except UnicodeEncodeError:
        return
    assert_answer_is_safe(response)


# -- a store that is down ------------------------------------------------------------------
def _down(*_args: Any, **_kwargs: Any) -> Any:
    raise OperationalError("SELECT", {}, Exception("could not connect to server"))


@pytest.mark.parametrize("method, route, body", [
    ("GET", "/api/v1/models", None),
    ("GET", "/api/v1/models/carloan", None),
    ("GET", "/api/v1/models/carloan/windows", None),
    ("POST", "/api/v1/alerts", orjson.dumps(alertmanager())),
    ("POST", "/api/v1/models/carloan/retrain", b""),
])
def test_store_down_is_503_with_a_reason_on_every_route(
        method: str, route: str, body: bytes | None, monkeypatch: pytest.MonkeyPatch) -> None:
    with harness() as h:
        for name in ("windows", "decisions", "runs", "get_canary", "get_trigger_state",
                     "record_alert", "run_by_key", "create_run", "log_decision",
                     "put_trigger_state", "trigger_states", "alerts"):
            monkeypatch.setattr(h.store, name, _down)
        response = h.client.request(method, route, content=body, headers=AUTH)
        assert response.status_code == 503, response.text
        assert_answer_is_safe(response, store_down=True)
        assert "state store unavailable" in response.json()["detail"]
        assert h.launcher.launched == []
