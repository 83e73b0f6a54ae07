"""``driftloop canary``: status tables and operator actions through the service's API."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from monitor.cli.main import build_parser, main
from monitor.errors import InputError
from monitor.store import Store
from tests.monitor.test_api_canary import TOKEN, Api
from tests.monitor.test_canary_reactor import MODEL


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    monkeypatch.setenv("CANARY_CLI_TOKEN", TOKEN)
    with Store(f"sqlite:///{tmp_path / 'state.db'}") as store:
        yield Api(store)


def args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["canary", *argv, "--model", MODEL,
                                      "--token-env", "CANARY_CLI_TOKEN"])


def run(api: Api, *argv: str) -> int:
    from monitor.cli.canary import run_canary

    return run_canary(args(*argv), client=api.client)


def test_canary_status_prints_the_canary_and_its_checks_as_tables(
        api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    api.rig.start_canary()
    api.rig.interval(champion=0.75, challenger=0.95)
    assert run(api, "status") == 0
    out = capsys.readouterr().out
    assert "canary of carloan" in out and "progressing" in out
    assert "1 of 2" in out  # passing in a row, of iterations
    assert "last verdict's checks" in out and "performance" in out
    assert run(api, "status", "--format", "json") == 0
    assert orjson.loads(capsys.readouterr().out)["verdict"] == "pass"


def test_canary_promote_prints_the_sentence_and_is_idempotent_by_request_id(
        api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    api.rig.start_canary()
    assert run(api, "promote", "--request-id", "cli-1", "--note", "ship it") == 0
    out = capsys.readouterr().out
    assert out.startswith(f"promote {MODEL} v2: operator request cli-1 by driftloop canary CLI")
    assert run(api, "promote", "--request-id", "cli-1") == 0
    assert "already handled" in capsys.readouterr().out
    assert api.rig.state().phase == "promoting"


def test_canary_action_refused_by_the_state_machine_exits_1(
        api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(api, "abort") == 1
    assert capsys.readouterr().out.startswith("refused: refused abort of carloan")


def test_canary_without_the_token_is_an_error_naming_the_status(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CANARY_CLI_TOKEN")
    with pytest.raises(InputError, match="HTTP 401: missing bearer token"):
        run(api, "rollback")


def test_canary_cli_unreachable_service_exits_2_with_one_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["canary", "status", "--model", MODEL, "--url", "http://127.0.0.1:9"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("driftloop: error: canary: cannot reach the service at "
                          "http://127.0.0.1:9") and err.count("\n") == 1
