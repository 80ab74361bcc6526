"""The router's decisions: which provider chain answers a cache miss, or why none.

Contract: :meth:`Router.route` handles one ``CacheMissed`` (no I/O: provider
health and tenant budgets come in as read-only mappings, kept current by the
service's views; the clock is injected) and returns, in this order of checks:

1. the request's deadline has passed → ``deadline_exceeded`` response;
2. the alias is unknown → ``invalid_request`` response and a dead letter;
3. the tenant's budget is exceeded with action ``reject`` (or ``downgrade``
   with no cheaper alias to go to) → ``budget_exceeded`` response;
   action ``downgrade`` → the downgrade alias's chain (the budget event's
   ``downgrade_alias``, else the alias's ``downgrade``); state ``warning`` →
   the downgrade chain too when ``prefer_cheaper`` is on;
4. providers whose circuit is open or who are cooling down (``cooldown_until``
   in the future) are skipped; when that leaves none →
   ``rate_limited_all_providers`` with ``retry_after_ms`` = the soonest end of
   a cooldown, never a silent drop;
5. otherwise one ``ProviderCallRequested`` for the first available provider,
   with the rest of the available chain, ``attempt_number`` 1 and the
   deadline (the request's, or now + the default), scope and embedding copied
   from the miss.

Responses go to the request's reply topic when allowed (``ReplyPolicy``).
Event ids derive from the input's, so a replay produces the same ids.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from semnexus_router.config import Alias, Catalog, ChainEntry
from semnexus_router.errors import UnknownAlias
from semnexus_shared.events import (
    BudgetAction,
    BudgetChanged,
    BudgetState,
    CacheMissed,
    CompletionResponded,
    HealthState,
    ProviderCallRequested,
    ProviderHealthChanged,
    ResponseStatus,
    Usage,
    derive_event_id,
)
from semnexus_shared.replies import ReplyPolicy
from semnexus_shared.stream import Inbound, Reject

__all__ = ["Clock", "Router"]

Clock = Callable[[], datetime]

_NO_USAGE = Usage(input_tokens=0, output_tokens=0)


class Router:
    """Turns cache misses into provider calls, or into actionable refusals."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        health: Mapping[str, ProviderHealthChanged],
        budgets: Mapping[str, BudgetChanged],
        replies: ReplyPolicy,
        clock: Clock,
        default_deadline: timedelta = timedelta(seconds=60),
        prefer_cheaper: bool = True,
        unavailable_retry_ms: int = 5000,
    ) -> None:
        self._catalog = catalog
        self._health = health
        self._budgets = budgets
        self._replies = replies
        self._clock = clock
        self._default_deadline = default_deadline
        self._prefer_cheaper = prefer_cheaper
        self._unavailable_retry_ms = unavailable_retry_ms

    async def route_inbound(self, inbound: Inbound[CacheMissed]) -> Sequence[object]:
        """The ``for_each`` handler."""
        return self.route(inbound.event)

    def route(self, miss: CacheMissed) -> list[object]:
        """The outcomes of one cache miss."""
        request = miss.request
        now = self._clock()
        if request.deadline is not None and request.deadline <= now:
            return [
                self._respond(
                    miss, ResponseStatus.DEADLINE_EXCEEDED, "deadline passed before routing"
                )
            ]
        alias = self._catalog.aliases.get(request.model_alias)
        if alias is None:
            reason = f"unknown model alias {request.model_alias!r}"
            return [
                self._respond(miss, ResponseStatus.INVALID_REQUEST, reason),
                Reject(reason, UnknownAlias.__name__),
            ]
        chosen = self._budgeted(miss, alias)
        if isinstance(chosen, CompletionResponded):
            return [self._replies.reply(request, chosen)]
        available: list[ChainEntry] = []
        ends: list[datetime] = []
        for entry in chosen.entries():
            until = self._unavailable_until(entry.provider, now)
            if until is None:
                available.append(entry)
            else:
                ends.append(until)
        if not available:
            soonest = min(ends)
            retry_ms = (
                max(round((soonest - now) / timedelta(milliseconds=1)), 1)
                if soonest != datetime.max.replace(tzinfo=now.tzinfo)
                else self._unavailable_retry_ms
            )
            states = ", ".join(
                f"{e.provider}: {self._health[e.provider].state.value}" for e in chosen.entries()
            )
            return [
                self._respond(
                    miss,
                    ResponseStatus.RATE_LIMITED_ALL_PROVIDERS,
                    f"every provider is unavailable ({states})",
                    retry_after_ms=retry_ms,
                )
            ]
        first, rest = available[0], available[1:]
        return [
            ProviderCallRequested(
                event_id=derive_event_id(miss.event_id, "route"),
                request_id=miss.request_id,
                tenant_id=miss.tenant_id,
                request=request,
                provider=first.provider,
                model=first.model,
                chain=tuple(str(e) for e in rest),
                attempt_number=1,
                deadline=request.deadline or now + self._default_deadline,
                scope=miss.scope,
                embedding=miss.embedding,
            )
        ]

    def _budgeted(self, miss: CacheMissed, alias: Alias) -> Alias | CompletionResponded:
        """The alias to route by, given the tenant's budget, or a refusal."""
        budget = self._budgets.get(miss.tenant_id)
        if budget is None:
            return alias
        cheaper_name = budget.downgrade_alias or alias.downgrade
        cheaper = self._catalog.aliases.get(cheaper_name) if cheaper_name else None
        exceeded = budget.state is BudgetState.EXCEEDED
        refusal = self._refusal(miss, budget)
        if exceeded and budget.action is BudgetAction.REJECT:
            return refusal
        if budget.action is BudgetAction.DOWNGRADE and (exceeded or cheaper is not None):
            return cheaper if cheaper is not None else refusal
        if budget.state is BudgetState.WARNING and self._prefer_cheaper and cheaper is not None:
            return cheaper
        return alias

    def _refusal(self, miss: CacheMissed, budget: BudgetChanged) -> CompletionResponded:
        return CompletionResponded(
            event_id=derive_event_id(miss.event_id, "response"),
            request_id=miss.request_id,
            tenant_id=miss.tenant_id,
            status=ResponseStatus.BUDGET_EXCEEDED,
            error_message=(
                f"budget for {budget.period} exceeded: spent {budget.spent_micros} of "
                f"{budget.budget_micros} micro-USD"
            ),
            usage=_NO_USAGE,
        )

    def _unavailable_until(self, provider: str, now: datetime) -> datetime | None:
        """When a skipped provider becomes usable again; ``None`` if usable now."""
        health = self._health.get(provider)
        if health is None or health.state is HealthState.HEALTHY:
            return None
        until = health.cooldown_until
        if until is None:
            # Cooling or open with no end given: skip it, with no retry time to offer.
            return datetime.max.replace(tzinfo=now.tzinfo)
        return until if until > now else None

    def _respond(
        self,
        miss: CacheMissed,
        status: ResponseStatus,
        message: str,
        *,
        retry_after_ms: int | None = None,
    ) -> object:
        return self._replies.error(
            miss.request,
            caused_by=miss.event_id,
            status=status,
            message=message,
            retry_after_ms=retry_after_ms,
        )
