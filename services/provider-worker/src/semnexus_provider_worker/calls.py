"""One provider call: what is asked, how it ended, and the adapter protocol.

Contract: a :class:`ProviderClient` (one per provider, see ``transport``)
turns a :class:`ProviderCall` into a :class:`Completed` or a :class:`Failed`;
it raises nothing for provider trouble. Each failure is classified exactly
once, by the adapter, into an :class:`~semnexus_shared.events.AttemptOutcome`;
:data:`FAILS_OVER` says which outcomes move the request to the next provider.
Rate-limit headers of every answer, good or bad, come back as
:class:`RateLimits` (seconds, already parsed; ``None`` where absent or bogus).

Token usage convention (the cost-ledger relies on it): ``input_tokens`` is
every prompt token, cached ones included; ``cached_input_tokens`` is the part
read from the provider's prompt cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from semnexus_shared.events import (
    AttemptOutcome,
    FinishReason,
    Message,
    Sampling,
    ToolCall,
    Usage,
)

__all__ = [
    "FAILS_OVER",
    "Answer",
    "Completed",
    "Failed",
    "ProviderCall",
    "ProviderClient",
    "ProviderResult",
    "RateLimits",
]

FAILS_OVER = frozenset(
    {
        AttemptOutcome.RATE_LIMITED,
        AttemptOutcome.OVERLOADED,
        AttemptOutcome.SERVER_ERROR,
        AttemptOutcome.TIMEOUT,
        AttemptOutcome.CONNECT_ERROR,
        AttemptOutcome.STALLED_STREAM,
    }
)


@dataclass(frozen=True, slots=True)
class ProviderCall:
    """A completion to ask one provider for, by the request's deadline."""

    model: str
    messages: tuple[Message, ...]
    deadline: datetime
    sampling: Sampling = field(default_factory=Sampling)
    max_tokens: int | None = None
    tools: str | None = None
    response_format: str | None = None


@dataclass(frozen=True, slots=True)
class RateLimits:
    """What a provider's headers said about its limits (seconds from now)."""

    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    reset_requests_s: float | None = None
    reset_tokens_s: float | None = None
    retry_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """A provider's answer, parsed from its own wire format."""

    text: str
    finish_reason: FinishReason
    usage: Usage
    model: str
    tool_calls: tuple[ToolCall, ...] | None = None


@dataclass(frozen=True, slots=True)
class Completed:
    """The call succeeded."""

    answer: Answer
    status_code: int
    latency_ms: int
    limits: RateLimits = field(default_factory=RateLimits)


@dataclass(frozen=True, slots=True)
class Failed:
    """The call failed, classified once; ``usage`` if the provider reported any."""

    outcome: AttemptOutcome
    reason: str
    latency_ms: int
    status_code: int | None = None
    limits: RateLimits = field(default_factory=RateLimits)
    usage: Usage | None = None

    @property
    def fails_over(self) -> bool:
        """Whether the next provider in the chain should be tried."""
        return self.outcome in FAILS_OVER


ProviderResult = Completed | Failed


class ProviderClient(Protocol):
    """Calls one provider; no retries, no SDK."""

    async def complete(self, call: ProviderCall) -> ProviderResult:
        """Ask for one completion; provider trouble comes back as :class:`Failed`."""
        ...
