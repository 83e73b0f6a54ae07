"""Acting on what the stream found: the retrain reactor.

- :mod:`~monitor.react.reactor`: ``RetrainReactor``: window, performance, alert and
  manual evidence -> ``triggers.policy.decide`` -> state and run persisted -> launch
  -> run status polled;
- :mod:`~monitor.react.support`: config -> policy, launchers and the secret values to
  mask (``known_secrets``), the mapping between the policy's state and the store's row,
  the reactor's answer (``Outcome``).

May import: ``monitor.stream`` (window outputs), ``monitor.store``, ``monitor.config``,
``monitor.metrics``, ``triggers``.
"""

from monitor.react.reactor import FINISHED_RUN_STATUSES, RetrainReactor
from monitor.react.support import Outcome, build_launchers, known_secrets, policy_for

__all__ = [
    "FINISHED_RUN_STATUSES",
    "Outcome",
    "RetrainReactor",
    "build_launchers",
    "known_secrets",
    "policy_for",
]
