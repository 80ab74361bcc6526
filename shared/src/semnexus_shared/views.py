"""Materialised views of compacted topics (provider health, budgets).

A view is not a consumer-group stage: every instance of a service needs the
whole state (each router must know every provider's health), so a view assigns
itself every partition of its topic, reads from the beginning without a group
and without committing, keeps the latest event per key, and keeps following.
It produces nothing. Undecodable records are logged and skipped here: they
already reached the dead-letter topic from the stage that consumes them, and
a view must not stop on them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import structlog

from semnexus_shared.config import KafkaSettings
from semnexus_shared.errors import InvalidEvent
from semnexus_shared.events import Event
from semnexus_shared.serde import Codec
from semnexus_shared.topics import partitions_of

log = structlog.get_logger("semnexus.views")

V = TypeVar("V", bound=Event)


class CompactedView(Generic[V]):
    """Latest event per key of one topic, kept current in the background."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        codec: Codec,
        event_type: type[V],
        key: Callable[[V], str],
    ) -> None:
        self._kafka = kafka
        self._topic = topic
        self._codec = codec
        self._type = event_type
        self._key = key
        self._state: dict[str, V] = {}
        self._task: asyncio.Task[None] | None = None
        self._consumer: Any = None
        self.ready = asyncio.Event()

    @property
    def current(self) -> Mapping[str, V]:
        """A read-only look at the latest value per key."""
        return self._state

    def apply(self, value: V) -> None:
        """Fold one event into the view (also used directly by tests)."""
        self._state[self._key(value)] = value

    async def start(self) -> None:
        """Read the topic up to its end once, then follow it in the background."""
        from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: PLC0415  (adapter)

        self._consumer = AIOKafkaConsumer(
            **self._kafka.consumer_args(),
            enable_auto_commit=False,
            group_id=None,
            auto_offset_reset="earliest",
        )
        partitions = await partitions_of(self._kafka, self._topic)
        await self._consumer.start()
        tps = [TopicPartition(self._topic, p) for p in partitions]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        ends = await self._consumer.end_offsets(tps) if tps else {}
        while await self._behind(ends):
            await self._poll()
        self.ready.set()
        self._task = asyncio.create_task(self._follow(), name=f"view:{self._topic}")

    async def _behind(self, ends: Mapping[Any, int]) -> bool:
        for tp, end in ends.items():
            if int(await self._consumer.position(tp)) < end:
                return True
        return False

    async def _poll(self) -> None:
        batches = await self._consumer.getmany(timeout_ms=200, max_records=1000)
        for records in batches.values():
            for record in records:
                if record.value is None:
                    with contextlib.suppress(Exception):
                        self._state.pop(record.key.decode(), None)
                    continue
                try:
                    self.apply(self._codec.decode(record.value, self._type))
                except InvalidEvent as exc:
                    log.warning(
                        "view skipped an undecodable record",
                        topic=self._topic,
                        offset=record.offset,
                        error_class=type(exc).__name__,
                    )

    async def _follow(self) -> None:
        while True:
            await self._poll()

    async def stop(self) -> None:
        """Stop following and close the consumer."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
