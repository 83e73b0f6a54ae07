"""Acting on what the stream found: the retrain reactor and the canary reactor.

- :mod:`~monitor.react.reactor`: ``RetrainReactor``: window, performance, alert and
  manual evidence -> ``triggers.policy.decide`` -> state and run persisted -> launch
  -> run status polled;
- :mod:`~monitor.react.support`: config -> policy, launchers and the secret values to
  mask (``known_secrets``), the mapping between the policy's state and the store's row,
  the reactor's answer (``Outcome``);
- :mod:`~monitor.react.canary`: ``CanaryReactor``: the canary job's tick (apply pending
  registry moves and hooks, find new challengers, judge intervals), operator requests
  and registry events; :mod:`~monitor.react.canary_versions` finds the challenger in the
  registry, :mod:`~monitor.react.canary_support` builds policies and deploy hooks.

May import: ``monitor.stream`` (window outputs), ``monitor.store``, ``monitor.config``,
``monitor.metrics``, ``triggers``.
"""

from monitor.react.canary import CanaryReactor
from monitor.react.canary_support import (
    RUN_TAG,
    CanaryOutcome,
    build_hooks,
    canary_policies,
    describe,
)
from monitor.react.reactor import FINISHED_RUN_STATUSES, RetrainReactor
from monitor.react.support import Outcome, build_launchers, known_secrets, policy_for

__all__ = [
    "FINISHED_RUN_STATUSES",
    "RUN_TAG",
    "CanaryOutcome",
    "CanaryReactor",
    "Outcome",
    "RetrainReactor",
    "build_hooks",
    "build_launchers",
    "canary_policies",
    "describe",
    "known_secrets",
    "policy_for",
]
