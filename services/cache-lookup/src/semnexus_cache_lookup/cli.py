"""``semnexus cache``: look at and invalidate the semantic cache.

Registered under the ``semnexus.cli`` entry-point group as ``cache``:

- ``semnexus cache stats``: entries per tenant, read from the vector store;
- ``semnexus cache eval | calibrate | train | latency``: measure and tune the
  hit decision (:mod:`semnexus_cache_lookup.cli_eval`);
- ``semnexus cache invalidate --tenant T [--scope JSON | --entry ID]``:
  publishes a ``CacheInvalidated`` to ``cache.invalidate`` (the writer
  applies it), keyed by what it drops so compaction keeps the latest per target.

Settings come from the environment like the service's (``SEMNEXUS_…``).
"""

from __future__ import annotations

import asyncio
import json

import typer
from rich.console import Console
from rich.table import Table

from semnexus_cache_lookup.config import Settings
from semnexus_cache_lookup.vectorstore import MilvusVectorStore
from semnexus_shared.events import CacheInvalidated, CacheScope, InvalidationTarget
from semnexus_shared.scope import scope_hash
from semnexus_shared.service import context_for

app = typer.Typer(help="The semantic cache: stats and invalidation.", no_args_is_help=True)
console = Console()


@app.command("stats")
def stats() -> None:
    """Entries per tenant in the vector store (expired but unpurged included)."""
    cache = Settings().cache
    store = MilvusVectorStore.configured(cache)

    async def count() -> dict[str, int]:
        await store.ensure()
        try:
            return await store.count_by_tenant()
        finally:
            await store.close()

    counts = asyncio.run(count())
    table = Table("tenant", "entries", title=f"{cache.collection} at {cache.vector_uri}")
    for tenant, n in sorted(counts.items()):
        table.add_row(tenant, str(n))
    table.add_row("[bold]total", f"[bold]{sum(counts.values())}")
    console.print(table)


def invalidation(
    tenant: str, scope_json: str | None, entry: str | None, reason: str
) -> tuple[bytes, CacheInvalidated]:
    """The event (and its compaction key) for these options."""
    if scope_json and entry:
        raise typer.BadParameter("give --scope or --entry, not both")
    if scope_json:
        scope = CacheScope(**{**json.loads(scope_json), "tenant_id": tenant})
        event = CacheInvalidated(
            tenant_id=tenant, target=InvalidationTarget.SCOPE, scope=scope, reason=reason
        )
        return f"scope:{scope_hash(scope)}".encode(), event
    if entry:
        event = CacheInvalidated(
            tenant_id=tenant, target=InvalidationTarget.ENTRY, entry_id=entry, reason=reason
        )
        return f"entry:{tenant}:{entry}".encode(), event
    event = CacheInvalidated(tenant_id=tenant, target=InvalidationTarget.TENANT, reason=reason)
    return f"tenant:{tenant}".encode(), event


@app.command("invalidate")
def invalidate(
    tenant: str = typer.Option(..., help="the tenant whose entries to drop"),
    scope: str | None = typer.Option(None, help="JSON of CacheScope fields (tenant implied)"),
    entry: str | None = typer.Option(None, help="one entry id (its exact key)"),
    reason: str = typer.Option("semnexus cache invalidate", help="recorded on the event"),
) -> None:
    """Publish a CacheInvalidated for a tenant, a scope or one entry."""
    settings = Settings()
    ctx = context_for(settings)
    key, event = invalidation(tenant, scope, entry, reason)

    async def publish() -> None:
        from aiokafka import AIOKafkaProducer  # noqa: PLC0415  (adapter import)

        producer = AIOKafkaProducer(
            **settings.kafka.client_args(), acks="all", enable_idempotence=True
        )
        await producer.start()
        try:
            await producer.send_and_wait(ctx.topics.cache_invalidate, ctx.codec.encode(event), key)
        finally:
            await producer.stop()

    asyncio.run(publish())
    console.print(
        f"published {event.target.value} invalidation for tenant {tenant} "
        f"to {ctx.topics.cache_invalidate}"
    )


def _mount_evaluation() -> None:
    """``eval``, ``calibrate``, ``train`` and ``latency`` live in cli_eval (torch-free import)."""
    from semnexus_cache_lookup import cli_eval  # noqa: PLC0415

    app.registered_commands.extend(cli_eval.app.registered_commands)


_mount_evaluation()
