"""The values that flow through the runner: records in, outcomes out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from opentelemetry.trace import Span

E = TypeVar("E")

Headers = Sequence[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka message as consumed: where it came from and its raw bytes."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Inbound(Generic[E]):
    """A decoded event handed to a handler, with its record and its trace span."""

    event: E
    record: Record
    span: Span


@dataclass(frozen=True, slots=True)
class Reject:
    """Handler outcome: this input is invalid; dead-letter its original bytes.

    Return it beside an error response when the app waiting for an answer
    should hear why.
    """

    reason: str
    error_class: str = "InvalidRequest"


@dataclass(frozen=True, slots=True)
class Emit:
    """Handler outcome with an explicit destination, bypassing the route table."""

    topic: str
    key: bytes | None
    event: Any


@dataclass(frozen=True, slots=True)
class Route:
    """Where an outcome type goes: a topic (fixed or computed) and its key."""

    topic: str | Callable[[Any], str]
    key: Callable[[Any], bytes | None] = field(default=lambda _e: None)

    def topic_for(self, event: Any) -> str:
        """The destination topic of this event."""
        return self.topic if isinstance(self.topic, str) else self.topic(event)


@dataclass(frozen=True, slots=True)
class OutRecord:
    """An encoded outcome ready to produce."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


class Producer(Protocol):
    """Sends records; each returned awaitable resolves when the broker acknowledged it."""

    async def send(self, record: OutRecord) -> Awaitable[Any]:
        """Enqueue one record; await the result for its acknowledgement."""
        ...


def for_each(
    handle: Callable[[Inbound[Any]], Awaitable[Sequence[object]]],
) -> Callable[[Sequence[Inbound[Any]]], Awaitable[Sequence[Sequence[object]]]]:
    """A batch handler that handles the batch's events one by one, concurrently."""
    import asyncio  # noqa: PLC0415  (keeps this module's import surface tiny)

    from opentelemetry import trace  # noqa: PLC0415

    async def one(inbound: Inbound[Any]) -> Sequence[object]:
        with trace.use_span(inbound.span, end_on_exit=False):
            return await handle(inbound)

    async def batch(items: Sequence[Inbound[Any]]) -> Sequence[Sequence[object]]:
        if len(items) == 1:
            return [await one(items[0])]
        return list(await asyncio.gather(*(one(i) for i in items)))

    return batch
