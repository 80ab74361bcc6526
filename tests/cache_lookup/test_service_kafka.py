"""The service as a process on the real Kafka broker, over a Milvus Lite file."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from semnexus_shared.config import KafkaSettings, TopicSettings
from semnexus_shared.events import CacheMissed, CompletionResponded, SourceKind
from semnexus_shared.scope import request_key
from semnexus_shared.serde import Codec, SchemaRegistry
from semnexus_shared.topics import TopicNames, apply_topics

from ..kafka.conftest import collect
from .conftest import fill_for, make_request

pytestmark = [pytest.mark.kafka, pytest.mark.model, pytest.mark.timeout(300)]


@pytest.fixture
def service(
    kafka_settings: KafkaSettings, unique_prefix: str, tmp_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m semnexus_cache_lookup`` on private topics; stopped afterwards."""
    env = {
        **os.environ,
        "SEMNEXUS_SERVICE_NAME": unique_prefix + "cache-lookup",
        "SEMNEXUS_TOPICS__PREFIX": unique_prefix,
        "SEMNEXUS_KAFKA__BOOTSTRAP": kafka_settings.bootstrap,
        "SEMNEXUS_TELEMETRY__ENABLED": "false",
        "SEMNEXUS_KAFKA__COMMIT_INTERVAL_S": "0.5",
        "SEMNEXUS_CACHE__VECTOR_URI": str(tmp_path / "cache.db"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    # FaustBus's datadir parent is not created by the runner (reported to the lead).
    (Path(tempfile.gettempdir()) / "semnexus-faust").mkdir(exist_ok=True)
    log = (tmp_path / "service.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "semnexus_cache_lookup"], env=env, stdout=log, stderr=log
    )
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    sys.stdout.write((tmp_path / "service.log").read_text(errors="replace")[-4000:])


async def test_miss_fill_then_paraphrase_hits(
    kafka_settings: KafkaSettings, unique_prefix: str, service: subprocess.Popen[bytes]
) -> None:
    """A request misses, its fill is stored, and a paraphrase is then answered by the cache."""
    settings = TopicSettings(prefix=unique_prefix)
    await apply_topics(kafka_settings, settings)
    names = TopicNames(settings)
    codec = Codec(SchemaRegistry.load())
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_settings.servers, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        first = make_request("How do I reset my password?", request_id="k1")
        await producer.send_and_wait(names.requests, codec.encode(first), request_key(first))
        records = await collect(
            kafka_settings, names.cache_missed, lambda rs: len(rs) >= 1, timeout_s=180
        )
        assert service.poll() is None, "the service exited"
        [missed] = [codec.decode(r.value, CacheMissed) for r in records]
        assert missed.request_id == "k1"
        assert missed.embedding is not None

        fill = fill_for(missed)
        await producer.send_and_wait(names.cache_fill, codec.encode(fill), b"scope")
        paraphrase = make_request("How can I reset my password?", request_id="k2")

        def answered(rs: list[object]) -> bool:
            return any(
                codec.decode(r.value, CompletionResponded).request_id == "k2"  # type: ignore[attr-defined]
                for r in rs
            )

        # The fill is written in the background: ask until the paraphrase is answered.
        response = None
        for _ in range(10):
            await producer.send_and_wait(
                names.requests, codec.encode(paraphrase), request_key(paraphrase)
            )
            records = await collect(kafka_settings, names.responses, answered, timeout_s=10)
            hits = [codec.decode(r.value, CompletionResponded) for r in records]
            hits = [h for h in hits if h.request_id == "k2"]
            if hits:
                response = hits[0]
                break
        assert response is not None, "the paraphrase was never answered from the cache"
        assert response.source is not None
        assert response.source.kind is SourceKind.CACHE
        assert response.text == fill.answer
    finally:
        await producer.stop()
