"""The one consume → decode → handle → encode → produce loop body.

A :class:`Pipeline` processes a batch of records that a bus consumed and
returns only when everything those records produced has been acknowledged by
the broker; the bus then marks their offsets done. So an offset is committed
only after its outputs are durable (at-least-once), and every consumer must be
safe to replay.

What happens to each kind of failure (the tree lives in
:mod:`semnexus_shared.errors`):

- ``InvalidEvent`` while decoding (bad bytes, unknown schema fingerprint,
  oversized, length bomb) or raised by a per-event handler, and a handler's
  :class:`Reject` outcome → the original bytes go to the dead-letter topic
  with the error class, reason and source topic/partition/offset; the
  partition moves on.
- ``TransientError`` from the handler → the batch is retried with bounded
  exponential back-off; when the retries run out it is treated as below.
- Anything else (and :class:`PipelineCrashed`, raised when retries run out
  or a handler breaks its contract) propagates unchanged; the bus stops the
  process with the offsets uncommitted, and the supervisor restarts it.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import structlog
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from semnexus_shared.errors import InvalidEvent, PipelineCrashed, TransientError
from semnexus_shared.events import DeadLettered
from semnexus_shared.metrics import meter
from semnexus_shared.stream._model import (
    Emit,
    Inbound,
    OutRecord,
    Producer,
    Record,
    Reject,
    Route,
)
from semnexus_shared.tracing import extract_context, inject_headers, trace_id_of

log = structlog.get_logger("semnexus.stream")

# Producers (the client SDK) repeat these in headers, so that even a request
# whose bytes cannot be decoded can be answered and attributed.
REQUEST_ID_HEADER = "semnexus-request-id"
TENANT_HEADER = "semnexus-tenant"
REPLY_TOPIC_HEADER = "semnexus-reply-topic"

# Room a dead letter needs beside the original payload (ids, topic, reason, headers).
DEAD_LETTER_OVERHEAD = 16 * 1024


class EventCodec(Protocol):
    """Encodes outcome events and decodes inbound bytes (Avro single-object)."""

    max_message_bytes: int

    def encode(self, event: Any) -> bytes:
        """Bytes for one event."""
        ...

    def decode(self, data: bytes, expected: Any = None) -> Any:
        """The event in these bytes; raises an ``InvalidEvent`` subclass."""
        ...


DeadLetterFactory = Callable[[Record, str, str, object | None], Any]
# One entry per inbound event: its outcomes, or an awaitable of them when the
# decision must wait (the batch's other outcomes are produced meanwhile; the
# batch is committed only after every entry was produced and acknowledged).
Outcomes = Sequence[object] | Awaitable[Sequence[object]]
BatchHandler = Callable[[Sequence[Inbound[Any]]], Awaitable[Sequence[Outcomes]]]


def dead_letter_factory(service: str) -> DeadLetterFactory:
    """The default dead letter: original bytes, key and headers, and why."""

    def make(record: Record, error_class: str, reason: str, event: object | None) -> DeadLettered:
        headers = dict(record.headers)
        return DeadLettered(
            request_id=_text(getattr(event, "request_id", None) or headers.get(REQUEST_ID_HEADER)),
            tenant_id=_text(getattr(event, "tenant_id", None) or headers.get(TENANT_HEADER)),
            payload=record.value or b"",
            key=record.key,
            headers=headers,
            source_topic=record.topic,
            source_partition=record.partition,
            source_offset=record.offset,
            service=service,
            error_class=error_class,
            reason=reason[:2000],
        )

    return make


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential back-off for ``TransientError``."""

    attempts: int = 5
    first_delay_s: float = 0.2
    max_delay_s: float = 5.0


@dataclass(slots=True)
class _Item:
    record: Record
    span: trace.Span
    started: float
    inbound: Inbound[Any] | None = None
    rejection: tuple[str, str] | None = None  # (error_class, reason)


class Pipeline:
    """One service stage: its sources, decoder, handler and route table."""

    def __init__(
        self,
        *,
        name: str,
        sources: Sequence[str],
        handler: BatchHandler,
        routes: Mapping[type, Route],
        codec: EventCodec,
        deadletter_topic: str,
        dead_letter: DeadLetterFactory | None = None,
        event_type: type | None = None,
        max_batch: int = 1,
        concurrency: int = 1,
        retry: RetryPolicy | None = None,
        on_undecodable: Callable[[Record, str, str], Sequence[object]] | None = None,
    ) -> None:
        self.name = name
        self.sources = tuple(sources)
        self.handler = handler
        self.routes = dict(routes)
        self.codec = codec
        self.deadletter_topic = deadletter_topic
        self.dead_letter = dead_letter or dead_letter_factory(name)
        self.event_type = event_type
        self.max_batch = max_batch
        self.concurrency = concurrency
        self.retry = retry or RetryPolicy()
        # Extra outcomes beside the dead letter of undecodable bytes (an error answer).
        self.on_undecodable = on_undecodable
        self._tracer = trace.get_tracer("semnexus.stream")
        instruments = meter("semnexus.stream")
        self._handled = instruments.create_counter(
            "semnexus_events_handled", unit="1", description="events handled, by outcome"
        )
        self._latency = instruments.create_histogram(
            "semnexus_event_latency", unit="s", description="decode to produced, per event"
        )

    async def process(
        self,
        records: Sequence[Record],
        producer: Producer,
        on_waiting: Callable[[], None] | None = None,
    ) -> None:
        """Handle a batch; return once all it produced is acknowledged.

        When the handler defers some decisions (awaitable outcomes: coalesced
        twins waiting for an answer in flight), ``on_waiting`` is called once
        everything else of the batch has been sent: from then on the batch
        only waits, and a bus may start its next batch meanwhile. The batch's
        offsets still wait for this call to return.
        """
        items = [self._open(r) for r in records]
        live = [i for i in items if i.inbound is not None]
        outcomes: Sequence[Outcomes] = []
        if live:
            outcomes = await self._handle([i.inbound for i in live if i.inbound is not None])
            if len(outcomes) != len(live):
                raise PipelineCrashed(
                    f"{self.name}: handler returned {len(outcomes)} results for {len(live)} events"
                )
        by_item: dict[int, Sequence[object] | Awaitable[Sequence[object]]] = {
            id(item): out for item, out in zip(live, outcomes, strict=True)
        }
        pending: list[tuple[_Item, list[str], list[Awaitable[Any]]]] = []
        deferred: list[tuple[_Item, Awaitable[Sequence[object]]]] = []
        for item in items:
            result = by_item.get(id(item), ())
            if inspect.isawaitable(result):
                # Decided later (a coalesced twin): its batch-mates go out now.
                deferred.append((item, result))
                continue
            pending.append((item, *await self._send(item, result, producer)))
        if deferred and on_waiting is not None:
            on_waiting()
        for item, later in deferred:
            pending.append((item, *await self._send(item, await later, producer)))
        for item, produced, acks in pending:
            # Every ack awaited: a failed produce raises here, before any commit.
            for ack in acks:
                await ack
            self._close(item, produced)

    async def _send(
        self, item: _Item, outcomes: Sequence[object], producer: Producer
    ) -> tuple[list[str], list[Awaitable[Any]]]:
        produced: list[str] = []
        acks: list[Awaitable[Any]] = []
        for out in self._encode(item, outcomes):
            acks.append(await producer.send(out))
            produced.append(out.topic)
        return produced, acks

    def _open(self, record: Record) -> _Item:
        span = self._tracer.start_span(
            f"{record.topic} process",
            context=extract_context(record.headers),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": record.topic,
                "messaging.destination.partition.id": str(record.partition),
                "messaging.kafka.offset": record.offset,
                "messaging.consumer.group.name": self.name,
            },
        )
        item = _Item(record=record, span=span, started=time.perf_counter())
        if record.value is None:
            item.rejection = ("InvalidEvent", "record has no value (a tombstone) on a stream")
            return item
        try:
            event = self.codec.decode(record.value, self.event_type)
        except InvalidEvent as exc:
            item.rejection = (type(exc).__name__, str(exc))
            return item
        item.inbound = Inbound(event=event, record=record, span=span)
        for attr in ("request_id", "tenant_id"):
            value = getattr(event, attr, None)
            if value:
                span.set_attribute(f"semnexus.{attr}", str(value))
        return item

    async def _handle(self, batch: list[Inbound[Any]]) -> Sequence[Outcomes]:
        delay = self.retry.first_delay_s
        for attempt in range(1, self.retry.attempts + 1):
            try:
                return await self.handler(batch)
            except TransientError as exc:
                if attempt == self.retry.attempts:
                    raise PipelineCrashed(
                        f"{self.name}: still failing after retries: {exc}"
                    ) from exc
                log.warning(
                    "transient failure, retrying",
                    stage=self.name,
                    attempt=attempt,
                    error=type(exc).__name__,
                    reason=str(exc),
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry.max_delay_s)
            except InvalidEvent as exc:
                if len(batch) != 1:
                    raise PipelineCrashed(
                        f"{self.name}: batch handlers must return Reject, not raise {exc!r}"
                    ) from exc
                return [[Reject(reason=str(exc), error_class=type(exc).__name__)]]
        raise AssertionError("unreachable")  # pragma: no cover

    def _encode(self, item: _Item, outcomes: Sequence[object]) -> list[OutRecord]:
        ctx = trace.set_span_in_context(item.span)
        headers = inject_headers((), ctx)
        out: list[OutRecord] = []
        if item.rejection is not None:
            error_class, reason = item.rejection
            extra = (
                self.on_undecodable(item.record, error_class, reason) if self.on_undecodable else []
            )
            outcomes = [Reject(reason=reason, error_class=error_class), *extra]
        for outcome in outcomes:
            if isinstance(outcome, Reject):
                item.rejection = (outcome.error_class, outcome.reason)
                out.append(self._dead_letter(item, outcome, headers))
                continue
            if isinstance(outcome, Emit):
                out.append(
                    OutRecord(outcome.topic, outcome.key, self.codec.encode(outcome.event), headers)
                )
                continue
            route = self.routes.get(type(outcome))
            if route is None:
                raise PipelineCrashed(f"{self.name}: no route for outcome {type(outcome).__name__}")
            out.append(
                OutRecord(
                    route.topic_for(outcome),
                    route.key(outcome),
                    self.codec.encode(outcome),
                    headers,
                )
            )
        return out

    def _dead_letter(
        self, item: _Item, reject: Reject, headers: list[tuple[str, bytes]]
    ) -> OutRecord:
        """The dead letter for an item; an oversized original is cut to fit, and says so."""
        record, reason = item.record, reject.reason
        limit = self.codec.max_message_bytes
        room = limit - min(DEAD_LETTER_OVERHEAD, limit // 4)
        if record.value is not None and len(record.value) > room:
            reason = f"{reason} (payload truncated from {len(record.value)} to {room} bytes)"
            record = replace(record, value=record.value[:room])
        event = item.inbound.event if item.inbound is not None else None
        letter = self.dead_letter(record, reject.error_class, reason, event)
        return OutRecord(
            self.deadletter_topic, record.topic.encode(), self.codec.encode(letter), headers
        )

    def _close(self, item: _Item, produced: list[str]) -> None:
        span = item.span
        event = item.inbound.event if item.inbound is not None else None
        latency_ms = round((time.perf_counter() - item.started) * 1000, 2)
        if item.rejection is not None:
            span.set_status(Status(StatusCode.ERROR, item.rejection[0]))
            span.set_attribute("semnexus.deadlettered", True)
        span.end()
        outcome = "deadlettered" if item.rejection is not None else "handled"
        self._handled.add(1, {"stage": self.name, "topic": item.record.topic, "outcome": outcome})
        self._latency.record(latency_ms / 1000, {"stage": self.name})
        log.info(
            "event handled",
            stage=self.name,
            topic=item.record.topic,
            partition=item.record.partition,
            offset=item.record.offset,
            event_type=type(event).__name__ if event is not None else None,
            request_id=getattr(event, "request_id", None),
            tenant_id=getattr(event, "tenant_id", None),
            trace_id=trace_id_of(span),
            outcome=outcome,
            error_class=item.rejection[0] if item.rejection else None,
            reason=item.rejection[1] if item.rejection else None,
            produced=produced,
            latency_ms=latency_ms,
        )
