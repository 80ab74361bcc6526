"""Time as the simulator sees it: a monotonic clock for windows and fault
durations, and timezone-aware UTC wall time for RFC 3339 reset headers.

Contract: everything time-dependent takes a ``Clock``; ``SystemClock`` is the
real one, and tests pass their own to step time without sleeping. Sleeping
(latency, hangs) always uses real asyncio time.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """A source of monotonic seconds and UTC wall time."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin, never going backwards."""
        ...

    def now(self) -> datetime:
        """The current timezone-aware UTC time."""
        ...


class SystemClock:
    """The machine's clocks."""

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    def now(self) -> datetime:
        """``datetime.now(UTC)``."""
        return datetime.now(UTC)
