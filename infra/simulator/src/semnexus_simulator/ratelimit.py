"""Rate-limit bookkeeping of one provider, and the reset formats providers use.

Contract: ``RateWindow`` is a fixed window of ``window_s`` seconds holding a
budget of requests and tokens. ``admit(input_tokens)`` refuses (returns a
``Refusal`` with the seconds until the window resets) when no request is left
or the remaining tokens cannot cover the prompt; otherwise it takes one request
and the prompt's tokens. ``charge(output_tokens)`` adds the completion's tokens
once they are known. ``snapshot()`` is what the headers report. Remaining counts
never go below zero.

``format_duration`` writes OpenAI's reset style ("20ms", "1s", "6m0s",
"1h2m3s"); ``format_rfc3339`` writes Anthropic's ("2025-01-01T00:00:30Z").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from semnexus_simulator.clock import Clock
from semnexus_simulator.config import RateLimitConfig


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The budget as headers report it."""

    requests_limit: int
    requests_remaining: int
    tokens_limit: int
    tokens_remaining: int
    input_tokens_remaining: int
    output_tokens_remaining: int
    reset_s: float


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why and for how long a request is refused."""

    dimension: str
    limit: int
    used: int
    retry_after_s: float


class RateWindow:
    """A fixed-window request and token budget."""

    def __init__(self, config: RateLimitConfig, clock: Clock) -> None:
        self.config = config
        self._clock = clock
        self._started = clock.monotonic()
        self._requests = 0
        self._input_tokens = 0
        self._output_tokens = 0

    def _roll(self) -> None:
        now = self._clock.monotonic()
        if now - self._started >= self.config.window_s:
            windows = math.floor((now - self._started) / self.config.window_s)
            self._started += windows * self.config.window_s
            self._requests = self._input_tokens = self._output_tokens = 0

    def _reset_s(self) -> float:
        return max(self._started + self.config.window_s - self._clock.monotonic(), 0.0)

    def admit(self, input_tokens: int) -> Refusal | None:
        """Take one request and the prompt's tokens, or say why not."""
        self._roll()
        used_tokens = self._input_tokens + self._output_tokens
        if self._requests >= self.config.requests:
            return Refusal("requests", self.config.requests, self._requests, self._reset_s())
        if used_tokens + input_tokens > self.config.tokens:
            return Refusal("tokens", self.config.tokens, used_tokens, self._reset_s())
        self._requests += 1
        self._input_tokens += input_tokens
        return None

    def charge(self, output_tokens: int) -> None:
        """Add a completion's tokens to the current window."""
        self._roll()
        self._output_tokens += output_tokens

    def snapshot(self) -> Snapshot:
        """The current limits and what is left of them."""
        self._roll()
        limit = self.config.tokens
        return Snapshot(
            requests_limit=self.config.requests,
            requests_remaining=max(self.config.requests - self._requests, 0),
            tokens_limit=limit,
            tokens_remaining=max(limit - self._input_tokens - self._output_tokens, 0),
            input_tokens_remaining=max(limit - self._input_tokens, 0),
            output_tokens_remaining=max(limit - self._output_tokens, 0),
            reset_s=self._reset_s(),
        )


def format_duration(seconds: float) -> str:
    """Write seconds the way OpenAI's ``x-ratelimit-reset-*`` headers do."""
    if seconds < 1:
        return f"{max(math.ceil(seconds * 1000), 0)}ms"
    if seconds < 60:
        return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
    total = math.ceil(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def format_rfc3339(moment: datetime) -> str:
    """Write a UTC moment the way Anthropic's ``*-reset`` headers do."""
    return moment.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def reset_at(now: datetime, seconds: float) -> str:
    """The RFC 3339 time ``seconds`` after ``now``, rounded up to the second."""
    return format_rfc3339(now + timedelta(seconds=math.ceil(seconds)))
