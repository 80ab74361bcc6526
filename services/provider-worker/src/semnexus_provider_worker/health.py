"""What this worker has learnt about each provider's health, and what to publish.

Contract: :class:`HealthTracker` is fed every call result of a provider and
answers with the :class:`ProviderHealthChanged` to publish (or ``None``):

- 429 → ``cooling_down`` until ``retry-after`` / ``retry-after-ms`` / the
  exhausted limit's reset, else ``default_cooldown_s``; 529 (and a 5xx that
  carries ``retry-after``) → ``cooling_down`` for that, else
  ``overloaded_cooldown_s``. Every cooldown is clamped into
  ``[min_cooldown_s, max_cooldown_s]``.
- 5xx, 529, timeouts, connect errors and stalled streams count towards a
  circuit breaker: ``failure_threshold`` in a row open it (``circuit_open``
  for ``circuit_open_s``); after that it is half-open (calls go through); the
  first success closes it (``healthy``), the first failure opens it again.
- A success whose remaining requests or tokens fall under the provider's
  floor → ``cooling_down`` until that limit resets, so the router routes
  away before the provider starts refusing.

A provider this worker knows is cooling down or open is not called
(:meth:`blocked_until`): the request fails over at once. Events are
deduplicated: one is returned only when the state changes or the cooldown
moves by more than ``republish_margin_s``. The clock is injected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from semnexus_provider_worker.calls import Completed, Failed, RateLimits
from semnexus_provider_worker.config import HealthSettings, RateLimitFloor
from semnexus_shared.events import AttemptOutcome, HealthState, ProviderHealthChanged

__all__ = ["Clock", "HealthTracker"]

Clock = Callable[[], datetime]

_BREAKER_OUTCOMES = frozenset(
    {
        AttemptOutcome.SERVER_ERROR,
        AttemptOutcome.OVERLOADED,
        AttemptOutcome.TIMEOUT,
        AttemptOutcome.CONNECT_ERROR,
        AttemptOutcome.STALLED_STREAM,
    }
)


@dataclass(slots=True)
class _Provider:
    state: HealthState = HealthState.HEALTHY
    until: datetime | None = None
    failures: int = 0
    published: tuple[HealthState, datetime | None] | None = None


class HealthTracker:
    """Per-provider cooldowns and circuit breakers of one worker process."""

    def __init__(
        self,
        settings: HealthSettings,
        clock: Clock,
        floors: Mapping[str, RateLimitFloor] | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._floors = dict(floors or {})
        self._providers: dict[str, _Provider] = {}

    def _get(self, provider: str) -> _Provider:
        return self._providers.setdefault(provider, _Provider())

    def clamp(self, seconds: float | None, default: float) -> timedelta:
        """A cooldown the provider asked for (or the default), inside the configured bounds."""
        s = self._settings
        wanted = default if seconds is None else seconds
        return timedelta(seconds=min(max(wanted, s.min_cooldown_s), s.max_cooldown_s))

    def blocked_until(self, provider: str) -> datetime | None:
        """When this provider may be called again, if not now."""
        p = self._providers.get(provider)
        if p is None or p.until is None or p.state is HealthState.HEALTHY:
            return None
        return p.until if p.until > self._clock() else None

    def observe(self, provider: str, result: Completed | Failed) -> ProviderHealthChanged | None:
        """Fold one call result in; the health event to publish, if any."""
        if isinstance(result, Completed):
            return self._succeeded(provider, result.limits)
        return self._failed(provider, result)

    def _succeeded(self, provider: str, limits: RateLimits) -> ProviderHealthChanged | None:
        p = self._get(provider)
        p.failures = 0
        floor = self._floors.get(provider)
        now = self._clock()
        if floor is not None:
            low: list[float | None] = []
            if limits.remaining_requests is not None and limits.remaining_requests < floor.requests:
                low.append(limits.reset_requests_s)
            if limits.remaining_tokens is not None and limits.remaining_tokens < floor.tokens:
                low.append(limits.reset_tokens_s)
            if low:
                resets = [r for r in low if r is not None]
                until = now + self.clamp(
                    max(resets) if resets else None, self._settings.default_cooldown_s
                )
                return self._set(
                    provider,
                    HealthState.COOLING_DOWN,
                    until,
                    limits,
                    "remaining rate limit under the floor",
                )
        if p.state is not HealthState.HEALTHY and (p.until is None or p.until <= now):
            return self._set(provider, HealthState.HEALTHY, None, limits, "answered again")
        return None

    def _failed(self, provider: str, failure: Failed) -> ProviderHealthChanged | None:
        p = self._get(provider)
        now = self._clock()
        limits = failure.limits
        if failure.outcome in _BREAKER_OUTCOMES:
            p.failures += 1
            half_open = p.state is HealthState.CIRCUIT_OPEN
            if p.failures >= self._settings.failure_threshold or half_open:
                until = now + timedelta(seconds=self._settings.circuit_open_s)
                p.failures = 0
                return self._set(
                    provider,
                    HealthState.CIRCUIT_OPEN,
                    until,
                    limits,
                    f"circuit opened: {failure.reason}",
                )
        if failure.outcome is AttemptOutcome.RATE_LIMITED:
            hint = limits.retry_after_s
            if hint is None:
                exhausted = [
                    reset
                    for remaining, reset in (
                        (limits.remaining_requests, limits.reset_requests_s),
                        (limits.remaining_tokens, limits.reset_tokens_s),
                    )
                    if remaining == 0 and reset is not None
                ]
                hint = max(exhausted) if exhausted else None
            until = now + self.clamp(hint, self._settings.default_cooldown_s)
            return self._set(provider, HealthState.COOLING_DOWN, until, limits, failure.reason)
        if failure.outcome is AttemptOutcome.OVERLOADED or (
            failure.outcome is AttemptOutcome.SERVER_ERROR and limits.retry_after_s is not None
        ):
            until = now + self.clamp(limits.retry_after_s, self._settings.overloaded_cooldown_s)
            return self._set(provider, HealthState.COOLING_DOWN, until, limits, failure.reason)
        return None

    def _set(
        self,
        provider: str,
        state: HealthState,
        until: datetime | None,
        limits: RateLimits,
        reason: str,
    ) -> ProviderHealthChanged | None:
        p = self._get(provider)
        open_now = (
            p.state is HealthState.CIRCUIT_OPEN and p.until is not None and p.until > self._clock()
        )
        if open_now and state is HealthState.COOLING_DOWN and until is not None:
            # An open circuit is the stronger state; keep whichever ends later.
            until = max(until, p.until) if p.until is not None else until
            state = HealthState.CIRCUIT_OPEN
        p.state, p.until = state, until
        margin = timedelta(seconds=self._settings.republish_margin_s)
        last = p.published
        unchanged = (
            last is not None
            and last[0] is state
            and (until is None or (last[1] is not None and abs(until - last[1]) <= margin))
        )
        if unchanged:
            return None
        p.published = (state, until)
        return ProviderHealthChanged(
            provider=provider,
            state=state,
            cooldown_until=until,
            remaining_requests=limits.remaining_requests,
            remaining_tokens=limits.remaining_tokens,
            reason=reason[:500],
        )
