"""A secured cluster: every client authenticates with the settings (the broker's SASL listener)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
from aiokafka.errors import KafkaConnectionError
from pydantic import SecretStr

from semnexus_shared.client import SemNexusClient
from semnexus_shared.config import KafkaSettings, TopicSettings
from semnexus_shared.serde import Codec, SchemaRegistry
from semnexus_shared.topics import TopicNames, ping

from .conftest import Topics, Worker, collect

pytestmark = pytest.mark.kafka

CODEC = Codec(SchemaRegistry.load())


async def test_a_pipeline_runs_on_the_sasl_listener_only(
    kafka_sasl_settings: KafkaSettings,
    unique_prefix: str,
    worker_factory: Callable[..., Worker],
) -> None:
    """Topic admin, the app client, the bus and a consumer all log in, and every event flows."""
    topics = Topics(unique_prefix, kafka_sasl_settings)
    names = TopicNames(TopicSettings(prefix=unique_prefix))
    await topics.create(requests=3, responses=1, out=3, deadletter=1)
    worker = worker_factory(
        "--source",
        names.requests,
        "--dest",
        topics["out"],
        "--deadletter",
        topics["deadletter"],
        kafka=kafka_sasl_settings,
    )
    worker.start()
    client = SemNexusClient(
        kafka_sasl_settings, "acme", topics=TopicSettings(prefix=unique_prefix), codec=CODEC
    )
    async with client:
        sent = [
            await client.submit(client.build(f"question {n}", model_alias="chat"))
            for n in range(30)
        ]
    out = await collect(kafka_sasl_settings, topics["out"], lambda rs: len(rs) >= 30)
    assert Counter(CODEC.decode(r.value).request_id for r in out) == Counter(sent), worker.output()[
        -3000:
    ]


async def test_a_wrong_password_is_refused_by_the_broker(
    kafka_sasl_settings: KafkaSettings, caplog: pytest.LogCaptureFixture
) -> None:
    """The credentials really are checked: a wrong password cannot reach the cluster."""
    wrong = kafka_sasl_settings.model_copy(update={"sasl_password": SecretStr("wrong")})
    assert await ping(kafka_sasl_settings) == 1
    # aiokafka raises a bare "unable to bootstrap" and logs the broker's reason.
    with pytest.raises(KafkaConnectionError):
        await ping(wrong)
    assert "SaslAuthenticationFailed" in caplog.text
