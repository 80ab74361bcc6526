"""The ledger on the real runner (MemoryBus): charged once, crash-safe, rebuildable, budgets."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime

import pytest

from semnexus_cost_ledger.handlers import Ledger
from semnexus_cost_ledger.pricing import PriceTable
from semnexus_cost_ledger.rebuild import ReplayStats, compare, replay
from semnexus_cost_ledger.store import SqliteLedger
from semnexus_shared.events import BudgetAction, BudgetState, UsageRecorded
from semnexus_shared.stream import OutRecord

from .conftest import LedgerRig, expected_totals, mixed_usage, usage

BUDGET = {
    "monthly_usd": "0.01",
    "warn_fraction": "0.5",
    "action": "downgrade",
    "downgrade_alias": "chat-economy",
}  # 10,000 micro-USD; each default event costs 450


async def test_every_event_published_three_times_is_charged_once(
    rig_factory: Callable[..., LedgerRig], prices: PriceTable
) -> None:
    """1,000 events, each published three times (interleaved), add up to charging each once."""
    rig = rig_factory()
    events = mixed_usage(1000)
    rig.publish(events)
    rig.publish(reversed(events))
    rig.publish(events[::2] + events[1::2])
    assert await rig.drain() == 3000
    assert rig.store.charged_count() == 1000
    assert rig.total() == expected_totals(events, prices)


async def test_duplicates_inside_one_batch_are_charged_once(
    rig_factory: Callable[..., LedgerRig], prices: PriceTable
) -> None:
    """The same event three times in one batch is one charge."""
    rig = rig_factory()
    rig.publish([usage(1)] * 3)
    await rig.drain()
    assert rig.total() == expected_totals([usage(1)], prices)
    assert rig.total().cost_micros == 450


async def test_crash_after_db_commit_before_offset_commit_replays_as_a_no_op(
    rig_factory: Callable[..., LedgerRig], prices: PriceTable
) -> None:
    """The DB commits, the process dies before the offset commit; the replay changes nothing."""
    rig = rig_factory(max_batch=100)
    events = mixed_usage(300)
    rig.publish(events)
    real = rig.pipeline.handler
    calls = 0

    async def dies_after_commit(batch: Sequence[object]) -> Sequence[Sequence[object]]:
        nonlocal calls
        outcomes = await real(batch)  # type: ignore[arg-type]
        calls += 1
        if calls == 2:
            raise RuntimeError("SIGKILL between the DB commit and the offset commit")
        return outcomes

    rig.pipeline.handler = dies_after_commit
    with pytest.raises(RuntimeError, match="SIGKILL"):
        await rig.drain()
    charged_before_restart = rig.store.charged_count()
    assert charged_before_restart == 200  # two batches committed, one of them not acknowledged
    rig.restart()
    assert await rig.drain() == 200  # the unacknowledged batch is replayed, then the rest
    assert rig.store.charged_count() == 300
    assert rig.total() == expected_totals(events, prices)


async def test_crash_inside_the_db_transaction_leaves_nothing_half_applied(
    rig_factory: Callable[..., LedgerRig], prices: PriceTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure between the dedupe inserts and the aggregate update rolls both back."""
    rig = rig_factory()
    events = mixed_usage(50)
    rig.publish(events)
    monkeypatch.setattr(
        "semnexus_cost_ledger.store._UPSERT", "INSERT INTO no_such_table VALUES (1)"
    )
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        await rig.drain()
    assert rig.store.charged_count() == 0
    monkeypatch.undo()
    rig.restart()
    await rig.drain()
    assert rig.total() == expected_totals(events, prices)


async def test_rebuild_equals_the_live_totals_to_the_micro_dollar(
    rig_factory: Callable[..., LedgerRig], prices: PriceTable, tmp_path: object
) -> None:
    """Replaying the usage topic into a fresh database gives the live aggregates, row for row."""
    live = rig_factory(max_batch=64)
    events = mixed_usage(2000)
    live.publish(events + events[:500])
    await live.drain()
    records = live.bus.records("usage")

    async def batches() -> AsyncIterator[list[UsageRecorded]]:
        for start in range(0, len(records), 500):
            yield [live.codec.decode(r.value, UsageRecorded) for r in records[start : start + 500]]

    fresh = SqliteLedger(live.settings.data_dir / "rebuilt.sqlite")
    stats = await replay(batches(), Ledger(prices, fresh, {}), ReplayStats())
    assert stats.charged == 2000
    result = compare(live.store, fresh)
    assert result.diffs == []
    assert result.live_total == result.rebuilt_total == expected_totals(events, prices)
    by_day = compare(live.store, fresh, group=("tenant_id", "day", "provider", "model"))
    assert by_day.diffs == []


async def test_rebuild_with_another_price_table_shows_the_difference(
    rig_factory: Callable[..., LedgerRig], prices: PriceTable
) -> None:
    """Repricing gpt-4o-mini shows up as a difference on exactly the rows that use it."""
    live = rig_factory()
    live.publish([usage(1), usage(2, provider="anthropic", model="claude-3-5-haiku-latest")])
    await live.drain()
    doubled = PriceTable.parse(
        {
            "version": "doubled",
            "models": [
                {
                    "provider": "openai",
                    "model": "gpt-4o-mini",
                    "prices": [
                        {
                            "from": "2024-07-18",
                            "input": "0.30",
                            "cached_input": "0.15",
                            "output": "1.20",
                        }
                    ],
                },
                {
                    "provider": "anthropic",
                    "model": "claude-3-5-haiku-latest",
                    "prices": [
                        {
                            "from": "2024-11-04",
                            "input": "0.80",
                            "cached_input": "0.08",
                            "output": "4.00",
                        }
                    ],
                },
            ],
        }
    )
    fresh = SqliteLedger(live.settings.data_dir / "repriced.sqlite")

    async def one_batch() -> AsyncIterator[list[UsageRecorded]]:
        yield [live.codec.decode(r.value, UsageRecorded) for r in live.bus.records("usage")]

    await replay(one_batch(), Ledger(doubled, fresh, {}), ReplayStats())
    result = compare(live.store, fresh)
    assert [(d.key, d.live.cost_micros, d.rebuilt.cost_micros) for d in result.diffs] == [
        (("acme", "openai", "gpt-4o-mini"), 450, 900)
    ]


async def test_budget_crossings_produce_one_budget_changed_per_state_change(
    rig_factory: Callable[..., LedgerRig],
) -> None:
    """ok → warning → exceeded is announced once each, though every event arrives three times."""
    rig = rig_factory(budgets={"acme": BUDGET}, max_batch=1)
    events = [usage(n) for n in range(30)]  # 450 each: warning at 12, exceeded at 23 events
    for event in events:
        rig.publish([event] * 3)
    await rig.drain()
    changes = rig.budget_events()
    assert [c.state for c in changes] == [BudgetState.OK, BudgetState.WARNING, BudgetState.EXCEEDED]
    assert [c.spent_micros for c in changes] == [450, 12 * 450, 23 * 450]
    exceeded = changes[-1]
    assert (exceeded.action, exceeded.downgrade_alias) == (BudgetAction.DOWNGRADE, "chat-economy")
    assert exceeded.period == "2025-03"
    assert exceeded.budget_micros == 10_000
    assert changes[0].action is BudgetAction.NONE
    assert all(r.key == b"acme" for r in rig.bus.records("budget"))


async def test_budget_in_big_batches_announces_only_changes(
    rig_factory: Callable[..., LedgerRig],
) -> None:
    """With 500-event batches the state jumps straight to exceeded, once; tenants without a
    budget are never announced."""
    rig = rig_factory(budgets={"acme": BUDGET})
    rig.publish([usage(n) for n in range(30)] * 3)
    rig.publish([usage(100 + n, tenant="nobudget") for n in range(30)])
    await rig.drain()
    rig.publish([usage(n) for n in range(30)])  # replays only
    await rig.drain()
    assert [(c.tenant_id, c.state) for c in rig.budget_events()] == [("acme", BudgetState.EXCEEDED)]


async def test_month_rollover_announces_the_new_period(
    rig_factory: Callable[..., LedgerRig],
) -> None:
    """The first event of a new UTC month re-assesses the tenant against the new period."""
    rig = rig_factory(budgets={"*": BUDGET})
    rig.publish([usage(n) for n in range(30)])
    await rig.drain()
    april = datetime(2025, 4, 1, 0, 0, 1, tzinfo=UTC)
    rig.publish([usage(99, at=april)])
    await rig.drain()
    late_march = datetime(2025, 3, 31, 23, 59, tzinfo=UTC)
    rig.publish([usage(100, at=late_march)])  # a straggler must not move the period back
    await rig.drain()
    assert [(c.period, c.state, c.spent_micros) for c in rig.budget_events()] == [
        ("2025-03", BudgetState.EXCEEDED, 30 * 450),
        ("2025-04", BudgetState.OK, 450),
    ]


async def test_a_lost_budget_announcement_is_repeated_after_a_restart(
    rig_factory: Callable[..., LedgerRig],
) -> None:
    """The state is remembered but the produce fails: the restarted ledger announces it again."""
    rig = rig_factory(budgets={"acme": BUDGET})
    rig.publish([usage(n) for n in range(30)])
    real_send = rig.bus.send

    async def broker_down(record: OutRecord) -> object:
        raise ConnectionError("broker went away before acknowledging")

    rig.bus.send = broker_down  # type: ignore[method-assign,assignment]
    with pytest.raises(ConnectionError):
        await rig.drain()
    assert rig.budget_events() == []
    rig.bus.send = real_send  # type: ignore[method-assign]
    rig.restart()
    await rig.drain()
    assert [c.state for c in rig.budget_events()] == [BudgetState.EXCEEDED]
