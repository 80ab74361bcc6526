"""Scripted faults of one provider and the decision they make for each call.

Contract: ``FaultState.decide(wire)`` is asked once per completion call, after
authentication and request validation, and returns the first fault that fires,
in this order:

1. ``forced_status``: that status in the provider's error format, for the next
   ``count`` calls (or every call);
2. ``hang``: a ``Hang`` the endpoint honours by answering nothing for ``for_s``
   seconds, or until the client disconnects;
3. ``rate_limit``: 429 with ``retry-after`` (and ``retry-after-ms`` if asked)
   while fewer than ``for_s`` seconds have passed since the faults were set;
4. ``overloaded``: 529 ``overloaded_error`` on the Anthropic wire, 503 on the
   OpenAI wires, with probability ``rate``;
5. ``server_error``: ``status`` with probability ``rate``;

or ``None``. ``stall_stream`` and ``bogus_headers`` are not decisions but
modifiers the endpoint reads. Dice come from the provider's seeded RNG, so a
given seed and call sequence always fault the same calls. Setting faults
(re)starts their timers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from semnexus_simulator.clock import Clock
from semnexus_simulator.config import BogusHeadersFault, Faults, StallFault, Wire
from semnexus_simulator.errors import ErrorKind, ProviderError


@dataclass(frozen=True, slots=True)
class Hang:
    """Answer nothing for ``for_s`` seconds (None: until the client disconnects)."""

    for_s: float | None


class FaultState:
    """The active fault plan of one provider."""

    def __init__(self, faults: Faults, clock: Clock, rng: random.Random) -> None:
        self._clock = clock
        self._rng = rng
        self.plan = faults
        self._since = clock.monotonic()
        self._forced_left: int | None = None
        self.set(faults)

    def set(self, faults: Faults) -> None:
        """Replace the plan and restart its timers and counters."""
        self.plan = faults
        self._since = self._clock.monotonic()
        forced = faults.forced_status
        self._forced_left = forced.count if forced is not None else None

    def clear(self) -> None:
        """Remove every fault."""
        self.set(Faults())

    @property
    def stall(self) -> StallFault | None:
        """The stream stall to apply, if any."""
        return self.plan.stall_stream

    @property
    def bogus_headers(self) -> BogusHeadersFault | None:
        """The bogus rate-limit header mode, if any."""
        return self.plan.bogus_headers

    def _roll(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate

    def decide(self, wire: Wire) -> ProviderError | Hang | None:
        """The fault this call meets, or ``None`` for a normal answer."""
        hang = self.plan.hang
        forced = self._forced()
        if forced is not None:
            return forced
        if hang is not None and self._roll(hang.rate):
            return Hang(hang.for_s)
        return self._rate_limited() or self._overloaded(wire) or self._server_error()

    def _forced(self) -> ProviderError | None:
        forced = self.plan.forced_status
        if forced is None or self._forced_left == 0:
            return None
        if self._forced_left is not None:
            self._forced_left -= 1
        return ProviderError(
            forced.status,
            ErrorKind.for_status(forced.status),
            f"Simulated error with status {forced.status}.",
        )

    def _rate_limited(self) -> ProviderError | None:
        limited = self.plan.rate_limit
        if limited is None or self._clock.monotonic() - self._since >= limited.for_s:
            return None
        return ProviderError(
            429,
            ErrorKind.RATE_LIMIT,
            "Rate limit reached (simulated). Please try again later.",
            code="rate_limit_exceeded",
            retry_after_s=limited.retry_after_s,
            retry_after_ms=limited.retry_after_ms,
        )

    def _overloaded(self, wire: Wire) -> ProviderError | None:
        overloaded = self.plan.overloaded
        if overloaded is None or not self._roll(overloaded.rate):
            return None
        if wire is Wire.ANTHROPIC:
            return ProviderError(529, ErrorKind.OVERLOADED, "Overloaded")
        return ProviderError(
            503, ErrorKind.SERVER, "The engine is currently overloaded, please try again later."
        )

    def _server_error(self) -> ProviderError | None:
        failing = self.plan.server_error
        if failing is None or not self._roll(failing.rate):
            return None
        return ProviderError(
            failing.status,
            ErrorKind.SERVER,
            "The server had an error while processing your request. Sorry about that!",
        )


def bogus_value(mode: str, style: str) -> str:
    """An unusable header value of the given style: ``int``, ``duration`` or ``rfc3339``."""
    table = {
        "garbage": {"int": "lots", "duration": "soon-ish", "rfc3339": "next tuesday"},
        "negative": {"int": "-42", "duration": "-6m0s", "rfc3339": "-0001-01-01T00:00:00Z"},
        "huge": {
            "int": "99999999999999999999999",
            "duration": "9999999h0m0s",
            "rfc3339": "9999-12-31T23:59:59Z",
        },
    }
    return table[mode][style]
