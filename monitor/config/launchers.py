"""``models.<name>.retrain.launcher``: one section per launcher type, told apart by ``type``.

Each section's fields are the constructor arguments of the launcher of the same
type in :mod:`triggers.launchers` (``*_env`` keys name environment variables
holding secrets, resolved by :func:`monitor.config.read_secret`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from monitor.config.base import Section
from monitor.config.values import (
    Duration,
)

__all__ = [
    "LAUNCHER_BY_TAG",
    "AirflowLauncher",
    "ArgoLauncher",
    "CommandLauncher",
    "GithubLauncher",
    "KfpLauncher",
    "LauncherConfig",
    "WebhookLauncher",
]


class CommandLauncher(Section):
    type: Literal["command"]
    argv: list[str] = Field(min_length=1)
    timeout: Duration = 3600.0
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)


class WebhookLauncher(Section):
    type: Literal["webhook"]
    url: str
    secret_env: str | None = None
    timeout: Duration = 10.0


class KfpLauncher(Section):
    type: Literal["kfp"]
    host: str
    pipeline_id: str
    pipeline_version_id: str
    experiment_id: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    token_env: str | None = None
    timeout: Duration = 10.0


class ArgoLauncher(Section):
    type: Literal["argo"]
    host: str
    namespace: str = "argo"
    template: str = "retrain"
    parameters: dict[str, str] = Field(default_factory=dict)
    token_env: str | None = None
    timeout: Duration = 10.0


class GithubLauncher(Section):
    type: Literal["github"]
    repository: Annotated[str, Field(pattern=r"^[\w.-]+/[\w.-]+$")]
    event_type: str = "retrain"
    api_url: str = "https://api.github.com"
    token_env: str = "GITHUB_TOKEN"
    timeout: Duration = 10.0


class AirflowLauncher(Section):
    type: Literal["airflow"]
    host: str
    dag_id: str
    token_env: str | None = None
    timeout: Duration = 10.0


LauncherConfig = Annotated[
    CommandLauncher
    | WebhookLauncher
    | KfpLauncher
    | ArgoLauncher
    | GithubLauncher
    | AirflowLauncher,
    Field(discriminator="type"),
]


LAUNCHER_BY_TAG: dict[str, type[BaseModel]] = {
    "command": CommandLauncher,
    "webhook": WebhookLauncher,
    "kfp": KfpLauncher,
    "argo": ArgoLauncher,
    "github": GithubLauncher,
    "airflow": AirflowLauncher,
}
