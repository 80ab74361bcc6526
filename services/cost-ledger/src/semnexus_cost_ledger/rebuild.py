"""Recompute the ledger by replaying the usage topic, and compare it with the live one.

Contract:

- :func:`read_usage` (the Kafka adapter) reads every partition of ``usage``
  from offset 0 up to the end offsets seen when it starts, without a consumer
  group and without committing, in batches. Records that do not decode are
  counted and skipped (they already went to the dead-letter topic live).
- :func:`replay` charges those batches into a fresh database through the same
  :class:`~semnexus_cost_ledger.handlers.Ledger` the service runs (same
  pricing, same dedupe), optionally with another price table. Budgets are not
  announced by a rebuild.
- :func:`compare` sums both databases per (tenant, provider, model) and
  returns the rows whose tallies differ. Against a live ledger that keeps
  consuming, rows the live ledger charged after the rebuild's end offsets show
  up as differences too; stop producers (or compare quiet periods) to read the
  diff as a price change.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from semnexus_cost_ledger.handlers import Ledger
from semnexus_cost_ledger.store import SqliteLedger
from semnexus_cost_ledger.tally import Tally
from semnexus_shared.config import KafkaSettings
from semnexus_shared.errors import InvalidEvent
from semnexus_shared.events import UsageRecorded
from semnexus_shared.serde import Codec

__all__ = ["ReplayStats", "RowDiff", "compare", "read_usage", "replay"]


@dataclass
class ReplayStats:
    """What a replay read and charged."""

    records: int = 0
    undecodable: int = 0
    charged: int = 0


@dataclass(frozen=True, slots=True)
class RowDiff:
    """One (tenant, provider, model) whose live and rebuilt sums differ."""

    key: tuple[str, ...]
    live: Tally
    rebuilt: Tally


async def read_usage(
    kafka: KafkaSettings,
    topic: str,
    codec: Codec,
    stats: ReplayStats,
    batch_size: int = 500,
) -> AsyncIterator[list[UsageRecorded]]:
    """Every usage event on ``topic`` up to its current end, in batches."""
    from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: PLC0415  (adapter import)

    # Subscribed without a group: aiokafka assigns every partition and fetches the
    # topic's metadata at start (a bare consumer knows no partitions of an unsubscribed topic).
    consumer = AIOKafkaConsumer(
        topic,
        **kafka.consumer_args(),
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        tps = sorted(consumer.assignment(), key=lambda tp: tp.partition)
        if not tps:
            return
        await consumer.seek_to_beginning(*tps)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            fetched = await consumer.getmany(*pending, timeout_ms=1000, max_records=batch_size)
            events: list[UsageRecorded] = []
            for tp, records in fetched.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        continue
                    stats.records += 1
                    try:
                        events.append(codec.decode(record.value or b"", UsageRecorded))
                    except InvalidEvent:
                        stats.undecodable += 1
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
            if events:
                yield events
    finally:
        await consumer.stop()


async def replay(
    batches: AsyncIterator[Sequence[UsageRecorded]], ledger: Ledger, stats: ReplayStats
) -> ReplayStats:
    """Charge every batch through ``ledger`` (its store is the fresh database)."""
    async for events in batches:
        stats.charged += len(await ledger.charge(events))
    return stats


@dataclass
class Comparison:
    """Live and rebuilt totals, and the rows that differ."""

    live_total: Tally
    rebuilt_total: Tally
    diffs: list[RowDiff] = field(default_factory=list)


def compare(
    live: SqliteLedger,
    rebuilt: SqliteLedger,
    group: Sequence[str] = ("tenant_id", "provider", "model"),
) -> Comparison:
    """Sum both ledgers by ``group`` and list every key whose sums differ."""
    a = {tuple(r.key[g] for g in group): r.tally for r in live.report(group)}
    b = {tuple(r.key[g] for g in group): r.tally for r in rebuilt.report(group)}
    diffs = [
        RowDiff(key, a.get(key, Tally()), b.get(key, Tally()))
        for key in sorted(a.keys() | b.keys())
        if a.get(key, Tally()) != b.get(key, Tally())
    ]
    return Comparison(live.report()[0].tally, rebuilt.report()[0].tally, diffs)
