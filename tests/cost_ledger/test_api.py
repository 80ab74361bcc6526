"""The report API and page return what the database holds."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
from collections.abc import AsyncIterator, Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from semnexus_cost_ledger.api import ReportApi
from semnexus_cost_ledger.budgets import TenantBudget
from semnexus_cost_ledger.pricing import PriceTable
from semnexus_cost_ledger.tally import Tally

from .conftest import LedgerRig, expected_totals, mixed_usage

BUDGETS = {"tenant-0": TenantBudget.model_validate({"monthly_usd": "0.50", "action": "reject"})}


@pytest.fixture
async def filled(rig_factory: Callable[..., LedgerRig]) -> LedgerRig:
    """A ledger that charged 600 mixed events (three tenants, 28 days, every provider)."""
    rig = rig_factory(budgets={k: v.model_dump(mode="json") for k, v in BUDGETS.items()})
    rig.publish(mixed_usage(600))
    await rig.drain()
    return rig


@pytest.fixture
async def client(filled: LedgerRig) -> AsyncIterator[TestClient[Any, Any]]:
    """An HTTP client of the API over the filled ledger."""
    async with TestClient(TestServer(ReportApi(filled.store, BUDGETS).application())) as c:
        yield c


def as_tally(doc: dict[str, object]) -> Tally:
    return Tally(**{name: doc[name] for name in Tally.FIELDS})  # type: ignore[arg-type]


async def test_spend_returns_the_databases_totals_for_a_tenant_and_range(
    client: TestClient[Any, Any],
    filled: LedgerRig,
    prices: PriceTable,
) -> None:
    """Totals and every breakdown equal the stored aggregates for the filter, to the micro-USD."""
    resp = await client.get(
        "/api/spend", params={"tenant": "tenant-1", "from": "2025-03-03", "to": "2025-03-09"}
    )
    assert resp.status == 200
    doc = await resp.json()
    wanted = [
        e for e in mixed_usage(600) if e.tenant_id == "tenant-1" and 3 <= e.created_at.day <= 9
    ]
    assert as_tally(doc["totals"]) == expected_totals(wanted, prices)
    stored = filled.store.report(
        (), tenant="tenant-1", start=date(2025, 3, 3), end=date(2025, 3, 9)
    )[0].tally
    assert as_tally(doc["totals"]) == stored
    for breakdown in ("by_provider", "by_model", "by_day"):
        rows = [as_tally(r) for r in doc[breakdown]]
        assert sum(rows, Tally()) == stored, breakdown
    assert [r["day"] for r in doc["by_day"]] == [f"2025-03-0{d}" for d in range(3, 10)]
    totals = doc["totals"]
    assert totals["cost_usd"] == f"{stored.cost_micros / 1e6:.6f}"
    assert totals["cache_hit_rate"] == pytest.approx(stored.cache_hits / stored.answered, abs=1e-6)


async def test_tenants_lists_every_tenant_with_its_budget_state(
    client: TestClient[Any, Any],
    filled: LedgerRig,
) -> None:
    """Each tenant with spend is listed; a budgeted one shows its announced state."""
    doc = await (await client.get("/api/tenants")).json()
    by_id = {t["tenant_id"]: t for t in doc["tenants"]}
    assert sorted(by_id) == ["tenant-0", "tenant-1", "tenant-2"]
    for row in filled.store.report(["tenant_id"]):
        assert as_tally(by_id[row.key["tenant_id"]]) == row.tally
    budget = by_id["tenant-0"]["budget"]
    announced = filled.store.announced_report()["tenant-0"]
    assert budget["budget_micros"] == 500_000
    assert (budget["state"], budget["spent_micros"]) == (announced.state, announced.spent_micros)
    assert by_id["tenant-1"]["budget"] is None


async def test_healthz_counts_charged_events(client: TestClient[Any, Any]) -> None:
    """/healthz answers with the number of distinct events charged."""
    assert await (await client.get("/healthz")).json() == {"status": "ok", "charged_events": 600}


@pytest.mark.parametrize(
    "params", [{"from": "March"}, {"to": "2025-13-01"}, {"from": "2025-03-09", "to": "2025-03-01"}]
)
async def test_bad_parameters_are_a_400_with_the_reason(
    client: TestClient[Any, Any],
    params: dict[str, str],
) -> None:
    """A malformed or inverted date range is refused with a JSON error."""
    resp = await client.get("/api/spend", params=params)
    assert resp.status == 400
    assert "error" in await resp.json()


async def test_page_is_self_contained(client: TestClient[Any, Any]) -> None:
    """The page loads no script, style or font from outside the service."""
    html = await (await client.get("/")).text()
    assert "<svg" in html
    assert "api/spend" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "import(" not in html


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


async def test_page_draws_the_charts_in_headless_chromium(filled: LedgerRig) -> None:
    """In a real browser the page fetches the API and draws one bar per day and one per provider."""
    if CHROMIUM is None:
        reason = "chromium is not installed (make setup installs it: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and {reason}", pytrace=False)
        pytest.skip(reason)
    port = _free_port()
    server = asyncio.create_task(ReportApi(filled.store, BUDGETS).serve("127.0.0.1", port))
    try:
        await asyncio.sleep(0.3)
        proc = await asyncio.create_subprocess_exec(
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--virtual-time-budget=10000",
            "--dump-dom",
            f"http://127.0.0.1:{port}/",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    finally:
        server.cancel()
    dom = out.decode()
    assert 'data-ready="1"' in dom, err.decode()[-2000:]
    assert '<div id="error"></div>' in dom
    spend_chart = dom.split('id="chart-spend"')[1].split("</svg>")[0]
    assert spend_chart.count('data-series="spend"') == 28  # one bar per day, 1..28 March
    mix = dom.split('id="chart-providers"')[1].split("</svg>")[0]
    assert sorted(re.findall(r'data-provider="([^"]+)"', mix)) == ["anthropic", "llama", "openai"]
    total = filled.store.report()[0].tally
    shown = re.search(r'data-metric="Spend">Spend<b>\$([0-9.,]+)</b>', dom)
    assert shown is not None
    assert Decimal(shown.group(1).replace(",", "")) == Decimal(total.cost_micros).scaleb(-6)
