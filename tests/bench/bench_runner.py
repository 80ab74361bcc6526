"""Runner throughput on the real broker: events/s through one echo worker process.

Produces N CompletionRequested events to a fresh topic, starts one worker
(tests/kafka/echo_worker.py) and measures from its first output to its last,
for one-by-one handling and for micro-batches.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from semnexus_shared.config import KafkaSettings, TopicSettings
from semnexus_shared.events import CompletionRequested, Message, Role
from semnexus_shared.serde import Codec, SchemaRegistry
from semnexus_shared.topics import DAY_MS, TopicSpec, apply_topics

WORKER = Path(__file__).resolve().parents[1] / "kafka" / "echo_worker.py"


async def run(total: int, batch: int, kafka: KafkaSettings) -> dict[str, float]:
    """One measurement: events/s of one worker process with this batch size."""
    codec = Codec(SchemaRegistry.load())
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    specs = [TopicSpec(n, 3, "bench", DAY_MS) for n in ("in", "out", "deadletter")]
    await apply_topics(kafka, TopicSettings(prefix=prefix), specs)
    producer = AIOKafkaProducer(bootstrap_servers=kafka.servers, acks="all", linger_ms=5)
    await producer.start()
    for n in range(total):
        event = CompletionRequested(
            request_id=f"r{n}",
            tenant_id="bench",
            messages=(Message(role=Role.USER, content=f"question {n}"),),
            model_alias="chat",
        )
        await producer.send(prefix + "in", codec.encode(event), key=f"r{n}".encode())
    await producer.flush()
    await producer.stop()
    env = {
        **os.environ,
        "SEMNEXUS_SERVICE_NAME": prefix + "echo",
        "SEMNEXUS_KAFKA__BOOTSTRAP": kafka.bootstrap,
        "SEMNEXUS_TELEMETRY__ENABLED": "false",
        "SEMNEXUS_LOG__LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            str(WORKER),
            "--source",
            prefix + "in",
            "--dest",
            prefix + "out",
            "--deadletter",
            prefix + "deadletter",
            "--batch",
            str(batch),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    consumer = AIOKafkaConsumer(
        prefix + "out", bootstrap_servers=kafka.servers, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    seen, first, last = 0, 0.0, 0.0
    deadline = time.monotonic() + 300
    try:
        while seen < total and time.monotonic() < deadline:
            got = await consumer.getmany(timeout_ms=500, max_records=10_000)
            n = sum(len(v) for v in got.values())
            if n and not first:
                first = time.monotonic()
            seen += n
            if n:
                last = time.monotonic()
    finally:
        await consumer.stop()
        proc.terminate()
        proc.wait(timeout=30)
    rate = (seen - 1) / (last - first) if last > first else 0.0
    return {"events": seen, "batch": batch, "events_per_s": round(rate)}


def main() -> None:
    kafka = KafkaSettings()
    for batch in (1, 100):
        print(asyncio.run(run(20_000, batch, kafka)), flush=True)


if __name__ == "__main__":
    main()
