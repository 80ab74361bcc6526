"""Benchmark: usage events/s one cost-ledger charges, through the real pipeline.

Two modes, both through :class:`~semnexus_shared.stream.Pipeline` with the
service's own wiring (decode, span, one JSON log line per event, the
:class:`~semnexus_cost_ledger.handlers.Ledger` handler, the SQLite transaction
with ``synchronous=FULL``, budgets on):

- ``memory`` (default): the pipeline on a MemoryBus in this process, 500-event
  batches. Measures handler + database + runner overhead, no broker.
- ``kafka``: publishes the events to a fresh topic prefix first, then starts
  ``python -m semnexus_cost_ledger`` and times from its first charge to the
  last (consume, process, commit on the real broker; faust start-up excluded).

Each distinct event is published ``--copies`` times, so dedupe is exercised.

    .venv/bin/python tests/bench/bench_ledger.py --events 50000 --copies 2
    .venv/bin/python tests/bench/bench_ledger.py --mode kafka --events 50000
"""

from __future__ import annotations

# ruff: noqa: ASYNC110 - a benchmark driver polls and spawns; nothing else runs
import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from semnexus_cost_ledger.app import build_for  # noqa: E402
from semnexus_cost_ledger.config import HttpSettings, LedgerSettings  # noqa: E402
from semnexus_cost_ledger.pricing import PriceTable  # noqa: E402
from semnexus_cost_ledger.store import SqliteLedger  # noqa: E402
from semnexus_shared.config import LogSettings  # noqa: E402
from semnexus_shared.logs import configure_logging  # noqa: E402
from semnexus_shared.service import context_for  # noqa: E402
from semnexus_shared.stream import MemoryBus  # noqa: E402
from tests.cost_ledger.conftest import PRICES_FILE, mixed_usage  # noqa: E402

BUDGETS: dict[str, Any] = {"*": {"monthly_usd": "1000", "action": "reject"}}


async def bench_memory(events: int, copies: int, data_dir: Path) -> dict[str, float]:
    settings = LedgerSettings(
        data_dir=data_dir,
        prices_file=PRICES_FILE,
        budgets=BUDGETS,
        http=HttpSettings(enabled=False),
    )
    ctx = context_for(settings)
    store = SqliteLedger(settings.database)
    pipeline = build_for(settings, store, PriceTable.load(PRICES_FILE))(ctx).pipelines[0]
    bus = MemoryBus(default_partitions=6)
    usage = mixed_usage(events)
    for _ in range(copies):
        for e in usage:
            bus.append(ctx.topics.usage, ctx.codec.encode(e), key=e.tenant_id.encode())
    started = time.perf_counter()
    handled = await bus.drain(pipeline)
    elapsed = time.perf_counter() - started
    assert store.charged_count() == events
    return {"records": handled, "seconds": elapsed, "records_per_s": handled / elapsed}


async def bench_kafka(events: int, copies: int, data_dir: Path) -> dict[str, float]:
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415

    from semnexus_shared.config import KafkaSettings, TopicSettings  # noqa: PLC0415
    from semnexus_shared.topics import apply_topics  # noqa: PLC0415

    kafka = KafkaSettings()
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    await apply_topics(kafka, TopicSettings(prefix=prefix))
    settings = LedgerSettings(topics=TopicSettings(prefix=prefix))
    ctx = context_for(settings)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.servers,
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=262144,
    )
    await producer.start()
    # Copies back to back, so the last distinct event is charged close to the last record.
    for e in mixed_usage(events):
        data = ctx.codec.encode(e)
        for _ in range(copies):
            await producer.send(ctx.topics.usage, data, key=e.tenant_id.encode())
    await producer.flush()
    await producer.stop()
    env = {
        **os.environ,
        "SEMNEXUS_SERVICE_NAME": prefix + "cost-ledger",
        "SEMNEXUS_TOPICS__PREFIX": prefix,
        "SEMNEXUS_TELEMETRY__ENABLED": "false",
        "SEMNEXUS_DATA_DIR": str(data_dir),
        "SEMNEXUS_PRICES_FILE": str(PRICES_FILE),
        "SEMNEXUS_HTTP__ENABLED": "false",
        "SEMNEXUS_BUDGETS": json.dumps(BUDGETS),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "semnexus_cost_ledger"],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    db = data_dir / "ledger.sqlite"
    try:
        while not db.exists() or SqliteLedger(db).charged_count() == 0:
            await asyncio.sleep(0.01)
        started = time.perf_counter()
        while SqliteLedger(db).charged_count() < events:
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    records = events * copies
    return {"records": records, "seconds": elapsed, "records_per_s": records / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["memory", "kafka"], default="memory")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--copies", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.mode == "memory":
            # The service writes one JSON log line per event; keep that cost, drop the output.
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
            configure_logging(LogSettings(), "cost-ledger")
            result = asyncio.run(bench_memory(args.events, args.copies, Path(tmp)))
            sys.stdout = sys.__stdout__
        else:
            result = asyncio.run(bench_kafka(args.events, args.copies, Path(tmp)))
    print(
        json.dumps(
            {
                "mode": args.mode,
                "events": args.events,
                "copies": args.copies,
                "cpus": os.cpu_count(),
                **{k: round(v, 2) for k, v in result.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
