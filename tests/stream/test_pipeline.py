"""The runner's loop body on the in-memory bus: routes, dead letters, commits, traces."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from semnexus_shared.errors import TransientError
from semnexus_shared.events import (
    CacheInvalidated,
    CompletionRequested,
    CompletionResponded,
    DeadLettered,
    InvalidationTarget,
    Message,
    ResponseStatus,
    Role,
)
from semnexus_shared.replies import ReplyPolicy
from semnexus_shared.serde import Codec, SchemaRegistry
from semnexus_shared.stream import (
    Inbound,
    MemoryBus,
    Pipeline,
    Record,
    Reject,
    Route,
    for_each,
)
from semnexus_shared.tracing import inject_headers


@pytest.fixture(scope="module")
def codec() -> Codec:
    """One codec over the repository's schemas."""
    return Codec(SchemaRegistry.load())


def request(n: int, tenant: str = "acme") -> CompletionRequested:
    return CompletionRequested(
        request_id=f"r{n}",
        tenant_id=tenant,
        messages=(Message(role=Role.USER, content=f"question {n}"),),
        model_alias="chat",
    )


def invalidation(req: CompletionRequested) -> CacheInvalidated:
    return CacheInvalidated(
        request_id=req.request_id, tenant_id=req.tenant_id, target=InvalidationTarget.TENANT
    )


def make_pipeline(codec: Codec, handler: object, max_batch: int = 1) -> Pipeline:
    return Pipeline(
        name="test-stage",
        sources=["in"],
        handler=handler,  # type: ignore[arg-type]
        routes={CacheInvalidated: Route("out", key=lambda e: e.request_id.encode())},
        codec=codec,
        deadletter_topic="dlq",
        event_type=CompletionRequested,
        max_batch=max_batch,
    )


async def echo(inbound: Inbound[CompletionRequested]) -> Sequence[object]:
    return [invalidation(inbound.event)]


async def test_routes_each_outcome_by_type_with_its_key(codec: Codec) -> None:
    """Every event is handled once and its outcome lands on the routed topic with its key."""
    bus = MemoryBus()
    for n in range(20):
        bus.append("in", codec.encode(request(n)), key=f"k{n}".encode())
    handled = await bus.drain(make_pipeline(codec, for_each(echo), max_batch=8))
    out = [codec.decode(r.value or b"", CacheInvalidated) for r in bus.records("out")]
    assert handled == 20
    assert sorted(e.request_id for e in out) == sorted(f"r{n}" for n in range(20))
    for record in bus.records("out"):
        assert record.key == codec.decode(record.value or b"").request_id.encode()


async def test_undecodable_bytes_are_dead_lettered_and_the_partition_moves_on(codec: Codec) -> None:
    """Garbage between good events goes to the dead-letter topic; the good ones are handled."""
    bus = MemoryBus(default_partitions=1)
    bus.append("in", codec.encode(request(1)))
    bus.append("in", b"\x00garbage", key=b"bad", headers=[("semnexus-request-id", b"r-bad")])
    bus.append("in", codec.encode(request(2)))
    await bus.drain(make_pipeline(codec, for_each(echo)))
    letters = [codec.decode(r.value or b"", DeadLettered) for r in bus.records("dlq")]
    assert [e.request_id for e in (codec.decode(r.value or b"") for r in bus.records("out"))] == [
        "r1",
        "r2",
    ]
    assert len(letters) == 1
    letter = letters[0]
    assert letter.payload == b"\x00garbage"
    assert letter.key == b"bad"
    assert letter.error_class == "NotSingleObjectEncoded"
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == ("in", 0, 1)
    assert letter.request_id == "r-bad"


async def test_reject_outcome_dead_letters_the_original_and_sends_the_rest(codec: Codec) -> None:
    """A handler's Reject puts the original bytes in the dead-letter topic beside its replies."""

    async def reject(inbound: Inbound[CompletionRequested]) -> Sequence[object]:
        return [invalidation(inbound.event), Reject(reason="too many messages")]

    bus = MemoryBus()
    raw = codec.encode(request(7))
    bus.append("in", raw)
    await bus.drain(make_pipeline(codec, for_each(reject)))
    (letter,) = [codec.decode(r.value or b"", DeadLettered) for r in bus.records("dlq")]
    assert letter.payload == raw
    assert letter.reason == "too many messages"
    assert letter.request_id == "r7"
    assert len(bus.records("out")) == 1


async def test_a_crash_leaves_offsets_uncommitted_so_a_restart_replays(codec: Codec) -> None:
    """An unexpected handler error propagates and the batch is handled again on restart."""
    calls: list[str] = []

    async def flaky(inbound: Inbound[CompletionRequested]) -> Sequence[object]:
        calls.append(inbound.event.request_id)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return [invalidation(inbound.event)]

    bus = MemoryBus(default_partitions=1)
    bus.append("in", codec.encode(request(1)))
    pipeline = make_pipeline(codec, for_each(flaky))
    with pytest.raises(RuntimeError, match="boom"):
        await bus.drain(pipeline)
    assert bus.records("out") == []
    await bus.drain(pipeline)
    assert calls == ["r1", "r1"]
    assert len(bus.records("out")) == 1


async def test_transient_errors_are_retried_with_backoff(codec: Codec) -> None:
    """A TransientError is retried by the runner and the event is then handled."""
    failures = [TransientError("milvus busy"), TransientError("milvus busy")]

    async def flaky(inbound: Inbound[CompletionRequested]) -> Sequence[object]:
        if failures:
            raise failures.pop()
        return [invalidation(inbound.event)]

    pipeline = make_pipeline(codec, for_each(flaky))
    pipeline.retry = type(pipeline.retry)(attempts=3, first_delay_s=0.001)
    bus = MemoryBus()
    bus.append("in", codec.encode(request(1)))
    await bus.drain(pipeline)
    assert len(bus.records("out")) == 1


async def test_trace_context_continues_across_the_hop(
    codec: Codec, spans: InMemorySpanExporter
) -> None:
    """The consumer span is a child of the producer's span, and outputs carry its context."""
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("app publish") as parent:
        headers = inject_headers()
    bus = MemoryBus()
    bus.append("in", codec.encode(request(1)), headers=headers)
    await bus.drain(make_pipeline(codec, for_each(echo)))
    (span,) = [s for s in spans.get_finished_spans() if s.name == "in process"]
    assert span.parent is not None
    assert span.parent.span_id == parent.get_span_context().span_id
    assert span.context.trace_id == parent.get_span_context().trace_id
    out_headers = dict(bus.records("out")[0].headers)
    assert format(parent.get_span_context().trace_id, "032x") in out_headers["traceparent"].decode()


async def test_dead_letter_of_an_oversized_record_is_truncated_not_lost(codec: Codec) -> None:
    """A record over the size limit is dead-lettered with a truncated payload and the reason."""
    small = Codec(SchemaRegistry.load(), max_message_bytes=4096)
    pipeline = make_pipeline(small, for_each(echo))
    bus = MemoryBus()
    bus.append("in", b"\xc3\x01" + b"x" * 10_000, key=b"big")
    await bus.drain(pipeline)
    (letter,) = [small.decode(r.value or b"", DeadLettered) for r in bus.records("dlq")]
    assert letter.error_class == "EventTooLarge"
    assert "payload truncated" in letter.reason
    assert len(letter.payload) > 2048
    assert letter.payload == (b"\xc3\x01" + b"x" * 10_000)[: len(letter.payload)]


async def test_undecodable_request_is_answered_from_its_headers(codec: Codec) -> None:
    """Bytes that do not decode still get an invalid_request answer when the headers name it."""
    pipeline = make_pipeline(codec, for_each(echo))
    pipeline.on_undecodable = ReplyPolicy("responses").undecodable
    bus = MemoryBus()
    headers = [
        ("semnexus-request-id", b"r-42"),
        ("semnexus-tenant", b"acme"),
        ("semnexus-reply-topic", b"somewhere-not-allowed"),
    ]
    bus.append("in", b"\xc3\x01garbage", key=b"k", headers=headers)
    bus.append("in", b"\x00no headers at all")
    await bus.drain(pipeline)
    (answer,) = [
        codec.decode(r.value or b"", CompletionResponded) for r in bus.records("responses")
    ]
    assert (answer.request_id, answer.tenant_id) == ("r-42", "acme")
    assert answer.status == ResponseStatus.INVALID_REQUEST
    assert "could not be decoded" in (answer.error_message or "")
    assert len(bus.records("dlq")) == 2


async def test_a_deferred_outcome_does_not_hold_back_its_batch_mates(codec: Codec) -> None:
    """Outcomes decided later are produced later; the rest of the batch goes out at once."""
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def later(inbound: Inbound[CompletionRequested]) -> Sequence[object]:
        await gate
        return [invalidation(inbound.event)]

    async def handler(batch: Sequence[Inbound[CompletionRequested]]) -> list[object]:
        first, second = batch
        return [[invalidation(first.event)], later(second)]

    bus = MemoryBus(default_partitions=1)
    bus.append("in", codec.encode(request(1)))
    bus.append("in", codec.encode(request(2)))
    draining = asyncio.create_task(bus.drain(make_pipeline(codec, handler, max_batch=2)))
    await asyncio.sleep(0.05)
    assert [codec.decode(r.value or b"").request_id for r in bus.records("out")] == ["r1"]
    assert not draining.done(), "the batch must not be committed before every outcome"
    gate.set_result(None)
    assert await draining == 2
    assert [codec.decode(r.value or b"").request_id for r in bus.records("out")] == ["r1", "r2"]


async def test_on_waiting_is_called_when_only_deferred_outcomes_remain(codec: Codec) -> None:
    """The bus learns when a batch only waits, and only a batch that does is announced."""
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    calls: list[list[str]] = []
    bus = MemoryBus(default_partitions=1)

    def produced() -> list[str]:
        return [codec.decode(r.value or b"").request_id for r in bus.records("out")]

    async def later(inbound: Inbound[CompletionRequested]) -> Sequence[object]:
        await gate
        return [invalidation(inbound.event)]

    async def handler(batch: Sequence[Inbound[CompletionRequested]]) -> list[object]:
        return [later(i) if i.event.request_id == "r2" else [invalidation(i.event)] for i in batch]

    pipeline = make_pipeline(codec, handler, max_batch=2)
    records = [Record("in", 0, n, None, codec.encode(request(n + 1))) for n in range(2)]
    processing = asyncio.create_task(
        pipeline.process(records, bus, on_waiting=lambda: calls.append(produced()))
    )
    await asyncio.sleep(0.05)
    assert calls == [["r1"]]  # called once r1 was out, while r2 still waits
    assert not processing.done()
    gate.set_result(None)
    await processing
    assert produced() == ["r1", "r2"]
    alone = [Record("in", 0, 2, None, codec.encode(request(3)))]
    await pipeline.process(alone, bus, on_waiting=lambda: calls.append(["unexpected"]))
    assert calls == [["r1"]]  # nothing deferred: not called
