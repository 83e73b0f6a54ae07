"""The state store: everything that must survive a restart (design section 9).

- :mod:`~monitor.store.database`: ``Store`` (open, migrate, short transactions) and
  ``Transaction`` (one unit of work); window results, checkpoints and offsets;
- :mod:`~monitor.store.join`: label-join state (pending predictions and labels);
- :mod:`~monitor.store.actions`: trigger state, retrain runs, alerts, the decision log;
- :mod:`~monitor.store.canary`: canary state (the state machine's whole state, and
  view columns for reads);
- :mod:`~monitor.store.ownership`: partition owners and their fencing epochs;
- :mod:`~monitor.store.shipping`: joined pairs and canary arms on their way to a
  model's owner (issue 15);
- :mod:`~monitor.store.schema` / :mod:`~monitor.store.migrations`: tables and their
  versioned migrations; :mod:`~monitor.store.engine`: SQLite/PostgreSQL engines and
  the helpers the operation groups share.

May import: nothing of ``monitor`` (SQLAlchemy Core only).
"""

from monitor.store.actions import (
    AlertRecord,
    DecisionRecord,
    RetrainRun,
    TriggerState,
)
from monitor.store.canary import CanaryState
from monitor.store.database import Checkpoint, Store, Transaction
from monitor.store.engine import StoreError
from monitor.store.join import JoinCounts, JoinedPair, PendingLabel, PendingPrediction
from monitor.store.migrations import SchemaError
from monitor.store.ownership import StaleOwnership

__all__ = [
    "AlertRecord",
    "CanaryState",
    "Checkpoint",
    "DecisionRecord",
    "JoinCounts",
    "JoinedPair",
    "PendingLabel",
    "PendingPrediction",
    "RetrainRun",
    "SchemaError",
    "StaleOwnership",
    "Store",
    "StoreError",
    "Transaction",
    "TriggerState",
]
