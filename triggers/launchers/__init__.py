"""Retraining launchers behind one small interface (see ``base.Launcher``)."""

from __future__ import annotations

from triggers.launch import (
    Launcher,
    LaunchError,
    LaunchRequest,
    RunRef,
    RunState,
    RunStatus,
)
from triggers.launchers.airflow import AirflowLauncher
from triggers.launchers.argo import ArgoLauncher
from triggers.launchers.command import CommandLauncher
from triggers.launchers.github import GithubLauncher
from triggers.launchers.kfp import KfpLauncher
from triggers.launchers.registry import LAUNCHER_TYPES, build_launcher
from triggers.launchers.webhook import WebhookLauncher

__all__ = [
    "LAUNCHER_TYPES",
    "AirflowLauncher",
    "ArgoLauncher",
    "CommandLauncher",
    "GithubLauncher",
    "KfpLauncher",
    "LaunchError",
    "LaunchRequest",
    "Launcher",
    "RunRef",
    "RunState",
    "RunStatus",
    "WebhookLauncher",
    "build_launcher",
]
