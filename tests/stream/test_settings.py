"""Micro-batch linger per service, the environment overriding it, producer linger, fetch wait."""

from __future__ import annotations

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka

from semnexus_cache_lookup.config import Settings as CacheLookupSettings
from semnexus_cost_ledger.config import LedgerSettings
from semnexus_shared.config import KafkaSettings, ServiceSettings
from semnexus_shared.stream.kafka import FaustBus


def test_services_pick_their_own_linger() -> None:
    assert ServiceSettings().kafka.batch_linger_s == KafkaSettings().batch_linger_s
    assert CacheLookupSettings().kafka.batch_linger_s == 0.0
    assert LedgerSettings().kafka.batch_linger_s == 0.05


def test_the_bus_hands_the_producer_linger_to_faust() -> None:
    assert FaustBus(ServiceSettings()).app.conf.producer_linger == 0.0
    lingering = ServiceSettings(kafka=KafkaSettings(producer_linger_s=0.003))
    assert FaustBus(lingering).app.conf.producer_linger == 0.003


async def test_the_bus_consumer_fetches_with_the_configured_wait() -> None:
    # faust builds its aiokafka consumer with a fixed 1.5 s fetch wait; ours must win.
    for wait_s, expected_ms in ((None, 100), (0.02, 20)):
        kafka = KafkaSettings() if wait_s is None else KafkaSettings(fetch_max_wait_s=wait_s)
        bus = FaustBus(ServiceSettings(kafka=kafka))
        delegate, transport = bus.app.consumer, bus.app.transport
        assert isinstance(delegate, faust_aiokafka.Consumer)
        assert isinstance(transport, faust_aiokafka.Transport)
        consumer = delegate._thread._create_worker_consumer(transport)
        try:
            # The value AIOKafkaConsumer.start() hands to its fetcher.
            assert consumer._fetch_max_wait_ms == expected_ms
        finally:
            await consumer.stop()


def test_the_environment_wins_over_a_service_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMNEXUS_KAFKA__BATCH_LINGER_S", "0.02")
    monkeypatch.setenv("SEMNEXUS_KAFKA__BOOTSTRAP", "10.0.0.5:9092")
    got = CacheLookupSettings()
    assert got.kafka.batch_linger_s == 0.02
    assert got.kafka.bootstrap == "10.0.0.5:9092"


def test_other_kafka_settings_keep_the_service_linger(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMNEXUS_KAFKA__BOOTSTRAP", "10.0.0.5:9092")
    got = LedgerSettings()
    assert got.kafka.batch_linger_s == 0.05
    assert got.kafka.bootstrap == "10.0.0.5:9092"
