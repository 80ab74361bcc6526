"""The service as a process on the real Kafka broker, over a Milvus Lite file."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
    kafka_settings: KafkaSettings,
    unique_prefix: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m semnexus_cache_lookup`` on private topics; stopped afterwards.

    A test marked ``service_env(KEY=VALUE, ...)`` starts it with those settings too.
    """
    marker = request.node.get_closest_marker("service_env")
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
        **(marker.kwargs if marker is not None else {}),
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


async def _topics(kafka_settings: KafkaSettings, prefix: str) -> tuple[TopicNames, Codec]:
    """The private topics, made, and the codec the service speaks."""
    settings = TopicSettings(prefix=prefix)
    await apply_topics(kafka_settings, settings)
    return TopicNames(settings), Codec(SchemaRegistry.load())


async def test_miss_fill_then_paraphrase_hits(
    kafka_settings: KafkaSettings, unique_prefix: str, service: subprocess.Popen[bytes]
) -> None:
    """A request misses, its fill is stored, and a paraphrase is then answered by the cache."""
    names, codec = await _topics(kafka_settings, unique_prefix)
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


@pytest.mark.service_env(
    SEMNEXUS_CACHE__CONCURRENCY="1",
    SEMNEXUS_CACHE__COALESCING_WINDOW_S="30",
    SEMNEXUS_KAFKA__BATCH_HOLD_S="0.2",
)
async def test_a_twin_waiting_on_a_hung_provider_does_not_hold_up_other_requests(
    kafka_settings: KafkaSettings, unique_prefix: str, service: subprocess.Popen[bytes]
) -> None:
    """One agent, a twin parked for the 30 s window: the next question is still looked up.

    No provider runs here, so the leader's answer never comes (a hung provider). Before
    ``kafka.batch_hold_s`` the twin's batch kept the only agent for the whole window, and
    the unrelated question behind it went out only after the twin's own miss.
    """
    names, codec = await _topics(kafka_settings, unique_prefix)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_settings.servers, acks="all", enable_idempotence=True
    )

    def missed(request_ids: set[str]) -> Callable[[list[Any]], bool]:
        def seen(records: list[Any]) -> bool:
            return request_ids <= {codec.decode(r.value, CacheMissed).request_id for r in records}

        return seen

    await producer.start()
    try:
        leader = make_request("Why is the sky blue during the day?", request_id="leader")
        await producer.send_and_wait(names.requests, codec.encode(leader), request_key(leader))
        await collect(kafka_settings, names.cache_missed, missed({"leader"}), timeout_s=180)
        twin = make_request("Why is the sky blue during the day?", request_id="twin")
        await producer.send_and_wait(names.requests, codec.encode(twin), request_key(twin))
        # Well past the 2 ms linger: the other question comes in a batch of its own (a
        # twin's batch mates are never held back; the batches after it were).
        await asyncio.sleep(1.0)
        other = make_request("How do volcanoes form?", request_id="other")
        await producer.send_and_wait(names.requests, codec.encode(other), request_key(other))

        records = await collect(kafka_settings, names.cache_missed, missed({"other"}), timeout_s=20)
        assert service.poll() is None, "the service exited"
        ids = [codec.decode(r.value, CacheMissed).request_id for r in records]
        assert "other" in ids, "the other question waited behind the parked twin"
        assert "twin" not in ids  # still parked, within its window: it has not missed
    finally:
        await producer.stop()
