"""A stand-in for the parts of ``KafkaConsumer`` that ``Service.step`` and ``restore`` use,
over records kept in memory, for unit tests that run replicas without a broker."""

from __future__ import annotations

from typing import Any

from kafka import TopicPartition


class LogConsumer:
    """Polls ``topics`` ((topic, partition) -> records, appended to by the test's log) from
    the position of each assigned partition; ``seek`` moves it."""

    def __init__(self, topics: dict[tuple[str, int], list[Any]],
                 assigned: set[tuple[str, int]]) -> None:
        self.topics, self.assigned = topics, assigned
        self.positions = dict.fromkeys(assigned, 0)
        self.config: dict[str, Any] = {}

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[Any, Any]:
        out = {}
        for tp in sorted(self.assigned):
            records = self.topics.get(tp, [])[self.positions[tp]:]
            if records:
                out[TopicPartition(*tp)] = records
                self.positions[tp] += len(records)
        return out

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[(tp.topic, tp.partition)] = offset
