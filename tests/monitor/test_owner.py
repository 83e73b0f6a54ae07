"""The owner of a model (issue 15): merge, watermark and dedupe of partial summaries.

Unit tests of ``monitor.stream.owner`` without a broker: partials are built by the
per-partition streams of a pipeline, as a replica builds them, and handed to
:class:`ModelOwner` with the offsets they would have on the partials topic.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from monitor.baseline import Baseline
from monitor.stream.kserve_split import SPLIT_STREAMS
from monitor.stream.owner import KEEP_MERGED, ModelOwner, OwnedModel
from monitor.stream.partials import Partial, PartialPublisher, owner_partition
from tests.monitor.test_partials import (  # the fixtures and helpers of the partials' tests
    MINUTE,
    Sent,
    baseline,
    closed_windows,
    data,
    spread,
    timed_pipeline,
)
from tests.monitor.test_windows import events

PARTITIONS = 3
SOURCES = range(PARTITIONS)  # the source stream partitions: the predictions topic's


__all__ = ["baseline", "data"]  # fixtures used here


@pytest.fixture(scope="module")
def partials(data: Any, baseline: Baseline) -> list[Partial]:
    """The partials of 300 rows over 3 partitions: windows 0..2 of each partition, 100
    rows a window, each partition's 33 or 34 rows of a window in one partial."""
    p = timed_pipeline(baseline)
    producer = Sent()
    publisher = PartialPublisher("partials", 4, "predictions", 0.5, producer=producer)
    for closed in closed_windows(p, spread(events(data.current.iloc[:300]), PARTITIONS)):
        publisher.window(closed, p.streams.get((closed.version, closed.partition or 0)), None)
    return [Partial.decode(value) for _, _, value, _ in producer.records]


def owner_of(baseline: Baseline, **window: Any) -> tuple[ModelOwner, list[tuple[str, int]]]:
    late: list[tuple[str, int]] = []
    owner = ModelOwner({"carloan": timed_pipeline(baseline, **window)}, 4,
                       on_late=lambda model, n: late.append((model, n)))
    return owner, late


def heartbeat(partition: int, watermark_ms: int | None, idle: bool = False) -> Partial:
    return Partial("carloan", "", "predictions", partition, watermark_ms, idle=idle)


def of_window(partials: list[Partial], index: int) -> list[Partial]:
    return [p for p in partials if p.index == index]


def test_a_window_closes_when_every_partition_passed_its_end(
        partials: list[Partial], baseline: Baseline) -> None:
    owner, _ = owner_of(baseline)
    for offset, partial in enumerate(of_window(partials, 0)):
        owner.add(partial, offset)
    assert owner.due(SOURCES) == []  # no partition reported a watermark yet
    owner.add(heartbeat(0, MINUTE), 10)
    owner.add(heartbeat(1, 2 * MINUTE), 11)
    assert owner.due(SOURCES) == []  # partition 2 has not reported: it holds it back
    owner.add(heartbeat(2, MINUTE - 1), 12)
    assert owner.due(SOURCES) == []  # the lowest watermark is short of the end
    owner.add(heartbeat(2, MINUTE), 13)
    (closed,) = owner.due(SOURCES)
    assert (closed.partition, closed.window.index, closed.window.n_rows) == (None, 0, 100)
    assert closed.bounds_ms == (0, MINUTE)
    assert owner.models["carloan"].merged == {"1": {0: [0, 1, 2]}}
    assert owner.due(SOURCES) == []


def test_allowed_lateness_holds_the_window_longer(partials: list[Partial],
                                                   baseline: Baseline) -> None:
    owner, _ = owner_of(baseline, allowed_lateness="30s")
    for offset, partial in enumerate(of_window(partials, 0)):
        owner.add(partial, offset)
    for partition in range(PARTITIONS):
        owner.add(heartbeat(partition, MINUTE + 29_999), 10 + partition)
    assert owner.due(SOURCES) == []
    owner.add(heartbeat(0, MINUTE + 30_000), 20)
    assert owner.due(SOURCES) == []  # partitions 1 and 2 are still short
    for partition in (1, 2):
        owner.add(heartbeat(partition, MINUTE + 30_000), 20 + partition)
    assert len(owner.due(SOURCES)) == 1


def test_a_copy_is_merged_once_before_and_after_its_window_closes(
        partials: list[Partial], baseline: Baseline) -> None:
    owner, late = owner_of(baseline)
    window = of_window(partials, 0)
    for offset, partial in enumerate(window + window):  # every partial published twice
        owner.add(partial, offset)
    for partition in range(PARTITIONS):
        owner.add(heartbeat(partition, MINUTE), 10 + partition)
    (closed,) = owner.due(SOURCES)
    assert closed.window.n_rows == 100
    for offset, partial in enumerate(window, start=20):  # a replay publishes them again
        owner.add(partial, offset)
    assert owner.due(SOURCES) == [] and late == []
    assert owner.held_back() == {}


def test_a_partial_after_its_window_was_evaluated_counts_late(
        partials: list[Partial], baseline: Baseline) -> None:
    owner, late = owner_of(baseline)
    first, second, third = of_window(partials, 0)
    owner.add(first, 0)
    owner.add(second, 1)
    for partition in range(PARTITIONS):
        owner.add(heartbeat(partition, MINUTE), 10 + partition)
    (closed,) = owner.due(SOURCES)
    assert closed.window.n_rows == first.n_rows + second.n_rows
    owner.add(third, 20)
    assert late == [("carloan", third.n_rows)]
    owner.add(third, 21, read_before=True)  # read again after a restart: counted before
    assert late == [("carloan", third.n_rows)]


def test_idle_partitions_are_left_out_and_all_idle_closes_everything(
        partials: list[Partial], baseline: Baseline) -> None:
    owner, _ = owner_of(baseline)
    for offset, partial in enumerate(of_window(partials, 0) + of_window(partials, 1)):
        owner.add(partial, offset)
    owner.add(heartbeat(0, MINUTE), 10)
    owner.add(heartbeat(1, None, idle=True), 11)
    owner.add(heartbeat(2, None, idle=True), 12)
    assert [c.window.index for c in owner.due(SOURCES)] == [0]
    owner.add(heartbeat(0, None, idle=True), 13)
    assert [c.window.index for c in owner.due(SOURCES)] == [1]


def test_a_watermark_never_goes_back(baseline: Baseline) -> None:
    owner, _ = owner_of(baseline)
    owner.add(heartbeat(0, 5 * MINUTE), 0)
    owner.add(heartbeat(0, MINUTE), 1)  # a replay, or a new holder catching up
    assert owner.models["carloan"].reports == {0: 5 * MINUTE}


def test_held_back_is_the_lowest_offset_of_a_pending_partial(
        partials: list[Partial], baseline: Baseline) -> None:
    owner, _ = owner_of(baseline)
    for offset, partial in enumerate(of_window(partials, 0) + of_window(partials, 1), 40):
        owner.add(partial, offset)
    owner.add(heartbeat(1, 0), 50)
    mine = owner_partition("carloan", 4)
    assert owner.held_back() == {mine: 40}
    for partition in range(PARTITIONS):
        owner.add(heartbeat(partition, MINUTE), 60 + partition)
    owner.due(SOURCES)
    assert owner.held_back() == {mine: 43}  # window 1's partials remain
    owner.drop({mine})
    assert owner.models == {} and owner.held_back() == {}


def test_a_restored_owner_drops_what_it_merged_and_merges_what_it_did_not(
        partials: list[Partial], baseline: Baseline) -> None:
    owner, _ = owner_of(baseline)
    window0, window1 = of_window(partials, 0), of_window(partials, 1)
    for offset, partial in enumerate(window0 + window1):
        owner.add(partial, offset)
    for partition in range(PARTITIONS):
        owner.add(heartbeat(partition, MINUTE), 10 + partition)
    owner.due(SOURCES)
    ((model, state),) = owner.dirty_states()
    owner.stored([model])
    assert owner.dirty_states() == []
    # a crash: the next owner restores the stored state and reads again from the offset
    # held back, that of window 1's first partial
    again, late = owner_of(baseline)
    again.restore(model, state)
    assert again.models["carloan"].to_dict() == OwnedModel.from_dict(state).to_dict()
    for offset, partial in enumerate(window0 + window1):
        again.add(partial, offset, read_before=True)
    for partition in range(PARTITIONS):
        again.add(heartbeat(partition, 2 * MINUTE), 20 + partition)
    assert [(c.window.index, c.window.n_rows) for c in again.due(SOURCES)] == [(1, 100)]
    assert late == []


def test_merged_sources_are_kept_for_the_last_windows_only(baseline: Baseline) -> None:
    owner, _ = owner_of(baseline)
    state = owner.models.setdefault("carloan", OwnedModel())
    state.closed_below["1"] = KEEP_MERGED + 10
    state.merged["1"] = {i: [0] for i in range(KEEP_MERGED + 10)}
    state.reports = {0: (KEEP_MERGED + 12) * MINUTE}
    stale = Partial("carloan", "1", "predictions", 0, 0, index=3, n_rows=5)
    owner.add(stale, 0)  # older than what is kept: dropped, not merged, not late
    assert state.pending == {}


def test_the_watermark_spans_the_stream_partitions_of_both_topics() -> None:
    """With kafka.kserve_split, kserve partition q is source stream SPLIT_STREAMS + q: its
    report counts in the model's watermark like a predictions partition's."""
    state = OwnedModel(reports={0: 5 * MINUTE, 1: None, SPLIT_STREAMS: 3 * MINUTE})
    assert state.watermark([0, 1, SPLIT_STREAMS]) == 3 * MINUTE  # idle 1 left out
    assert state.watermark(range(2)) == 5 * MINUTE  # the predictions topic's alone
    assert state.watermark([0, 1, SPLIT_STREAMS, SPLIT_STREAMS + 1]) is None  # not reported
    assert state.watermark([]) is None  # the topics' partitions not known yet
    # the checkpoint row keeps the kserve streams' reports
    assert OwnedModel.from_dict(state.to_dict()).watermark([0, 1, SPLIT_STREAMS]) == 3 * MINUTE


def test_a_window_of_both_topics_closes_when_every_source_stream_passed_it(
        partials: list[Partial], baseline: Baseline) -> None:
    """Window 0's rows of partition 2 closed in a kserve partition's stream instead: the
    window waits for every predictions partition and every kserve partition."""
    owner, late = owner_of(baseline)
    kserve = SPLIT_STREAMS + 1
    sources = [*range(PARTITIONS - 1), SPLIT_STREAMS, kserve]
    window = [p if p.partition != 2 else replace(p, topic="g-kserve", partition=kserve)
              for p in of_window(partials, 0)]
    for offset, partial in enumerate(window):
        owner.add(partial, offset)
    for offset, partition in enumerate((0, 1, kserve)):
        owner.add(heartbeat(partition, MINUTE), 10 + offset)
    assert owner.due(sources) == []  # kserve partition 0 has not reported: it holds it back
    owner.add(heartbeat(SPLIT_STREAMS, MINUTE - 1), 13)
    assert owner.due(sources) == []  # and is short of the end
    owner.add(heartbeat(SPLIT_STREAMS, None, idle=True), 14)  # nothing of carloan there
    (closed,) = owner.due(sources)
    assert (closed.partition, closed.window.index, closed.window.n_rows) == (None, 0, 100)
    assert owner.models["carloan"].merged == {"1": {0: [0, 1, kserve]}}
    # a copy of the kserve stream's partial (a replay) is dropped, not counted late
    owner.add(next(p for p in window if p.partition == kserve), 15)
    assert owner.due(sources) == [] and owner.held_back() == {} and late == []
