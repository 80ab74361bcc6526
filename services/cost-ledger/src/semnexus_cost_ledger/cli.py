"""``semnexus ledger``: spend reports and rebuilds from the usage topic.

- ``report`` reads the running ledger's HTTP API (``--url``, default from
  the ledger's HTTP settings) rather than its SQLite file: the API works from
  any machine that can reach the service (the file lives on the ledger's
  volume), never contends with the writer, and shows exactly what the page
  and other clients see.
- ``rebuild`` must run where the live database is (it compares against the
  file): it replays ``usage`` from offset 0 into a fresh database, optionally
  with another price table, and prints how the totals differ.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from semnexus_cost_ledger.api import usd_text
from semnexus_cost_ledger.config import LedgerSettings
from semnexus_cost_ledger.handlers import Ledger
from semnexus_cost_ledger.pricing import PriceTable
from semnexus_cost_ledger.rebuild import Comparison, ReplayStats, compare, read_usage, replay
from semnexus_cost_ledger.store import SqliteLedger
from semnexus_shared.service import context_for

app = typer.Typer(help="Cost ledger: spend reports and rebuilds.", no_args_is_help=True)
console = Console()


async def _get_json(url: str) -> Any:
    import aiohttp  # noqa: PLC0415  (adapter import; keeps `semnexus --help` fast)

    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        body = await resp.json()
        if resp.status != 200:
            raise typer.BadParameter(str(body.get("error", resp.reason)))
        return body


@app.command()
def report(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant")] = None,
    from_: Annotated[str | None, typer.Option("--from", help="First UTC day, YYYY-MM-DD")] = None,
    to: Annotated[str | None, typer.Option(help="Last UTC day, YYYY-MM-DD")] = None,
    url: Annotated[str | None, typer.Option(help="Ledger API base URL")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON")] = False,
) -> None:
    """Spend by provider and model, with savings and cache hit rate."""
    settings = LedgerSettings()
    base = url or f"http://{settings.http.host}:{settings.http.port}"
    query = "&".join(f"{k}={v}" for k, v in (("tenant", tenant), ("from", from_), ("to", to)) if v)
    doc = asyncio.run(_get_json(f"{base.rstrip('/')}/api/spend?{query}"))
    if as_json:
        console.print_json(json.dumps(doc))
        return
    title = f"spend: {tenant or 'all tenants'}, {from_ or 'start'} .. {to or 'now'}"
    table = Table(
        "provider",
        "model",
        "requests",
        "cache hits",
        "failed",
        "input tok",
        "output tok",
        "cost USD",
        "cache saved USD",
        "prompt-cache USD",
        title=title,
    )
    for row in doc["by_model"]:
        table.add_row(
            row["provider"],
            row["model"],
            str(row["requests"]),
            str(row["cache_hits"]),
            str(row["failed_attempts"]),
            f"{row['input_tokens']:,}",
            f"{row['output_tokens']:,}",
            row["cost_usd"],
            row["cache_saved_usd"],
            row["prompt_cache_saved_usd"],
        )
    t = doc["totals"]
    table.add_section()
    table.add_row(
        "total",
        "",
        str(t["requests"]),
        str(t["cache_hits"]),
        str(t["failed_attempts"]),
        f"{t['input_tokens']:,}",
        f"{t['output_tokens']:,}",
        t["cost_usd"],
        t["cache_saved_usd"],
        t["prompt_cache_saved_usd"],
    )
    console.print(table)
    console.print(
        f"cache hit rate {t['cache_hit_rate']:.1%}; unpriced events {t['unpriced_events']}"
    )


def print_comparison(result: Comparison, price_version: str) -> None:
    """Live vs rebuilt totals, and the rows that differ."""
    live, rebuilt = result.live_total, result.rebuilt_total
    table = Table("", "live", "rebuilt", "difference", title=f"rebuild (prices {price_version})")
    for name in (
        "requests",
        "cache_hits",
        "failed_attempts",
        "input_tokens",
        "output_tokens",
        "cost_micros",
        "cache_saved_micros",
        "prompt_cache_saved_micros",
        "unpriced_events",
    ):
        a, b = getattr(live, name), getattr(rebuilt, name)
        fmt = usd_text if name.endswith("_micros") else str
        table.add_row(name.replace("_micros", " USD"), fmt(a), fmt(b), fmt(b - a))
    console.print(table)
    if not result.diffs:
        console.print("[green]rebuilt aggregates equal the live ones, row for row.")
        return
    rows = Table(
        "tenant",
        "provider",
        "model",
        "live USD",
        "rebuilt USD",
        "difference USD",
        title=f"{len(result.diffs)} (tenant, provider, model) rows differ",
    )
    for d in result.diffs:
        rows.add_row(
            *d.key,
            usd_text(d.live.cost_micros),
            usd_text(d.rebuilt.cost_micros),
            usd_text(d.rebuilt.cost_micros - d.live.cost_micros),
        )
    console.print(rows)


@app.command()
def rebuild(
    prices: Annotated[Path | None, typer.Option(help="Price table to reprice with")] = None,
    out: Annotated[Path | None, typer.Option(help="Fresh database to build")] = None,
) -> None:
    """Replay the usage topic from offset 0 into a fresh database; show how totals differ."""
    settings = LedgerSettings()
    table = PriceTable.load(prices or settings.prices_file)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = out or settings.data_dir / f"rebuild-{stamp}.sqlite"
    if target.exists():
        raise typer.BadParameter(f"{target} exists; a rebuild starts from an empty database")
    ctx = context_for(settings)
    fresh = SqliteLedger(target)
    stats = ReplayStats()
    batches = read_usage(settings.kafka, ctx.topics.usage, ctx.codec, stats, settings.max_batch)
    asyncio.run(replay(batches, Ledger(table, fresh, {}), stats))
    console.print(
        f"replayed {stats.records:,} records from {ctx.topics.usage}: "
        f"{stats.charged:,} charged, {stats.undecodable:,} undecodable; "
        f"database {target}"
    )
    if not settings.database.exists():
        console.print(f"[yellow]no live database at {settings.database}; nothing to compare.")
        return
    print_comparison(compare(SqliteLedger(settings.database), fresh), table.version)
