"""Wiring only: ``usage`` → :class:`~semnexus_cost_ledger.handlers.Ledger` → ``budget``; the API."""

from __future__ import annotations

from collections.abc import Callable

from semnexus_cost_ledger.api import ReportApi
from semnexus_cost_ledger.config import DEFAULT_TENANT, LedgerSettings
from semnexus_cost_ledger.handlers import Ledger
from semnexus_cost_ledger.pricing import PriceTable
from semnexus_cost_ledger.store import SqliteLedger
from semnexus_shared.events import BudgetChanged, UsageRecorded
from semnexus_shared.service import ServiceContext, Wiring
from semnexus_shared.stream import Route


def build_for(
    settings: LedgerSettings, store: SqliteLedger, prices: PriceTable
) -> Callable[[ServiceContext], Wiring]:
    """The ``build`` function :func:`~semnexus_shared.service.run_service` calls."""
    budgets = settings.all_budgets()
    named = {t: b for t, b in budgets.items() if t != DEFAULT_TENANT}

    def build(ctx: ServiceContext) -> Wiring:
        ledger = Ledger(prices, store, named, budgets.get(DEFAULT_TENANT))
        pipeline = ctx.pipeline(
            sources=[ctx.topics.usage],
            handler=ledger,
            routes={BudgetChanged: Route(ctx.topics.budget, key=lambda e: e.tenant_id.encode())},
            event_type=UsageRecorded,
            max_batch=settings.max_batch,
        )
        wiring = Wiring(pipelines=[pipeline])
        if settings.http.enabled:
            api = ReportApi(store, budgets)

            async def report_api() -> None:
                await api.serve(settings.http.host, settings.http.port)

            wiring.on_start.append(report_api)
        return wiring

    return build
