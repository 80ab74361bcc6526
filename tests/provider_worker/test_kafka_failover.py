"""Router and provider-worker as real processes on Kafka, against a simulator process:
a request fails over from a 429ing primary and is answered."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from semnexus_shared.config import KafkaSettings, TopicSettings
from semnexus_shared.events import (
    AttemptOutcome,
    CacheMissed,
    CacheScope,
    CompletionRequested,
    CompletionResponded,
    Message,
    ResponseStatus,
    Role,
)
from semnexus_shared.serde import Codec, SchemaRegistry
from semnexus_shared.topics import apply_topics
from tests.conftest import start_simulator

from ..kafka.conftest import collect

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[str]:
    """A simulator process on a free port whose openai answers 429 (retry-after 30)."""
    proc, base = start_simulator(tmp_path / "sim.log")
    response = httpx.post(
        f"{base}/_sim/providers/openai/faults",
        json={"rate_limit": {"for_s": 300, "retry_after_s": 30}},
    )
    assert response.status_code == 200
    yield base
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
async def topics_applied(kafka_settings: KafkaSettings, unique_prefix: str) -> str:
    """Every declared topic, created under this test's prefix."""
    await apply_topics(kafka_settings, TopicSettings(prefix=unique_prefix))
    return unique_prefix


@pytest.fixture
def services(
    kafka_settings: KafkaSettings, topics_applied: str, simulator: str, tmp_path: Path
) -> Iterator[Path]:
    """The router and the provider-worker as processes (``python -m``); yields the log dir."""
    text = (REPO / "infra" / "providers.yaml").read_text()
    providers = tmp_path / "providers.yaml"
    providers.write_text(text.replace("http://127.0.0.1:8900", simulator))
    env = {
        **os.environ,
        "SEMNEXUS_KAFKA__BOOTSTRAP": kafka_settings.bootstrap,
        "SEMNEXUS_TOPICS__PREFIX": topics_applied,
        "SEMNEXUS_TELEMETRY__ENABLED": "false",
        "SEMNEXUS_KAFKA__COMMIT_INTERVAL_S": "0.5",
        "SEMNEXUS_PROVIDERS_FILE": str(providers),
        "OPENAI_API_KEY": "sk-test-openai",
        "ANTHROPIC_API_KEY": "sk-test-anthropic",
        "PYTHONUNBUFFERED": "1",
    }
    procs = []
    for module, name in [
        ("semnexus_router", "router"),
        ("semnexus_provider_worker", "provider-worker"),
    ]:
        log = (tmp_path / f"{name}.log").open("wb")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", module],
                env={**env, "SEMNEXUS_SERVICE_NAME": f"{topics_applied}{name}"},
                stdout=log,
                stderr=log,
            )
        )
    yield tmp_path
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
async def producer(kafka_settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    """A producer standing in for cache-lookup."""
    p = AIOKafkaProducer(bootstrap_servers=kafka_settings.servers, acks="all")
    await p.start()
    yield p
    await p.stop()


async def test_request_fails_over_from_a_429ing_primary(
    kafka_settings: KafkaSettings,
    topics_applied: str,
    simulator: str,
    services: Path,
    producer: AIOKafkaProducer,
) -> None:
    """A 429 from openai moves the request to anthropic, which answers it."""
    codec = Codec(SchemaRegistry.load())
    request = CompletionRequested(
        request_id="kafka-r1",
        tenant_id="acme",
        model_alias="chat",
        messages=(Message(role=Role.USER, content="Where is the Eiffel tower?"),),
    )
    scope = CacheScope(
        tenant_id="acme",
        model_alias="chat",
        system_hash="s",
        history_hash="h",
        tools_format_hash="t",
        sampling_bucket="b",
    )
    miss = CacheMissed(request_id="kafka-r1", tenant_id="acme", request=request, scope=scope)
    await producer.send_and_wait(
        f"{topics_applied}cache.missed", codec.encode(miss), key=b"kafka-r1"
    )
    records = await collect(
        kafka_settings, f"{topics_applied}responses", lambda rs: len(rs) >= 1, timeout_s=45
    )
    assert records, "no response within 45 s (see router.log / provider-worker.log)"
    answer = codec.decode(records[0].value, CompletionResponded)
    assert answer.request_id == "kafka-r1"
    assert answer.status is ResponseStatus.OK, answer.error_message
    assert answer.source is not None
    assert answer.source.provider == "anthropic"
    assert [(a.provider, a.outcome) for a in answer.attempts] == [
        ("openai", AttemptOutcome.RATE_LIMITED),
        ("anthropic", AttemptOutcome.OK),
    ]
    async with httpx.AsyncClient() as client:
        calls = (await client.get(f"{simulator}/_sim/calls")).json()["providers"]
    assert calls["openai"]["by_status"] == {"429": 1}
    assert calls["anthropic"]["by_status"] == {"200": 1}
