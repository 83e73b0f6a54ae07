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
    """``launcher: {type: command}``: a local program, without a shell."""

    type: Literal["command"]
    """command"""
    argv: list[str] = Field(min_length=1)
    """Program and arguments, run without a shell; placeholders {model}, {version}, {reason},
    {window_start}, {window_end}, {idempotency_key}."""
    timeout: Duration = 3600.0
    """The run is stopped (its whole process group) after this long."""
    cwd: str | None = None
    """Working directory of the command."""
    env: dict[str, str] = Field(default_factory=dict)
    """Environment of the command besides PATH, HOME, LANG and the DRIFTLOOP_* values; nothing
    else of the service's environment is passed."""


class WebhookLauncher(Section):
    """``launcher: {type: webhook}``: a signed JSON POST."""

    type: Literal["webhook"]
    """webhook"""
    url: str
    """URL the launch is POSTed to (JSON body, X-Driftloop-Idempotency-Key header)."""
    secret_env: str | None = None
    """Environment variable holding the HMAC secret of the X-Driftloop-Signature header."""
    timeout: Duration = 10.0
    """Timeout of one HTTP call."""


class KfpLauncher(Section):
    """``launcher: {type: kfp}``: a Kubeflow Pipelines v2 run."""

    type: Literal["kfp"]
    """kfp"""
    host: str
    """Kubeflow Pipelines API endpoint."""
    pipeline_id: str
    """Pipeline to run."""
    pipeline_version_id: str
    """Pipeline version to run."""
    experiment_id: str | None = None
    """Experiment the run belongs to."""
    parameters: dict[str, Any] = Field(default_factory=dict)
    """Run parameters; values may hold placeholders."""
    token_env: str | None = None
    """Environment variable holding the bearer token."""
    timeout: Duration = 10.0
    """Timeout of one HTTP call."""


class ArgoLauncher(Section):
    """``launcher: {type: argo}``: an Argo Workflows template submission."""

    type: Literal["argo"]
    """argo"""
    host: str
    """Argo Workflows server."""
    namespace: str = "argo"
    """Namespace of the workflow template."""
    template: str = "retrain"
    """WorkflowTemplate submitted."""
    parameters: dict[str, str] = Field(default_factory=dict)
    """Workflow parameters; values may hold placeholders."""
    token_env: str | None = None
    """Environment variable holding the bearer token."""
    timeout: Duration = 10.0
    """Timeout of one HTTP call."""


class GithubLauncher(Section):
    """``launcher: {type: github}``: a repository_dispatch event."""

    type: Literal["github"]
    """github"""
    repository: Annotated[str, Field(pattern=r"^[\w.-]+/[\w.-]+$")]
    """owner/name of the repository whose workflow listens for the dispatch."""
    event_type: str = "retrain"
    """event_type of the repository_dispatch."""
    api_url: str = "https://api.github.com"
    """GitHub API (or GitHub Enterprise) URL."""
    token_env: str = "GITHUB_TOKEN"
    """Environment variable holding the GitHub token."""
    timeout: Duration = 10.0
    """Timeout of one HTTP call."""


class AirflowLauncher(Section):
    """``launcher: {type: airflow}``: an Airflow 3 DAG run."""

    type: Literal["airflow"]
    """airflow"""
    host: str
    """Airflow 3 API server."""
    dag_id: str
    """DAG triggered; the idempotency key is the dag_run_id."""
    token_env: str | None = None
    """Environment variable holding the bearer token."""
    timeout: Duration = 10.0
    """Timeout of one HTTP call."""


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
