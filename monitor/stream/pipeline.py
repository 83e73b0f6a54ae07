"""One model's monitoring: its baseline, its streams of windows, its performance windows.

The service routes decoded events here; a pipeline turns closed windows into
window results (design section 6.1) with :func:`monitor.evaluation.evaluate_window`,
the same call ``driftloop evaluate`` makes, so both agree on the same rows. Joined
pairs go to its realized-performance windows (:mod:`monitor.stream.performance`),
evaluated on the current baseline; a window result reports the latest of them.

Baselines are keyed: ``""`` for a file, the ``runs:/<id>`` URI for one from MLflow.
:meth:`ModelPipeline.swap_baseline` (an alias moved) makes new windows use the new
baseline while open windows finish on the one they were binned with; a baseline
no open window uses is dropped. ``loader(key)`` loads an old baseline that a
restored checkpoint still refers to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from monitor.baseline import Baseline
from monitor.config import ModelConfig
from monitor.evaluate import WindowEstimator, WindowMeta, evaluate_window
from monitor.ingest import Prediction
from monitor.ingest.batch import PredictionBatch
from monitor.stream.label_join import JoinedPairs
from monitor.stream.performance import RealizedPerformance
from monitor.stream.window_state import ClosedWindow
from monitor.stream.windows import Stream

__all__ = ["ModelPipeline", "WindowOutput", "iso_ms"]


def iso_ms(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class WindowOutput:
    """A closed window's result, ready to persist (``key`` is its identity)."""

    model: str
    version: str
    key: str
    index: int
    result: dict[str, Any]
    start_ms: int | None
    end_ms: int | None


class ModelPipeline:
    def __init__(self, name: str, config: ModelConfig, baseline: Baseline,
                 on_late: Callable[[str, int], None] = lambda model, n: None, *,
                 baseline_key: str = "",
                 loader: Callable[[str], Baseline] | None = None) -> None:
        self.name = name
        self.config = config
        self.baseline = baseline
        self.baseline_key = baseline_key
        self.profiles = baseline.summary_profiles()
        self._baselines: dict[str, tuple[Baseline, dict[str, Any]]] = {
            baseline_key: (baseline, self.profiles)}
        self._loader = loader
        # CBPE: the label-free estimator of each baseline key (None: it has none)
        self._estimators: dict[str, WindowEstimator | None] = {}
        self.streams: dict[tuple[str, int], Stream] = {}
        # versions monitored now (streams open, or admitted by this batch): max_versions
        self.versions: set[str] = set()
        self.realized = RealizedPerformance(config)
        self._on_late = on_late
        self._replaying = False  # late events of a replay were counted before the restart
        self._feature_kinds: tuple[str, tuple[tuple[str, bool], ...]] | None = None

    def stream(self, version: str, partition: int) -> Stream:
        stream = self.streams.get((version, partition))
        if stream is None:
            window = self.config.window
            roles = self.baseline.columns
            stream = Stream(
                self.name, version, partition, self.profiles,
                rows=window.rows, duration_seconds=window.duration,
                allowed_lateness_seconds=window.allowed_lateness, buffer_rows=window.buffer_rows,
                prediction_column=roles.prediction if self.baseline.prediction else None,
                score_column=roles.score if self.baseline.score else None,
                on_late=lambda n: None if self._replaying else self._on_late(self.name, n),
                baseline_key=self.baseline_key, profiles_for=self._profiles_for,
                estimator_for=self._estimator_for,
            )
            self.streams[(version, partition)] = stream
            self.versions.add(version)
        return stream

    @property
    def joins_labels(self) -> bool:
        """Whether labels can be evaluated: the baseline has a reference performance
        and a prediction column (otherwise the service keeps no join state)."""
        return self.baseline.performance is not None and self.baseline.prediction is not None

    # -- baselines ------------------------------------------------------------------------
    def _known(self, key: str) -> tuple[Baseline, dict[str, Any]]:
        found = self._baselines.get(key)
        if found is None:
            if self._loader is None or not key:
                # a checkpoint of another baseline and no way to load it: bin on the current
                return self._baselines[self.baseline_key]
            baseline = self._loader(key)
            found = self._baselines[key] = (baseline, baseline.summary_profiles())
        return found

    def baseline_for(self, key: str) -> Baseline:
        """The baseline of key ``key`` (a window's ``baseline``), loaded if need be."""
        return self._known(key)[0]

    def _profiles_for(self, key: str) -> Any:
        return self._known(key)[1]

    def baseline_profiles(self, key: str) -> Any:
        """The bins of baseline ``key`` (a partial summary's window is read back on them)."""
        return self._known(key)[1]

    def _estimator_for(self, key: str) -> WindowEstimator | None:
        if key not in self._estimators:
            self._estimators[key] = WindowEstimator.of(self._known(key)[0])
        return self._estimators[key]

    def swap_baseline(self, key: str, baseline: Baseline) -> None:
        """New windows use ``baseline``; open windows finish on the one they started with."""
        self.baseline, self.baseline_key = baseline, key
        self.profiles = baseline.summary_profiles()
        self._baselines[key] = (baseline, self.profiles)
        self._feature_kinds = None
        self._estimators.pop(key, None)
        for stream in self.streams.values():
            stream.set_baseline(key, self.profiles)
            stream.must_snapshot = True  # a replay would bin its windows on the new baseline
        self._prune()

    def _prune(self) -> None:
        live = {self.baseline_key} | {w.baseline for s in self.streams.values()
                                      for w in s.open.values()}
        for key in [k for k in self._baselines if k not in live]:
            del self._baselines[key]
            self._estimators.pop(key, None)

    def add(self, event: Prediction) -> list[ClosedWindow]:
        return self.stream(event.version, event.partition).add(event)

    def add_many(self, version: str, partition: int, events: list[Prediction],
                 now_ms: int | None = None) -> list[ClosedWindow]:
        """Events of one (version, partition), in offset order; ``now_ms`` (processing
        time) marks the stream as active for the idle and retire timeouts."""
        stream = self.stream(version, partition)
        if now_ms is not None:
            stream.touched_ms = now_ms
        return stream.add_many(events)

    def add_batch(self, batch: PredictionBatch, now_ms: int | None = None
                  ) -> list[ClosedWindow]:
        """``add_many`` for a batch of one (version, partition)."""
        stream = self.stream(batch.version, batch.partition)
        if now_ms is not None:
            stream.touched_ms = now_ms
        return stream.add_batch(batch)

    def replay(self, version: str, partition: int, events: list[Prediction],
               now_ms: int | None = None) -> None:
        """Events read again after a restart (below the processed mark) rebuild the stream
        they belong to: only those at or after its restored state, and only into a stream
        restored from a checkpoint or a mark (a retired one gets nothing). The windows they
        close were evaluated and stored before the restart, and their late events counted;
        ``now_ms``: the stream was active then, so it is not idle now."""
        stream = self.streams.get((version, partition))
        if stream is None:
            return
        events = [e for e in events if stream.replays(e.offset)]
        if not events:
            return
        if now_ms is not None:
            stream.touched_ms = now_ms
        # windows it opens take the baseline new windows took then (an alias may have
        # moved since: the swap forced a snapshot, so the stored one is that of the replay)
        current, profiles = stream.baseline_key, stream.profiles
        replay_key = stream.replay_baseline or current
        self._replaying = True
        try:
            if replay_key != current:
                stream.set_baseline(replay_key, self._profiles_for(replay_key))
            stream.add_many(events)
        finally:
            self._replaying = False
            if replay_key != current:
                stream.set_baseline(current, profiles)

    def feature_kinds(self) -> tuple[tuple[str, bool], ...]:
        """(name, numeric) of the features new windows bin (the current baseline's,
        without its prediction and score columns): what a batch must carry."""
        key = self.baseline_key
        cached = self._feature_kinds
        if cached is None or cached[0] != key:
            roles = self.baseline.columns
            roles_kept = {roles.prediction if self.baseline.prediction else None,
                          roles.score if self.baseline.score else None}
            kinds = tuple((name, profile.kind == "numeric")
                          for name, profile in self.profiles.items() if name not in roles_kept)
            cached = self._feature_kinds = (key, kinds)
        return cached[1]

    # -- versions and idle streams --------------------------------------------------------
    def admits(self, version: str) -> bool:
        """A version already monitored, or room for one more (``max_versions``)."""
        if version in self.versions:
            return True
        if len(self.versions) >= self.config.max_versions:
            return False
        self.versions.add(version)
        return True

    def drop_streams(self, partitions: set[int] | None = None) -> None:
        """Forget the streams of ``partitions`` (all when None): revoked, lost or rewound."""
        for key in [k for k in self.streams if partitions is None or k[1] in partitions]:
            del self.streams[key]
        self.versions = {version for version, _ in self.streams}

    def idle_timeout_ms(self) -> int | None:
        window = self.config.window
        if window.duration is None:
            return None
        idle = window.idle_timeout
        return int(1000 * (idle if idle is not None else window.duration
                           + window.allowed_lateness))

    def housekeep(self, now_ms: int) -> tuple[list[ClosedWindow], list[tuple[str, int]]]:
        """Close the windows of idle event-time streams; retire streams without events for
        ``window.retire_after`` (their open window closes as it stands). Returns the closed
        windows and the (version, partition) of the retired streams."""
        closed: list[ClosedWindow] = []
        retired: list[tuple[str, int]] = []
        idle_ms = self.idle_timeout_ms()
        retire_ms = int(self.config.window.retire_after * 1000)
        for key, stream in list(self.streams.items()):
            if stream.touched_ms is None:
                stream.touched_ms = now_ms  # restored: idle from now on
                continue
            if now_ms - stream.touched_ms >= retire_ms:
                closed += stream.close_all()
                del self.streams[key]
                retired.append(key)
                if not any(version == key[0] for version, _ in self.streams):
                    self.versions.discard(key[0])
            elif idle_ms is not None:
                closed += stream.close_idle(now_ms, idle_ms)
        return closed, retired

    def evaluate(self, closed: ClosedWindow) -> WindowOutput:
        window = closed.window
        meta = WindowMeta(model=self.name, version=closed.version, window=window.index,
                          first_offset=window.first_offset, start=iso_ms(closed.bounds_ms[0]),
                          end=iso_ms(closed.bounds_ms[1]))
        result = evaluate_window(self._known(window.baseline)[0], window.summary, self.config,
                                 meta, confidence=window.confidence)
        result["partition"] = closed.partition
        if window.baseline:
            result["baseline"] = window.baseline
        if window.baseline != self.baseline_key:
            self._prune()
        if window.extra_keys:
            extra = sorted(window.extra_keys)
            quality = result.setdefault("quality", {})
            quality["extra_columns"] = extra
            count = str(len(extra))
            if window.extra_keys_beyond:
                quality["extra_columns_not_kept"] = window.extra_keys_beyond
                count = f"more than {len(extra)}"
            quality.setdefault("violations", []).append(
                f"{count} column(s) not in the baseline: {', '.join(extra[:10])}")
        # realized performance arrives later than the window: report the latest one known
        result["performance"] = self.realized.last.get(closed.version)
        return WindowOutput(self.name, closed.version, closed.key, window.index, result,
                            closed.bounds_ms[0], closed.bounds_ms[1])

    # -- realized performance (monitor.stream.performance) ----------------------------------
    def add_pairs(self, pairs: JoinedPairs) -> list[tuple[str, int, dict[str, Any]]]:
        """Feed joined pairs; returns (version, index, performance dict) per closed window,
        evaluated against the current baseline."""
        return self.realized.add_pairs(pairs, self.baseline)

    def performance_state(self) -> dict[str, Any]:
        return self.realized.state()

    def restore_performance(self, state: dict[str, Any]) -> None:
        self.realized.restore(state)
