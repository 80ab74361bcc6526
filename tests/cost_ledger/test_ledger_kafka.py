"""The ledger as a real process on the real broker: SIGKILL mid-stream, totals still exact."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer

from semnexus_cost_ledger.budgets import TenantBudget, assess
from semnexus_cost_ledger.pricing import PriceTable
from semnexus_cost_ledger.store import SqliteLedger
from semnexus_cost_ledger.tally import Tally
from semnexus_shared.config import KafkaSettings, TopicSettings
from semnexus_shared.events import BudgetChanged, BudgetState, UsageRecorded
from semnexus_shared.serde import Codec, SchemaRegistry
from semnexus_shared.topics import apply_topics

from ..kafka.conftest import collect, wait_for
from .conftest import PRICES_FILE, REPO, expected_totals, mixed_usage

pytestmark = pytest.mark.kafka

CODEC = Codec(SchemaRegistry.load())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LedgerProcess:
    """``python -m semnexus_cost_ledger`` with a private prefix, group, data dir and port."""

    def __init__(self, kafka: KafkaSettings, prefix: str, data_dir: Path, log: Path) -> None:
        self.port = _free_port()
        self.log = log
        self.env = {
            **os.environ,
            "SEMNEXUS_SERVICE_NAME": prefix + "cost-ledger",
            "SEMNEXUS_TOPICS__PREFIX": prefix,
            "SEMNEXUS_KAFKA__BOOTSTRAP": kafka.bootstrap,
            "SEMNEXUS_KAFKA__COMMIT_INTERVAL_S": "0.5",
            "SEMNEXUS_TELEMETRY__ENABLED": "false",
            "SEMNEXUS_LOG__LEVEL": "WARNING",
            "SEMNEXUS_DATA_DIR": str(data_dir),
            "SEMNEXUS_PRICES_FILE": str(PRICES_FILE),
            "SEMNEXUS_HTTP__PORT": str(self.port),
            "SEMNEXUS_BUDGETS": json.dumps({"*": {"monthly_usd": "0.40", "action": "reject"}}),
            "PYTHONUNBUFFERED": "1",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "semnexus_cost_ledger"],
            env=self.env,
            cwd=REPO,
            stdout=out,
            stderr=out,
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown hook, no final offset commit."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def charged(db: Path) -> int:
    return SqliteLedger(db).charged_count() if db.exists() else 0


async def test_sigkill_mid_stream_then_restart_charges_each_event_exactly_once(
    kafka_settings: KafkaSettings, unique_prefix: str, tmp_path: Path
) -> None:
    """1,000 usage events published 3 times each, the ledger SIGKILLed mid-stream: exact totals."""
    await apply_topics(kafka_settings, TopicSettings(prefix=unique_prefix))
    ledger = LedgerProcess(
        kafka_settings, unique_prefix, tmp_path / "data", tmp_path / "ledger.log"
    )
    db = tmp_path / "data" / "ledger.sqlite"
    events = mixed_usage(1000)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_settings.servers, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    ledger.start()
    try:
        sends = [event for copy in range(3) for event in (events if copy != 1 else events[::-1])]
        first_wave = 400  # only these exist until the kill: the kill is mid-stream

        async def publish(batch: list[UsageRecorded]) -> None:
            for n, event in enumerate(batch):
                await producer.send(
                    unique_prefix + "usage", CODEC.encode(event), key=event.tenant_id.encode()
                )
                if n % 100 == 99:
                    await asyncio.sleep(0.1)  # a stream, not one burst
            await producer.flush()

        await publish(sends[:first_wave])
        await wait_for(lambda: charged(db) >= 300, 90, "the ledger to charge 300 events")
        ledger.kill()
        killed_at = charged(db)
        assert killed_at <= first_wave
        publishing = asyncio.create_task(publish(sends[first_wave:]))
        await asyncio.sleep(1.0)  # the stream keeps coming while the ledger is down
        ledger.start()
        await publishing
        await wait_for(lambda: charged(db) >= 1000, 120, "the restarted ledger to catch up")
        await asyncio.sleep(2.0)  # any duplicate left would be charged by now, and must not be
        prices = PriceTable.load(PRICES_FILE)
        async with aiohttp.ClientSession() as http:
            resp = await http.get(f"http://127.0.0.1:{ledger.port}/api/spend")
            doc = await resp.json()
        total = Tally(**{name: doc["totals"][name] for name in Tally.FIELDS})
        assert total == expected_totals(events, prices), ledger.output()
        assert charged(db) == 1000
        budget_records = await collect(
            kafka_settings, unique_prefix + "budget", lambda rs: len(rs) >= 3, timeout_s=30
        )
        latest = {}
        for record in budget_records:
            change = CODEC.decode(record.value, BudgetChanged)
            latest[change.tenant_id] = change
        spend = {
            r.key["tenant_id"]: r.tally.cost_micros for r in SqliteLedger(db).report(["tenant_id"])
        }
        assert sorted(latest) == ["tenant-0", "tenant-1", "tenant-2"]
        budget = TenantBudget.model_validate({"monthly_usd": "0.40", "action": "reject"})
        for tenant, change in latest.items():
            assert change.state is assess(tenant, "2025-03", spend[tenant], budget).state
            assert change.state is BudgetState.EXCEEDED  # each tenant spends about $0.47
    finally:
        ledger.stop()
        await producer.stop()
