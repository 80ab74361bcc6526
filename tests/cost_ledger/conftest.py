"""Fixtures for the cost-ledger tests: the repo's price table, usage events, a wired pipeline."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from semnexus_cost_ledger.app import build_for
from semnexus_cost_ledger.config import HttpSettings, LedgerSettings
from semnexus_cost_ledger.pricing import PriceTable, charge
from semnexus_cost_ledger.store import SqliteLedger
from semnexus_cost_ledger.tally import Tally
from semnexus_shared.events import UsageKind, UsageRecorded
from semnexus_shared.service import context_for
from semnexus_shared.stream import MemoryBus, Pipeline

REPO = Path(__file__).resolve().parents[2]
PRICES_FILE = REPO / "infra" / "prices.yaml"
MARCH = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def prices() -> PriceTable:
    """The reviewed price table in infra/prices.yaml."""
    return PriceTable.load(PRICES_FILE)


def usage(
    n: int,
    *,
    tenant: str = "acme",
    kind: UsageKind = UsageKind.PROVIDER_CALL,
    provider: str = "openai",
    model: str = "gpt-4o-mini",
    input_tokens: int = 1000,
    output_tokens: int = 500,
    cached: int = 0,
    at: datetime = MARCH,
) -> UsageRecorded:
    """A usage event with a stable id ``u<n>``."""
    return UsageRecorded(
        event_id=f"u{n}",
        request_id=f"r{n}",
        tenant_id=tenant,
        kind=kind,
        model_alias="chat",
        provider=provider,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_input_tokens=cached,
        created_at=at,
    )


def mixed_usage(count: int) -> list[UsageRecorded]:
    """A realistic mix: three tenants, every provider, hits, failures, prompt caching, days."""
    models = [
        ("openai", "gpt-4o-mini"),
        ("openai", "gpt-4o"),
        ("anthropic", "claude-3-5-haiku-latest"),
        ("anthropic", "claude-sonnet-4-0"),
        ("llama", "meta-llama/Llama-3.1-8B-Instruct"),
    ]
    kinds = [UsageKind.PROVIDER_CALL] * 6 + [UsageKind.CACHE_HIT] * 3 + [UsageKind.FAILED_ATTEMPT]
    out = []
    for n in range(count):
        provider, model = models[n % len(models)]
        out.append(
            usage(
                n,
                tenant=f"tenant-{n % 3}",
                kind=kinds[n % len(kinds)],
                provider=provider,
                model=model,
                input_tokens=100 + (n * 37) % 4000,
                output_tokens=(n * 53) % 900,
                cached=(n * 11) % 90,
                at=MARCH.replace(day=1 + n % 28, minute=n % 60),
            )
        )
    return out


def expected_totals(events: Iterable[UsageRecorded], prices: PriceTable) -> Tally:
    """What charging each distinct event once adds up to, from pricing alone."""
    distinct = {e.event_id: e for e in events}
    total = Tally()
    for event in distinct.values():
        total = total + Tally.of(charge(event, prices))
    return total


@dataclass
class LedgerRig:
    """A ledger pipeline on a MemoryBus over a database file in tmp_path."""

    settings: LedgerSettings
    bus: MemoryBus
    prices: PriceTable
    codec: Any
    store: SqliteLedger
    pipeline: Pipeline

    def publish(self, events: Iterable[UsageRecorded]) -> None:
        """Append events to the usage topic, keyed by tenant as producers do."""
        for event in events:
            self.bus.append(
                self.settings.topics.prefix + "usage",
                self.codec.encode(event),
                key=event.tenant_id.encode(),
            )

    def restart(self) -> None:
        """A fresh process: new database connection, new handler, same file and bus."""
        self.store.close()
        self.store = SqliteLedger(self.settings.database)
        self.pipeline = build_for(self.settings, self.store, self.prices)(
            context_for(self.settings)
        ).pipelines[0]

    async def drain(self) -> int:
        """Handle everything pending."""
        return await self.bus.drain(self.pipeline)

    def budget_events(self) -> list[Any]:
        """Every BudgetChanged produced so far, decoded, in order per partition."""
        return [self.codec.decode(r.value) for r in self.bus.records("budget")]

    def total(self) -> Tally:
        """The database's all-time totals."""
        return self.store.report()[0].tally


@pytest.fixture
def rig_factory(tmp_path: Path, prices: PriceTable) -> Iterator[Callable[..., LedgerRig]]:
    """Build a LedgerRig with optional budgets and batch size."""
    made: list[LedgerRig] = []

    def make(
        budgets: dict[str, Any] | None = None, max_batch: int = 500, name: str = "live"
    ) -> LedgerRig:
        settings = LedgerSettings(
            data_dir=tmp_path / name,
            prices_file=PRICES_FILE,
            budgets=budgets or {},
            max_batch=max_batch,
            http=HttpSettings(enabled=False),
        )
        ctx = context_for(settings)
        store = SqliteLedger(settings.database)
        pipeline = build_for(settings, store, prices)(ctx).pipelines[0]
        rig = LedgerRig(settings, MemoryBus(), prices, ctx.codec, store, pipeline)
        made.append(rig)
        return rig

    yield make
    for rig in made:
        rig.store.close()
