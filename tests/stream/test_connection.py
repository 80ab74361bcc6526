"""Kafka authentication: one set of settings connects every client, faust's included."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import SecretStr, ValidationError

from semnexus_shared.config import KafkaSettings, ServiceSettings
from semnexus_shared.stream.kafka import FaustBus, broker_credentials

SASL = {"sasl_username": "app", "sasl_password": SecretStr("s3cret")}


def _auth(args: dict[str, Any]) -> dict[str, Any]:
    """The authentication part of aiokafka arguments, TLS contexts compared by kind."""
    keep = {k: v for k, v in args.items() if k.startswith(("security", "sasl", "ssl"))}
    if keep.get("ssl_context") is not None:
        keep["ssl_context"] = type(keep["ssl_context"])
    else:
        keep.pop("ssl_context", None)
    return keep


def test_plaintext_is_the_default_and_sends_no_credentials() -> None:
    """A local broker needs nothing but the bootstrap list."""
    args = KafkaSettings(bootstrap="a:9092, b:9092").client_args()
    assert args == {"bootstrap_servers": ["a:9092", "b:9092"], "security_protocol": "PLAINTEXT"}
    assert broker_credentials(KafkaSettings()) is None


def test_sasl_ssl_carries_the_credentials_and_a_tls_context() -> None:
    """A managed cluster: SASL over TLS, PLAIN unless another mechanism is named."""
    args = KafkaSettings(security_protocol="SASL_SSL", **SASL).client_args()
    assert args["security_protocol"] == "SASL_SSL"
    assert args["sasl_mechanism"] == "PLAIN"
    assert (args["sasl_plain_username"], args["sasl_plain_password"]) == ("app", "s3cret")
    assert isinstance(args["ssl_context"], ssl.SSLContext)
    assert args["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    scram = KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", **SASL)
    assert scram.client_args()["sasl_mechanism"] == "SCRAM-SHA-512"


def test_consumers_also_get_the_fetch_wait() -> None:
    """Every consumer, not only the bus's, waits the configured time for a fetch."""
    kafka = KafkaSettings(fetch_max_wait_s=0.05, security_protocol="SASL_PLAINTEXT", **SASL)
    assert kafka.consumer_args() == {**kafka.client_args(), "fetch_max_wait_ms": 50}


@pytest.mark.parametrize(
    "kafka",
    [
        KafkaSettings(),
        KafkaSettings(security_protocol="SSL"),
        KafkaSettings(security_protocol="SASL_PLAINTEXT", **SASL),
        KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-256", **SASL),
    ],
    ids=["plaintext", "ssl", "sasl-plaintext", "sasl-ssl-scram"],
)
def test_faust_connects_exactly_as_the_other_clients(kafka: KafkaSettings) -> None:
    """What faust makes of the bus's credentials equals what every aiokafka client gets."""
    faust_args = dict(credentials_to_aiokafka_auth(broker_credentials(kafka)))
    assert _auth(faust_args) == _auth(kafka.client_args())


async def test_the_bus_consumer_and_producer_authenticate() -> None:
    """The clients faust builds for the bus carry the settings' credentials."""
    kafka = KafkaSettings(security_protocol="SASL_PLAINTEXT", **SASL)
    bus = FaustBus(ServiceSettings(kafka=kafka))
    consumer = bus.app.consumer._thread._create_worker_consumer(bus.app.transport)
    producer = bus.app.producer._new_producer()
    try:
        for client in (consumer._client, producer.client):
            assert client._security_protocol == "SASL_PLAINTEXT"
            assert client._sasl_mechanism == "PLAIN"
            assert (client._sasl_plain_username, client._sasl_plain_password) == ("app", "s3cret")
    finally:
        await consumer.stop()
        await producer.stop()


def test_the_environment_configures_authentication(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The README's variables reach the settings, the password kept out of reprs."""
    monkeypatch.setenv("SEMNEXUS_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("SEMNEXUS_KAFKA__SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("SEMNEXUS_KAFKA__SASL_USERNAME", "app")
    monkeypatch.setenv("SEMNEXUS_KAFKA__SASL_PASSWORD", "s3cret")
    kafka = ServiceSettings().kafka
    assert kafka.client_args()["sasl_plain_password"] == "s3cret"
    assert "s3cret" not in repr(kafka)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"security_protocol": "SASL_SSL"}, "needs kafka.sasl_username and kafka.sasl_password"),
        ({"security_protocol": "SASL_PLAINTEXT", "sasl_username": "app"}, "sasl_password"),
        ({"sasl_password": "s3cret"}, "kafka.sasl_password is set but kafka.security_protocol"),
        ({"sasl_mechanism": "PLAIN"}, "set it to SASL_SSL"),
        ({"ssl_cafile": "/etc/ca.pem"}, "does not use TLS"),
        ({"security_protocol": "TLS"}, "security_protocol"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI", **SASL}, "sasl_mechanism"),
    ],
)
def test_incomplete_or_contradictory_authentication_is_refused(
    fields: dict[str, Any], message: str
) -> None:
    """A half-set configuration fails at start with what to set, not at the broker."""
    with pytest.raises(ValidationError, match=message):
        KafkaSettings(**fields)


def test_a_missing_ca_bundle_fails_when_the_context_is_made(tmp_path: Path) -> None:
    """A wrong ssl_cafile path is an error, not a silent fall-back to the system store."""
    kafka = KafkaSettings(security_protocol="SSL", ssl_cafile=tmp_path / "missing.pem")
    with pytest.raises(FileNotFoundError):
        kafka.client_args()
