"""The ledger's HTTP API and web page (aiohttp), served beside the pipeline.

Routes (JSON unless noted; money as integer micro-USD plus a ``*_usd`` string):

- ``GET /healthz``: ``{"status": "ok", "charged_events": n}``.
- ``GET /api/tenants``: every tenant with spend, its all-time totals and its
  last announced budget state.
- ``GET /api/spend?tenant=&from=&to=``: totals, savings and cache hit rate for
  a tenant (or all) between two UTC dates (inclusive, ``YYYY-MM-DD``), broken
  down by provider, by provider and model, and by day. A bad parameter → 400.
- ``GET /``: a self-contained HTML page (inline JS drawing SVG; nothing is
  fetched from outside this service) with spend, savings, hit rate and
  provider mix charts.

It reads only committed data, through the store's reader connections, in a
worker thread. It is started by ``Wiring.on_start`` in the service process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from functools import partial
from importlib.resources import files
from typing import Any

from aiohttp import web

from semnexus_cost_ledger.budgets import TenantBudget
from semnexus_cost_ledger.store import SqliteLedger
from semnexus_cost_ledger.tally import Tally

__all__ = ["ReportApi", "spend_report", "tally_json", "tenants_report", "usd_text"]

_MONEY = ("cost_micros", "failed_cost_micros", "cache_saved_micros", "prompt_cache_saved_micros")


def usd_text(micros: int) -> str:
    """Micro-USD as an exact USD decimal string (``1234567`` → ``1.234567``)."""
    return str(Decimal(micros).scaleb(-6).quantize(Decimal("0.000001")))


def tally_json(tally: Tally, **key: str) -> dict[str, Any]:
    """A tally as JSON: counters, derived rates, and money as USD strings too."""
    out: dict[str, Any] = {**key, **tally.as_dict()}
    out["answered"] = tally.answered
    out["cache_hit_rate"] = round(tally.cache_hit_rate, 6)
    for name in _MONEY:
        out[name.replace("_micros", "_usd")] = usd_text(out[name])
    return out


def spend_report(
    store: SqliteLedger, tenant: str | None, start: date | None, end: date | None
) -> dict[str, Any]:
    """The ``/api/spend`` document (blocking; reads committed rows)."""
    rows = partial(store.report, tenant=tenant, start=start, end=end)
    totals = rows(())[0].tally
    return {
        "tenant": tenant,
        "from": start.isoformat() if start else None,
        "to": end.isoformat() if end else None,
        "totals": tally_json(totals),
        "by_provider": [tally_json(r.tally, **r.key) for r in rows(["provider"])],
        "by_model": [tally_json(r.tally, **r.key) for r in rows(["provider", "model"])],
        "by_day": [tally_json(r.tally, **r.key) for r in rows(["day"])],
    }


def tenants_report(store: SqliteLedger, budgets: Mapping[str, TenantBudget]) -> dict[str, Any]:
    """The ``/api/tenants`` document (blocking)."""
    announced = store.announced_report()
    tenants = []
    for row in store.report(["tenant_id"]):
        tenant = row.key["tenant_id"]
        state = announced.get(tenant)
        budget = budgets.get(tenant, budgets.get("*"))
        tenants.append(
            {
                **tally_json(row.tally, tenant_id=tenant),
                "budget": None
                if budget is None
                else {
                    "budget_micros": budget.budget_micros,
                    "action": budget.action,
                    "period": state.period if state else None,
                    "state": state.state.value if state else None,
                    "spent_micros": state.spent_micros if state else None,
                },
            }
        )
    return {"tenants": tenants}


def _date(request: web.Request, name: str) -> date | None:
    value = request.query.get(name) or None
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise web.HTTPBadRequest(
            text=f'{{"error": "{name} must be a date YYYY-MM-DD"}}', content_type="application/json"
        ) from None


class ReportApi:
    """The aiohttp application over a ledger database."""

    def __init__(self, store: SqliteLedger, budgets: Mapping[str, TenantBudget]) -> None:
        self.store = store
        self.budgets = dict(budgets)
        self._page = files("semnexus_cost_ledger").joinpath("page.html").read_text("utf-8")

    def application(self) -> web.Application:
        """The routes, as an aiohttp app (tests run it with aiohttp's test client)."""
        app = web.Application()
        app.router.add_get("/", self.page)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/api/tenants", self.tenants)
        app.router.add_get("/api/spend", self.spend)
        return app

    async def page(self, _request: web.Request) -> web.Response:
        """The charts page."""
        return web.Response(text=self._page, content_type="text/html")

    async def healthz(self, _request: web.Request) -> web.Response:
        """Liveness, and how many events are charged."""
        count = await asyncio.to_thread(self.store.charged_count)
        return web.json_response({"status": "ok", "charged_events": count})

    async def tenants(self, _request: web.Request) -> web.Response:
        """Every tenant with spend."""
        doc = await asyncio.to_thread(tenants_report, self.store, self.budgets)
        return web.json_response(doc)

    async def spend(self, request: web.Request) -> web.Response:
        """Spend, savings and hit rate for a tenant and date range."""
        start, end = _date(request, "from"), _date(request, "to")
        if start and end and start > end:
            return web.json_response({"error": "from is after to"}, status=400)
        tenant = request.query.get("tenant") or None
        doc = await asyncio.to_thread(spend_report, self.store, tenant, start, end)
        return web.json_response(doc)

    async def serve(self, host: str, port: int) -> None:
        """Serve until cancelled (the process ends)."""
        runner = web.AppRunner(self.application(), handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
