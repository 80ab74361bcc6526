"""Kafka-tier fixtures: per-test topics, a producer, a collector, worker processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from semnexus_shared.config import KafkaSettings, TopicSettings
from semnexus_shared.topics import DAY_MS, TopicSpec, apply_topics

WORKER = Path(__file__).with_name("echo_worker.py")


@dataclass
class Topics:
    prefix: str
    kafka: KafkaSettings

    async def create(self, **partitions: int) -> None:
        """Create ``prefix + name`` for each name=partitions (dots as '__')."""
        specs = [
            TopicSpec(name.replace("__", "."), count, "test", DAY_MS)
            for name, count in partitions.items()
        ]
        await apply_topics(self.kafka, TopicSettings(prefix=self.prefix), specs)

    def __getitem__(self, name: str) -> str:
        return self.prefix + name


@pytest.fixture
def topics(kafka_settings: KafkaSettings, unique_prefix: str) -> Topics:
    """Topic names private to this test."""
    return Topics(unique_prefix, kafka_settings)


@pytest.fixture
async def producer(kafka_settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    """An idempotent producer, as an app (the client SDK) would use."""
    p = AIOKafkaProducer(
        **kafka_settings.client_args(),
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
    )
    await p.start()
    yield p
    await p.stop()


async def collect(
    kafka: KafkaSettings,
    topic: str,
    until: Callable[[list[ConsumerRecord]], bool],
    timeout_s: float = 90.0,
) -> list[ConsumerRecord]:
    """Read ``topic`` from the start until ``until(records)`` holds or the time is up."""
    consumer = AIOKafkaConsumer(
        topic,
        **kafka.consumer_args(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout_s
    try:
        while not until(records) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for part in batch.values():
                records.extend(part)
    finally:
        await consumer.stop()
    return records


@dataclass
class Worker:
    """A worker process running tests/kafka/echo_worker.py."""

    args: list[str]
    env: dict[str, str]
    log: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> subprocess.Popen[bytes]:
        out = self.log.open("ab")
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), *self.args], env=self.env, stdout=out, stderr=out
        )
        self.procs.append(proc)
        return proc

    def kill(self) -> None:
        """SIGKILL the newest process: no shutdown hook, no final commit."""
        proc = self.procs[-1]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def kafka_environment(kafka: KafkaSettings) -> dict[str, str]:
    """The variables that give a worker process these brokers and credentials."""
    env = {
        "SEMNEXUS_KAFKA__BOOTSTRAP": kafka.bootstrap,
        "SEMNEXUS_KAFKA__SECURITY_PROTOCOL": kafka.security_protocol,
    }
    if kafka.sasl_password is not None:
        env["SEMNEXUS_KAFKA__SASL_MECHANISM"] = kafka.sasl_mechanism_in_use
        env["SEMNEXUS_KAFKA__SASL_USERNAME"] = kafka.sasl_username or ""
        env["SEMNEXUS_KAFKA__SASL_PASSWORD"] = kafka.sasl_password.get_secret_value()
    return env


@pytest.fixture
def worker_factory(
    kafka_settings: KafkaSettings, topics: Topics, tmp_path: Path
) -> Iterator[Callable[..., Worker]]:
    """Build worker processes with a private consumer group; all stopped afterwards."""
    made: list[Worker] = []

    def make(*args: str, telemetry: bool = False, kafka: KafkaSettings | None = None) -> Worker:
        env = {
            **os.environ,
            **kafka_environment(kafka or kafka_settings),
            "SEMNEXUS_SERVICE_NAME": topics.prefix + "echo",
            "SEMNEXUS_TELEMETRY__ENABLED": "true" if telemetry else "false",
            "SEMNEXUS_KAFKA__COMMIT_INTERVAL_S": "0.5",
            "PYTHONUNBUFFERED": "1",
        }
        worker = Worker(list(args), env, tmp_path / f"worker{len(made)}.log")
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.stop()


async def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll until predicate() or fail with ``what``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)
