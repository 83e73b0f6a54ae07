"""The one typed configuration of driftloop (``driftloop.yaml``), and nothing else.

- :mod:`~monitor.config.sections`: service-wide sections and the root ``Config``;
- :mod:`~monitor.config.model`: ``models.<name>`` (windows, drift, quality,
  performance, retrain, canary); :mod:`~monitor.config.launchers` its launchers;
- :mod:`~monitor.config.values`: durations, bounded numbers, ``auto``, the YAML loader;
- :mod:`~monitor.config.errors`: validation errors as ``config <key>: got <value>,
  expected <what>``;
- :mod:`~monitor.config.load`: ``load_config`` (YAML + ``DRIFTLOOP__`` overrides) and
  ``read_secret``, the only code of driftloop that reads the environment.

May import: ``monitor.errors``, and ``detectors`` for defaults it documents (``min_effect``).
"""

from monitor.config.launchers import (
    AirflowLauncher,
    ArgoLauncher,
    CommandLauncher,
    GithubLauncher,
    KfpLauncher,
    LauncherConfig,
    WebhookLauncher,
)
from monitor.config.load import ENV_PREFIX, load_config, read_secret
from monitor.config.model import (
    CanaryConfig,
    DriftConfig,
    FeatureDriftConfig,
    ModelConfig,
    PerformanceConfig,
    QualityConfig,
    RetrainConfig,
    WindowConfig,
)
from monitor.config.sections import (
    Config,
    JobsConfig,
    KafkaConfig,
    MlflowConfig,
    ReportsConfig,
    ServerConfig,
    StateConfig,
)
from monitor.config.values import ConfigError, parse_duration

__all__ = [
    "ENV_PREFIX",
    "AirflowLauncher",
    "ArgoLauncher",
    "CanaryConfig",
    "CommandLauncher",
    "Config",
    "ConfigError",
    "DriftConfig",
    "FeatureDriftConfig",
    "GithubLauncher",
    "JobsConfig",
    "KafkaConfig",
    "KfpLauncher",
    "LauncherConfig",
    "MlflowConfig",
    "ModelConfig",
    "PerformanceConfig",
    "QualityConfig",
    "ReportsConfig",
    "RetrainConfig",
    "ServerConfig",
    "StateConfig",
    "WebhookLauncher",
    "WindowConfig",
    "load_config",
    "parse_duration",
    "read_secret",
]
