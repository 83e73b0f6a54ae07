"""Per-version interval statistics for the canary judge, fed by the consumer loop.

The canary compares champion and challenger on the traffic of one interval. The
consumer thread feeds an :class:`ArmAccumulator` with what it already holds, and
the canary job (scheduler thread) takes one interval's ``detectors.ArmStats`` per
version with :meth:`ArmAccumulator.take`, which also starts the next interval:

- each run of decoded predictions of (model, version): the event count, a histogram
  of the predictions over bins of the baseline's prediction profile (its coarse
  quantile edges, or its categories plus "other"), the moments of ``latency_ms``;
- each batch of joined (prediction, label) pairs, after the persist that joined them:
  the moments of the per-row loss (``detectors.row_loss`` of the model's metric),
  counted in the interval in which the label joined;
- dead letters of the predictions topic that still name a model and a version in a
  native JSON object (a decoding error past the JSON parse, e.g. a bad feature type):
  an event and an invalid event of that version. Other dead letters (not JSON, a
  CloudEvent) name no version and are not counted.

Only models with a ``canary`` section are tracked. Memory is bounded: at most
``max_versions`` versions per model and interval (events of further versions are
counted in ``dropped`` only), each a few counters and one histogram.

Accuracy: the accumulator is not part of the exactly-once persist. An interval is
cut short by a restart (its counts are lost; the canary then starts a new interval
and does not judge the cut one), and a step that fails and rewinds may count the
replayed events of that interval twice. Both arms see the same conditions, and a
verdict needs ``min_events`` per arm, so this is what an interval statistic allows.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from detectors import ArmStats, CategoricalProfile, Moments, histogram, row_loss
from monitor.baseline import Baseline
from monitor.ingest import Prediction
from monitor.ingest.batch import PredictionBatch
from monitor.store import JoinedPair
from monitor.store.engine import pack_state, unpack_state
from monitor.stream.label_join import JoinedPairs
from monitor.tables import canonical_category

__all__ = ["ARMS_FORMAT", "ArmAccumulator", "ArmSpec", "merged_arms", "pack_arms",
           "shipped_shares", "unpack_arms"]

log = logging.getLogger("driftloop.canary")

MAX_VERSIONS = 16
# distinct raw prediction values remembered per model for categorical bins
_MAX_CACHED_VALUES = 10_000
ARMS_FORMAT = 1  # of pack_arms


@dataclass(frozen=True)
class ArmSpec:
    """How one model's arms are measured: the loss of ``metric`` on ``task``, and the
    prediction histogram's bins (numeric ``edges`` or ``categories``, or neither)."""

    metric: str
    regression: bool
    edges: tuple[float, ...] | None = None
    categories: tuple[str, ...] | None = None

    @classmethod
    def of(cls, baseline: Baseline, metric: str) -> ArmSpec:
        profile = baseline.prediction
        regression = baseline.task == "regression"
        if profile is None:
            return cls(metric, regression)
        if isinstance(profile, CategoricalProfile):
            return cls(metric, regression, categories=tuple(str(c) for c in profile.categories))
        edges = np.unique(np.asarray(profile.edges, np.float64)[profile.coarse])
        if edges.size < 2:  # a constant prediction: nothing to bin
            return cls(metric, regression)
        return cls(metric, regression, edges=tuple(float(e) for e in edges))

    @property
    def n_bins(self) -> int:
        if self.edges is not None:
            return len(self.edges) - 1
        return 0 if self.categories is None else len(self.categories) + 1


@dataclass
class _Arm:
    n_events: int = 0
    n_invalid: int = 0
    counts: np.ndarray | None = None
    loss: Moments = field(default_factory=Moments)
    latency: Moments = field(default_factory=Moments)

    def stats(self) -> ArmStats:
        counts = () if self.counts is None else tuple(int(c) for c in self.counts)
        return ArmStats(self.n_events, self.n_invalid, counts, self.loss, self.latency)


class ArmAccumulator:
    """One interval's statistics per (model, version); thread-safe."""

    def __init__(self, specs: Mapping[str, ArmSpec], max_versions: int = MAX_VERSIONS) -> None:
        self.specs = dict(specs)
        self.max_versions = max_versions
        self.dropped = 0  # events of versions beyond max_versions, since start
        self._arms: dict[str, dict[str, _Arm]] = {model: {} for model in self.specs}
        self._bins: dict[str, dict[Any, int]] = {model: {} for model in self.specs}
        self._lock = threading.Lock()

    # -- fed by the consumer thread ----------------------------------------------------
    def add_predictions(self, model: str, version: str,
                        run: Sequence[Prediction] | PredictionBatch) -> None:
        spec = self.specs.get(model)
        if spec is None or not run:
            return
        if isinstance(run, PredictionBatch):
            counts = self._histogram(model, spec, run.predictions)
            latencies = [v for v in run.latency_ms if v is not None]
        else:
            counts = self._histogram(model, spec, [e.prediction for e in run])
            latencies = [e.latency_ms for e in run if e.latency_ms is not None]
        latency = Moments.of(np.asarray(latencies, np.float64)) if latencies else None
        with self._lock:
            arm = self._arm(model, version, len(run))
            if arm is None:
                return
            arm.n_events += len(run)
            if counts is not None:
                arm.counts = counts if arm.counts is None else arm.counts + counts
            if latency is not None:
                arm.latency = arm.latency.merge(latency)

    def add_pairs(self, pairs: Mapping[str, JoinedPairs | Iterable[JoinedPair]]) -> None:
        """Joined pairs per model (``Persisted.pairs``), after their transaction."""
        for model, found in pairs.items():
            spec = self.specs.get(model)
            if spec is None:
                continue
            columns = found if isinstance(found, JoinedPairs) else JoinedPairs.of(model, found)
            losses = {version: _loss(spec, rows)
                      for version, rows in columns.by_version().items()}
            with self._lock:
                for version, loss in losses.items():
                    arm = self._arm(model, version, loss.n)
                    if arm is not None and loss.n:
                        arm.loss = arm.loss.merge(loss)

    def add_dead_letter(self, value: bytes | None, headers: Sequence[tuple[str, Any]] = ()
                        ) -> None:
        """A prediction record that failed decoding: counted against the version it names
        in a native JSON object, if any (CloudEvents halves name none before decoding)."""
        if not value or any(str(k).lower().startswith("ce_") for k, _ in headers or ()):
            return
        try:
            obj = orjson.loads(value)
        except orjson.JSONDecodeError:
            return
        if type(obj) is not dict:
            return
        model, version = obj.get("model"), obj.get("version")
        if not isinstance(model, str) or model not in self.specs:
            return
        if isinstance(version, bool) or not isinstance(version, str | int) or version == "":
            return
        with self._lock:
            arm = self._arm(model, str(version), 1)
            if arm is not None:
                arm.n_events += 1
                arm.n_invalid += 1

    # -- read by the canary job ----------------------------------------------------------
    def take(self, model: str) -> dict[str, ArmStats]:
        """The interval so far of every version of ``model``; a new interval starts."""
        with self._lock:
            arms = self._arms.get(model)
            if arms is None:
                return {}
            self._arms[model] = {}
        return {version: arm.stats() for version, arm in arms.items()}

    def peek(self, model: str) -> dict[str, ArmStats]:
        """The interval so far, left running (for the read routes)."""
        with self._lock:
            return {version: arm.stats() for version, arm in self._arms.get(model, {}).items()}

    # -- helpers ---------------------------------------------------------------------
    def _arm(self, model: str, version: str, n: int) -> _Arm | None:
        arms = self._arms[model]
        arm = arms.get(version)
        if arm is None:
            if len(arms) >= self.max_versions:
                if self.dropped == 0:
                    log.warning("canary %s: more than %d versions in one interval; events of "
                                "v%s and later ones are not counted", model,
                                self.max_versions, version)
                self.dropped += n
                return None
            arm = arms[version] = _Arm()
        return arm

    def _histogram(self, model: str, spec: ArmSpec, values: list[Any]) -> np.ndarray | None:
        if spec.edges is not None:
            try:
                numbers = np.asarray(values, np.float64)
            except (TypeError, ValueError):
                numbers = np.asarray([_float(v) for v in values], np.float64)
            return np.asarray(histogram(numbers, edges=spec.edges), np.int64)
        if spec.categories is None:
            return None
        cache = self._bins[model]
        position = {c: i for i, c in enumerate(spec.categories)}
        other = len(spec.categories)
        counts = np.zeros(other + 1, np.int64)
        for value in values:
            try:
                index = cache.get(value)
            except TypeError:  # an unhashable value: binned, not cached
                index = None
            if index is None:
                category = canonical_category(value)
                index = -1 if category is None else position.get(category, other)
                if len(cache) < _MAX_CACHED_VALUES:
                    # 1 and 1.0 hash alike and canonicalize alike, so caching is safe
                    cache[value] = index
            if index >= 0:
                counts[index] += 1
        return counts


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _loss(spec: ArmSpec, pairs: JoinedPairs) -> Moments:
    """Moments of the per-row loss; rows the metric cannot read (no score for log_loss,
    a label that is not a number for a regression) are left out."""
    if spec.metric == "log_loss":
        rows = [(_float(label), score) for label, score in zip(pairs.labels, pairs.scores,
                                                                 strict=True)
                if score is not None]
        if not rows:
            return Moments()
        truth = np.asarray([r[0] for r in rows])
        keep = ~np.isnan(truth)
        score = np.asarray([r[1] for r in rows], np.float64)[keep]
        return Moments.of(row_loss("log_loss", truth[keep] == 1.0, None, score))
    if spec.regression:
        truth = np.asarray([_float(v) for v in pairs.labels])
        predicted = np.asarray([_float(v) for v in pairs.predictions])
        keep = ~(np.isnan(truth) | np.isnan(predicted))
        return Moments.of(row_loss(spec.metric, truth[keep], predicted[keep]))
    truth_c = np.asarray([canonical_category(v) for v in pairs.labels], dtype=object)
    predicted_c = np.asarray([canonical_category(v) for v in pairs.predictions], dtype=object)
    return Moments.of(row_loss(spec.metric, truth_c, predicted_c))


# -- arms shipped to the model's owner (issue 15, kafka.partials) --------------------------
def pack_arms(arms: Mapping[str, ArmStats]) -> bytes:
    """One replica's share of an interval, per version, as MessagePack."""
    def moments(m: Moments) -> list[float]:
        return [m.n, m.total, m.total_squares]

    return pack_state({"format": ARMS_FORMAT, "versions": {
        version: [s.n_events, s.n_invalid, list(s.prediction_counts), moments(s.loss),
                  moments(s.latency)] for version, s in arms.items()}})


def unpack_arms(payload: bytes) -> dict[str, ArmStats]:
    """What :func:`pack_arms` packed; ValueError for anything else."""
    data = unpack_state(payload)
    if not isinstance(data, dict) or data.get("format") != ARMS_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"shipped arm statistics: got format {found!r}, expected "
                         f"{ARMS_FORMAT}")
    out: dict[str, ArmStats] = {}
    for version, (n_events, n_invalid, counts, loss, latency) in data["versions"].items():
        out[str(version)] = ArmStats(int(n_events), int(n_invalid), tuple(map(int, counts)),
                                     Moments(int(loss[0]), float(loss[1]), float(loss[2])),
                                     Moments(int(latency[0]), float(latency[1]),
                                             float(latency[2])))
    return out


def shipped_shares(model: str, payloads: Iterable[bytes]) -> list[dict[str, ArmStats]]:
    """The shares :func:`pack_arms` packed; one that cannot be read is left out."""
    shares = []
    for payload in payloads:
        try:
            shares.append(unpack_arms(payload))
        except Exception as exc:  # written by another version of driftloop
            log.warning("canary %s: shipped interval statistics could not be read (%s); "
                        "left out", model, exc)
    return shares


def merged_arms(model: str, parts: Iterable[Mapping[str, ArmStats]]) -> dict[str, ArmStats]:
    """The replicas' shares of one interval summed per version. A share binned on other
    prediction bins (a replica still on an older baseline) is left out, with a warning."""
    out: dict[str, ArmStats] = {}
    for part in parts:
        for version, stats in part.items():
            have = out.get(version)
            try:
                out[version] = stats if have is None else have.merge(stats)
            except ValueError as exc:
                log.warning("canary %s v%s: a replica's interval statistics left out (%s)",
                            model, version, exc)
    return out
