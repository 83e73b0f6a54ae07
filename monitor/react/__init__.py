"""Acting on what the stream found: the retrain reactor.

- :mod:`~monitor.react.reactor`: ``RetrainReactor``: window, performance, alert and
  manual evidence -> ``triggers.policy.decide`` -> state and run persisted -> launch
  -> run status polled;
- :mod:`~monitor.react.support`: config -> policy and launchers, the mapping between
  the policy's state and the store's row, the reactor's answer (``Outcome``).

May import: ``monitor.stream`` (window outputs), ``monitor.store``, ``monitor.config``,
``monitor.metrics``, ``triggers``.
"""

from monitor.react.reactor import RetrainReactor
from monitor.react.support import Outcome, build_launchers, policy_for

__all__ = ["Outcome", "RetrainReactor", "build_launchers", "policy_for"]
