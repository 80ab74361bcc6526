"""The ledger's decisions: charge each usage event once, then announce budget changes.

Contract of :class:`Ledger` (the pipeline's batch handler):

1. Every event in the batch is priced (:func:`~semnexus_cost_ledger.pricing.charge`)
   and the batch is handed to the store in one call; the store's dedupe on
   ``event_id`` decides which are new. A duplicate (a replay after a crash, a
   request published three times) produces nothing and changes nothing.
2. For every tenant in the batch that has a budget, its spend in the current
   period (the later of the last announced period and the batch's newest
   month) is assessed; a new state or a new period is announced as a
   ``BudgetChanged`` outcome (attached to that tenant's last event in the
   batch) and remembered in the store.
3. The first batch after start re-announces every remembered state. A crash
   between remembering a state and Kafka acknowledging its ``BudgetChanged``
   would otherwise lose it; the replayed batch that follows a restart closes
   that gap. ``budget`` is compacted and the event id is derived from (tenant,
   period, state), so a repeat is harmless.

Nothing here does I/O itself: the store is a :class:`LedgerStore`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import structlog

from semnexus_cost_ledger.budgets import Assessment, TenantBudget, assess, period_of
from semnexus_cost_ledger.pricing import Charge, PriceTable, charge
from semnexus_shared.events import UsageRecorded
from semnexus_shared.metrics import meter
from semnexus_shared.stream import Inbound

__all__ = ["Ledger", "LedgerStore"]

log = structlog.get_logger("semnexus.cost_ledger")

# Money charged and saved, in micro-USD, exported by the service (no I/O here).
_COST = meter("semnexus.ledger").create_counter(
    "semnexus_cost_micros", unit="1", description="money charged, micro-USD"
)
_SAVED = meter("semnexus.ledger").create_counter(
    "semnexus_cache_saved_micros", unit="1", description="money the cache saved, micro-USD"
)


class LedgerStore(Protocol):
    """Where charges and announced budget states are kept (SQLite in production)."""

    async def record(self, charges: Sequence[Charge]) -> list[Charge]:
        """Charge a batch atomically; return those whose event id was new."""
        ...

    async def spend(self, periods: Mapping[str, str]) -> dict[str, int]:
        """Micro-USD charged to each tenant in its period (tenant → ``YYYY-MM``)."""
        ...

    async def announced(self) -> dict[str, Assessment]:
        """Last announced budget state per tenant."""
        ...

    async def announce(self, assessments: Sequence[Assessment]) -> None:
        """Remember newly announced states."""
        ...


class Ledger:
    """Batch handler for ``usage``: charges once, announces budget state changes."""

    def __init__(
        self,
        prices: PriceTable,
        store: LedgerStore,
        budgets: Mapping[str, TenantBudget],
        default_budget: TenantBudget | None = None,
    ) -> None:
        self.prices = prices
        self.store = store
        self.budgets = dict(budgets)
        self.default_budget = default_budget
        self._announced: dict[str, Assessment] | None = None

    def budget_of(self, tenant_id: str) -> TenantBudget | None:
        """The tenant's budget, or the default one, or None."""
        return self.budgets.get(tenant_id, self.default_budget)

    async def charge(self, events: Sequence[UsageRecorded]) -> list[Charge]:
        """Price and record events; return the charges that were new."""
        new = await self.store.record([charge(e, self.prices) for e in events])
        for c in new:
            labels = {"tenant_id": c.tenant_id, "provider": c.provider, "model": c.model}
            _COST.add(c.cost_micros, labels)
            _SAVED.add(c.cache_saved_micros, labels)
            if not c.priced:
                log.warning(
                    "usage event has no price; charged 0",
                    event_id=c.event_id,
                    tenant_id=c.tenant_id,
                    provider=c.provider,
                    model=c.model,
                    created_at=c.created_at.isoformat(),
                    price_table=self.prices.version,
                )
        return new

    async def __call__(self, batch: Sequence[Inbound[UsageRecorded]]) -> list[list[object]]:
        """Charge the batch; return each event's outcomes (budget announcements only)."""
        outcomes: list[list[object]] = [[] for _ in batch]
        if not batch:
            return outcomes
        await self.charge([i.event for i in batch])
        first_batch = self._announced is None
        if self._announced is None:
            self._announced = await self.store.announced()
        announced = self._announced
        last_index: dict[str, int] = {}
        periods: dict[str, str] = {}
        for n, inbound in enumerate(batch):
            event = inbound.event
            if self.budget_of(event.tenant_id) is None:
                continue
            last_index[event.tenant_id] = n
            previous = announced.get(event.tenant_id)
            periods[event.tenant_id] = max(
                periods.get(event.tenant_id, previous.period if previous else ""),
                period_of(event.created_at),
            )
        spent = await self.store.spend(periods) if periods else {}
        changed: list[Assessment] = []
        for tenant, n in last_index.items():
            budget = self.budget_of(tenant)
            assert budget is not None  # tenants without a budget were skipped above
            now = assess(tenant, periods[tenant], spent.get(tenant, 0), budget)
            if now.changed_from(announced.get(tenant)):
                changed.append(now)
                outcomes[n].append(now.event(budget))
                log.info(
                    "budget state changed",
                    tenant_id=tenant,
                    period=now.period,
                    state=now.state.value,
                    spent_micros=now.spent_micros,
                    budget_micros=budget.budget_micros,
                )
        if first_batch:
            for tenant, remembered in announced.items():
                budget = self.budget_of(tenant)
                if budget is not None and tenant not in {a.tenant_id for a in changed}:
                    outcomes[-1].append(remembered.event(budget))
        if changed:
            await self.store.announce(changed)
            announced.update({a.tenant_id: a for a in changed})
        return outcomes
