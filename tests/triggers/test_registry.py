from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from monitor.config import load_config
from triggers.launchers import (
    LAUNCHER_TYPES,
    AirflowLauncher,
    CommandLauncher,
    GithubLauncher,
    Launcher,
    build_launcher,
)


def config_section(launcher: dict[str, object]) -> dict[str, object]:
    """A launcher section as the service gets it: validated by monitor.config, then dumped."""
    config = load_config(data={"models": {"m": {"baseline": "b.json",
                                                 "retrain": {"launcher": launcher}}}}, environ={})
    section = config.models["m"].retrain.launcher
    assert section is not None
    return section.model_dump()


@pytest.mark.parametrize(
    "launcher",
    [
        {"type": "command", "argv": ["python", "train.py", "{model}"], "timeout": "30m"},
        {"type": "webhook", "url": "https://ci/hook", "secret_env": "HOOK_SECRET"},
        {"type": "kfp", "host": "http://kfp", "pipeline_id": "p", "pipeline_version_id": "v",
         "parameters": {"model": "{model}"}},
        {"type": "argo", "host": "http://argo", "namespace": "ml"},
        {"type": "github", "repository": "acme/models"},
        {"type": "airflow", "host": "http://af", "dag_id": "retrain", "token_env": "AF"},
    ],
)
def test_every_config_section_builds_its_launcher(launcher: dict[str, object]) -> None:
    built = build_launcher(config_section(launcher), client=httpx.Client(),
                           secret=SecretStr("s"), retry_wait_seconds=0)
    assert isinstance(built, Launcher)
    assert isinstance(built, LAUNCHER_TYPES[str(launcher["type"])])
    assert built.type == launcher["type"]


def test_secret_reaches_the_http_launcher() -> None:
    built = build_launcher({"type": "github", "repository": "a/b"}, secret=SecretStr("tok"))
    assert isinstance(built, GithubLauncher)
    assert built.secret == "tok"


def test_command_launcher_keeps_config_duration_in_seconds() -> None:
    built = build_launcher(config_section({"type": "command", "argv": ["x"], "timeout": "30m"}))
    assert isinstance(built, CommandLauncher)
    assert built.timeout == 1800.0


def test_unknown_type_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown launcher type 'kfpp'; known: command, webhook, "
                       "kfp, argo, github, airflow"):
        build_launcher({"type": "kfpp"})


def test_unknown_key_names_the_launcher() -> None:
    with pytest.raises(ValueError, match=r"airflow launcher: .*'dag'"):
        build_launcher({"type": "airflow", "host": "h", "dag": "x"})


def test_tracks_status_flags() -> None:
    assert AirflowLauncher.tracks_status and CommandLauncher.tracks_status
    assert not GithubLauncher.tracks_status


def test_redact_values_reach_the_command_launcher() -> None:
    built = build_launcher({"type": "command", "argv": ["x"]},
                           redact=["tok-1", SecretStr("pw-2")])
    assert isinstance(built, CommandLauncher)
    assert built.redact == ("tok-1", "pw-2")
