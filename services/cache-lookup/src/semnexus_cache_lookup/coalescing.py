"""Coalescing: identical requests in flight wait for one answer instead of missing twice.

The ``requests`` topic is keyed by the exact key, so identical requests reach
the same partition and hence the same process. When a request's exact lookup
misses and its answer will be stored, its key becomes a *flight* for
``window_s``, before its semantic lookup: copies of one question taken by two
of the process's agents at once are two concurrent batches, and a flight that
started only at the miss let both miss (``bench_cache --twins``: at 5 requests/s
every copy of a 5-copy burst missed at once). A later identical request (a
*twin*) joins the flight and waits, inside the lookup handler, until its
leader is answered from the cache (:meth:`InFlight.complete` with that entry
and its similarity), or the writer stores the provider's answer for that key,
or the window ends.

Why waiting inside the handler: the runner commits a record's offset only after
its batch returned, so a parked twin's offset is never committed before it is
answered. A crash while parked replays the twin; nothing is lost. A batch
holding a twin returns at most ``window_s`` late; everything else of it is
sent at once, and after ``kafka.batch_hold_s`` the runner lets the agent's
next batch run while this one waits (a hung provider would otherwise stall
every agent that took a twin). A twin whose window
ends unanswered is looked up once more (the fill may have been written by
another instance) and otherwise sent as its own miss.

Bounded: at most ``max_waiters`` twins per flight (the rest are misses of their
own) and at most ``max_flights`` flights at once; expired flights are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from semnexus_cache_lookup.entry import CacheEntry

__all__ = ["Flight", "InFlight"]


@dataclass(slots=True)
class Flight:
    """One miss on its way to a provider, and the twins waiting for its answer."""

    key: str
    request_id: str
    deadline: float
    # The answer and its similarity (1.0 for a stored fill).
    done: asyncio.Future[tuple[CacheEntry, float]] = field(repr=False)
    waiters: int = 0


class InFlight:
    """The in-flight table of one process: exact key → flight."""

    def __init__(
        self,
        window_s: float,
        max_waiters: int,
        *,
        max_flights: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_s = window_s
        self.max_waiters = max_waiters
        self.max_flights = max_flights
        self._clock = clock
        self._flights: OrderedDict[str, Flight] = OrderedDict()

    def __len__(self) -> int:
        return len(self._flights)

    def _prune(self) -> None:
        # One window for every flight, so deadlines follow insertion order and the
        # expired flights are the oldest: pruning stops at the first live one (it
        # scanned every flight on every miss, a few % of a saturated event loop).
        now = self._clock()
        flights = self._flights
        while flights:
            oldest = next(iter(flights.values()))
            if oldest.deadline > now:
                break
            # Its twins time out on their own deadline; nothing to wake.
            flights.popitem(last=False)

    def lead(self, key: str, request_id: str) -> None:
        """Record that ``request_id`` went out as the miss for ``key``."""
        if self.window_s <= 0 or self.max_waiters <= 0:
            return
        self._prune()
        if key in self._flights or len(self._flights) >= self.max_flights:
            # A live flight keeps its twins; an extra miss for the key does not replace it.
            return
        done: asyncio.Future[tuple[CacheEntry, float]] = asyncio.get_running_loop().create_future()
        self._flights[key] = Flight(key, request_id, self._clock() + self.window_s, done)

    def join(self, key: str, request_id: str | None = None) -> Flight | None:
        """The live flight for ``key`` if a twin may still wait on it.

        Never the flight ``request_id`` leads itself: a leader whose batch is
        retried must look up again, not wait for its own answer.
        """
        flight = self._flights.get(key)
        if flight is None or flight.deadline <= self._clock() or flight.done.done():
            return None
        if request_id is not None and flight.request_id == request_id:
            return None
        if flight.waiters >= self.max_waiters:
            return None
        flight.waiters += 1
        return flight

    def waiting(self, key: str) -> int:
        """How many twins wait on the flight for ``key`` (0 when none is in flight)."""
        flight = self._flights.get(key)
        return 0 if flight is None else flight.waiters

    def complete(self, key: str, entry: CacheEntry, similarity: float = 1.0) -> int:
        """``key`` has an answer (stored, or a cache hit): wake its twins; returns how many."""
        flight = self._flights.pop(key, None)
        if flight is None:
            return 0
        if not flight.done.done():
            flight.done.set_result((entry, similarity))
        return flight.waiters

    async def wait(self, flight: Flight) -> tuple[CacheEntry, float] | None:
        """The answer and its similarity, or ``None`` when the window ended first."""
        remaining = flight.deadline - self._clock()
        if remaining <= 0 and not flight.done.done():
            return None
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(asyncio.shield(flight.done), max(remaining, 0.0))
        return None
