"""Fixtures every tier shares: a clean environment and the infrastructure gates.

Infrastructure fixtures (``kafka_settings``) check that the local stack runs.
When it does not, a developer's run skips those tests with the reason, but
with ``CI`` set the run fails: CI never passes by skipping.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from semnexus_shared.config import KafkaSettings

# One SDK tracer provider for the whole test session (OpenTelemetry allows the
# global provider to be set once); tests read finished spans from the exporter.
_SPANS = InMemorySpanExporter()
_TRACER_PROVIDER = TracerProvider()
_TRACER_PROVIDER.add_span_processor(SimpleSpanProcessor(_SPANS))
trace.set_tracer_provider(_TRACER_PROVIDER)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No SEMNEXUS_ variable from a developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("SEMNEXUS_"):
            monkeypatch.delenv(name)
    yield


@pytest.fixture
def spans() -> InMemorySpanExporter:
    """Spans finished during this test (the exporter is cleared first)."""
    _SPANS.clear()
    return _SPANS


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int, how: str) -> None:
    """Skip (developer) or fail (CI) when a piece of the local stack is down."""
    if _reachable(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}; start it with `{how}`"
    if os.environ.get("CI"):
        pytest.fail(f"CI: {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def kafka_settings() -> KafkaSettings:
    """The local broker's settings; the test fails in CI when it is down."""
    settings = KafkaSettings(bootstrap=os.environ.get("SEMNEXUS_TEST_KAFKA", "127.0.0.1:9092"))
    host, port = settings.servers[0].rsplit(":", 1)
    require_service("Kafka", host, int(port), "make up")
    return settings


@pytest.fixture
def unique_prefix() -> str:
    """Topic-name prefix that isolates one test's topics and groups from all others."""
    return f"t{uuid.uuid4().hex[:10]}."
