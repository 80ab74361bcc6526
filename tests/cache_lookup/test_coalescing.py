"""Coalescing: identical requests in flight wait for one answer instead of missing again."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import cast

from opentelemetry import trace

from semnexus_cache_lookup.coalescing import InFlight
from semnexus_cache_lookup.entry import CacheEntry
from semnexus_cache_lookup.handlers import LookupHandler
from semnexus_shared.events import (
    CacheMissed,
    CacheMode,
    CachePolicy,
    CompletionRequested,
    CompletionResponded,
    SourceKind,
)
from semnexus_shared.scope import request_key
from semnexus_shared.stream import Emit, Inbound, Record

from .conftest import Harness, build_harness, fill_for, make_request


async def _until(predicate: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def _inflight(harness: Harness) -> InFlight:
    handler = harness.lookup.handler
    assert isinstance(handler, LookupHandler)
    return handler.inflight


async def test_identical_concurrent_requests_cause_one_miss(tmp_path: Path) -> None:
    """Five identical requests: one miss; the four twins wait and are answered by its fill."""
    harness = build_harness(tmp_path / "cache.db", coalescing_window_s=5.0)
    await harness.store.ensure()
    for i in range(5):
        harness.request(make_request(request_id=f"r{i}"))
    key = request_key(make_request()).decode()
    lookup = asyncio.create_task(harness.bus.drain(harness.lookup))
    await _until(lambda: _inflight(harness).waiting(key) == 4, "four parked twins")
    [missed] = harness.missed()
    assert missed.request_id == "r0"
    assert not lookup.done()  # the twins' offsets stay uncommitted while they wait

    harness.fill(fill_for(missed))
    await harness.bus.drain(harness.writer)
    await asyncio.wait_for(lookup, 5)
    await harness.run()
    assert len(harness.missed()) == 1
    answers = harness.responses()
    assert sorted(r.request_id for r in answers) == ["r1", "r2", "r3", "r4"]
    assert all(r.source is not None and r.source.kind is SourceKind.CACHE for r in answers)
    await harness.store.close()


async def test_twins_become_misses_when_no_fill_arrives(tmp_path: Path) -> None:
    """Past the window, a parked twin is sent as its own miss: nothing waits forever."""
    harness = build_harness(tmp_path / "cache.db", coalescing_window_s=0.3)
    await harness.store.ensure()
    for i in range(3):
        harness.request(make_request(request_id=f"r{i}"))
    started = time.monotonic()
    await harness.run()
    assert sorted(m.request_id for m in harness.missed()) == ["r0", "r1", "r2"]
    assert time.monotonic() - started < 5
    await harness.store.close()


async def test_waiters_per_key_are_bounded(tmp_path: Path) -> None:
    """Beyond max_waiters, further twins are misses of their own."""
    harness = build_harness(
        tmp_path / "cache.db", coalescing_window_s=5.0, coalescing_max_waiters=2
    )
    await harness.store.ensure()
    for i in range(5):
        harness.request(make_request(request_id=f"r{i}"))
    lookup = asyncio.create_task(harness.bus.drain(harness.lookup))
    key = request_key(make_request()).decode()
    await _until(lambda: _inflight(harness).waiting(key) == 2, "two parked twins")
    # the leader's miss and the two over the bound go out at once; the two
    # parked twins do not hold them back
    await _until(lambda: len(harness.missed()) == 3, "three misses produced while twins wait")
    harness.fill(fill_for(harness.missed()[0]))
    await harness.bus.drain(harness.writer)
    await asyncio.wait_for(lookup, 5)
    assert len(harness.responses()) == 2
    assert len(harness.missed()) == 3  # the leader and the two twins over the bound
    await harness.store.close()


def _inbound(request: CompletionRequested, offset: int) -> Inbound[CompletionRequested]:
    return Inbound(request, Record("requests", 0, offset, None, b""), trace.INVALID_SPAN)


async def _decided(outcome: Sequence[object] | Awaitable[Sequence[object]]) -> list[object]:
    return list(await outcome if inspect.isawaitable(outcome) else outcome)


def _answer(outcomes: list[object]) -> CompletionResponded | None:
    for out in outcomes:
        if isinstance(out, Emit) and isinstance(out.event, CompletionResponded):
            return out.event
    return None


async def _two_batches_at_once(
    harness: Harness, first: CompletionRequested, second: CompletionRequested
) -> tuple[asyncio.Future[list[object]], asyncio.Future[list[object]]]:
    """Both requests in batches of their own, handled concurrently (two agents)."""
    handler = _lookup(harness)

    async def one(request: CompletionRequested, offset: int) -> list[object]:
        [outcome] = await handler([_inbound(request, offset)])
        return await _decided(outcome)

    return asyncio.ensure_future(one(first, 0)), asyncio.ensure_future(one(second, 1))


def _lookup(harness: Harness) -> LookupHandler:
    handler = harness.lookup.handler
    assert isinstance(handler, LookupHandler)
    return handler


async def test_twins_in_concurrent_batches_cause_one_miss(tmp_path: Path) -> None:
    """Two agents take copies at once: one leads from its exact miss on, the other waits."""
    harness = build_harness(tmp_path / "cache.db", coalescing_window_s=5.0)
    await harness.store.ensure()
    a, b = await _two_batches_at_once(
        harness, make_request(request_id="r1"), make_request(request_id="r2")
    )
    done, _ = await asyncio.wait({a, b}, return_when=asyncio.FIRST_COMPLETED)
    [leader] = done
    [missed] = [o for o in leader.result() if isinstance(o, CacheMissed)]
    waiting = b if leader is a else a
    await asyncio.sleep(0.1)
    assert not waiting.done()  # the twin waits for the leader's answer
    harness.fill(fill_for(missed))
    await harness.bus.drain(harness.writer)
    answer = _answer(await asyncio.wait_for(waiting, 5))
    assert answer is not None
    assert answer.source is not None
    assert answer.source.kind is SourceKind.CACHE
    await harness.store.close()


async def test_a_twin_takes_its_leaders_semantic_hit_within_its_own_policy(
    tmp_path: Path,
) -> None:
    """A leader served semantically answers its twins, but not one that reads exact only."""
    harness = build_harness(tmp_path / "cache.db", coalescing_window_s=5.0)
    await harness.store.ensure()
    await harness.miss_then_fill(make_request(request_id="seed"))
    paraphrase = "My password: how do I reset it?"
    a, b = await _two_batches_at_once(
        harness,
        make_request(paraphrase, request_id="p1"),
        make_request(paraphrase, request_id="p2"),
    )
    answers = [_answer(await asyncio.wait_for(f, 5)) for f in (a, b)]
    similarities = [x.source.similarity for x in answers if x is not None and x.source]
    assert len(similarities) == 2
    assert similarities[0] == similarities[1] < 1.0  # the twin got the leader's semantic hit

    # A twin that reads exact only is never handed a semantic answer.
    strict = make_request(
        paraphrase, request_id="p3", policy=CachePolicy(mode=CacheMode.ONLY_EXACT)
    )
    key = request_key(strict).decode()
    _inflight(harness).lead(key, "someone-else")
    [pending] = await _lookup(harness)([_inbound(strict, 2)])
    assert inspect.isawaitable(pending)  # it joined the flight
    [stored] = (await harness.store.get([request_key(make_request()).decode()])).values()
    assert _inflight(harness).complete(key, stored, 0.95) == 1
    outcomes = await _decided(pending)
    assert _answer(outcomes) is None
    assert any(isinstance(o, CacheMissed) for o in outcomes)
    await harness.store.close()


async def test_a_leader_never_joins_its_own_flight() -> None:
    """A leader whose batch is retried looks up again instead of waiting for itself."""
    inflight = InFlight(5.0, 8)
    inflight.lead("k", "r1")
    assert inflight.join("k", "r1") is None
    assert inflight.join("k", "r2") is not None


async def test_expired_flights_are_dropped_oldest_first_and_free_their_room() -> None:
    """Pruning stops at the first live flight; an answered flight in between changes nothing."""
    now = [0.0]
    inflight = InFlight(1.0, 8, max_flights=3, clock=lambda: now[0])
    for n, key in enumerate(["a", "b", "c"]):
        now[0] = n * 0.4  # deadlines 1.0, 1.4, 1.8
        inflight.lead(key, f"r-{key}")
    inflight.lead("d", "r-d")
    assert len(inflight) == 3  # full: "d" went out as a plain miss, no flight
    assert inflight.complete("b", cast(CacheEntry, object())) == 0  # answered: gone at once
    now[0] = 1.5  # "a" expired, "c" lives
    inflight.lead("e", "r-e")
    assert len(inflight) == 2
    assert inflight.join("a") is None
    assert inflight.join("c") is not None
    assert inflight.join("e") is not None
    now[0] = 3.0
    inflight.lead("f", "r-f")
    assert len(inflight) == 1
    assert inflight.join("f") is not None
