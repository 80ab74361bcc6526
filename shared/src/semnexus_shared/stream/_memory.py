"""An in-memory bus with Kafka's shape, for pipeline tests without a broker.

Topics have partitions, keys choose partitions, consumer groups keep
committed offsets, and a group's offsets move only after
:meth:`Pipeline.process` returned, exactly as on the real bus. A handler that
crashes leaves its offsets where they were, so a test can replay.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import defaultdict
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any

from semnexus_shared.stream._model import OutRecord, Record
from semnexus_shared.stream._pipeline import Pipeline


def _done() -> Awaitable[None]:
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    fut.set_result(None)
    return fut


class MemoryBus:
    """Topics, partitions and consumer-group offsets in a dict."""

    def __init__(self, default_partitions: int = 3) -> None:
        self.default_partitions = default_partitions
        self._topics: dict[str, list[list[Record]]] = {}
        self._committed: dict[tuple[str, str, int], int] = defaultdict(int)

    def create_topic(self, name: str, partitions: int | None = None) -> None:
        """Declare a topic (idempotent); producing to an undeclared one creates it."""
        self._topics.setdefault(name, [[] for _ in range(partitions or self.default_partitions)])

    def _partition(self, topic: str, key: bytes | None) -> int:
        parts = self._topics[topic]
        if key is None:
            return min(range(len(parts)), key=lambda p: len(parts[p]))
        return zlib.crc32(key) % len(parts)

    def append(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> Record:
        """Write one record, as a producer would, and return it."""
        self.create_topic(topic)
        partition = self._partition(topic, key)
        log = self._topics[topic][partition]
        record = Record(topic, partition, len(log), key, value, tuple(headers))
        log.append(record)
        return record

    async def send(self, record: OutRecord) -> Awaitable[Any]:
        """The :class:`Producer` protocol: appended means acknowledged."""
        self.append(record.topic, record.value, record.key, record.headers)
        return _done()

    def records(self, topic: str) -> list[Record]:
        """Every record of a topic, partition by partition."""
        return [r for part in self._topics.get(topic, []) for r in part]

    def _pending(self, group: str, topics: Iterable[str]) -> list[Record]:
        out: list[Record] = []
        for topic in topics:
            for p, log in enumerate(self._topics.get(topic, [])):
                out.extend(log[self._committed[(group, topic, p)] :])
        return out

    async def drain(self, pipeline: Pipeline, group: str | None = None) -> int:
        """Process everything pending for the pipeline's group; return how many records."""
        group = group or pipeline.name
        handled = 0
        while pending := self._pending(group, pipeline.sources):
            by_partition: dict[tuple[str, int], list[Record]] = defaultdict(list)
            for record in pending:
                by_partition[(record.topic, record.partition)].append(record)
            batch: list[Record] = []
            for records in by_partition.values():
                batch.extend(records[: pipeline.max_batch])
            batch = batch[: max(pipeline.max_batch, 1)]
            await pipeline.process(batch, self)
            for record in batch:
                tp = (group, record.topic, record.partition)
                self._committed[tp] = max(self._committed[tp], record.offset + 1)
            handled += len(batch)
        return handled

    async def run_until_idle(self, pipelines: Sequence[Pipeline], max_rounds: int = 100) -> int:
        """Drain every pipeline repeatedly until none has anything left; return the total."""
        total = 0
        for _ in range(max_rounds):
            moved = 0
            for pipeline in pipelines:
                moved += await self.drain(pipeline)
            total += moved
            if moved == 0:
                return total
        raise RuntimeError(f"pipelines still busy after {max_rounds} rounds (a produce loop?)")
