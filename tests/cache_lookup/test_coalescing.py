"""Coalescing: identical requests in flight wait for one answer instead of missing again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from semnexus_cache_lookup.coalescing import InFlight
from semnexus_cache_lookup.handlers import LookupHandler
from semnexus_shared.events import SourceKind
from semnexus_shared.scope import request_key

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
