"""Fixtures every tier shares: a clean environment and the infrastructure gates.

Infrastructure fixtures (``kafka_settings``) check that the local stack runs.
When it does not, a developer's run skips those tests with the reason, but
with ``CI`` set the run fails: CI never passes by skipping.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from semnexus_shared.config import KafkaSettings

# One SDK tracer provider for the whole test session (OpenTelemetry allows the
# global provider to be set once); tests read finished spans from the exporter.
_SPANS = InMemorySpanExporter()
_TRACER_PROVIDER = TracerProvider()
_TRACER_PROVIDER.add_span_processor(SimpleSpanProcessor(_SPANS))
trace.set_tracer_provider(_TRACER_PROVIDER)
# Likewise one meter provider; tests read counters through the reader.
_METRICS = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[_METRICS]))


def counter_value(name: str, **labels: str) -> int:
    """The current sum of a counter over the data points matching ``labels``."""
    data = _METRICS.get_metrics_data()
    total = 0
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name != name:
                    continue
                for point in metric.data.data_points:
                    if all(point.attributes.get(k) == v for k, v in labels.items()):
                        total += int(point.value)
    return total


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SEMNEXUS_ variable from a developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("SEMNEXUS_"):
            monkeypatch.delenv(name)


@pytest.fixture
def spans() -> InMemorySpanExporter:
    """Spans finished during this test (the exporter is cleared first)."""
    _SPANS.clear()
    return _SPANS


def require(service: str, probe: Callable[[], object], how: str = "make up") -> None:
    """Run probe; when it raises, fail under CI and skip elsewhere, naming why."""
    try:
        probe()
    except Exception as exc:
        detail = str(exc) if type(exc).__name__ in str(exc) else f"{type(exc).__name__}: {exc}"
        reason = f"{service} is not reachable ({detail}); start the local stack with '{how}'"
    else:
        return
    # outside the except block, so the report is this one line, not a chain
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and {reason}", pytrace=False)
    pytest.skip(reason)


def require_port(service: str, host: str, port: int) -> None:
    """Skip (developer) or fail (CI) unless something accepts connections on host:port."""

    def probe() -> None:
        socket.create_connection((host, port), timeout=1.0).close()

    require(f"{service} on {host}:{port}", probe)


def start_simulator(log: Path) -> tuple[subprocess.Popen[str], str]:
    """The provider simulator as a process on a free port: the process and its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "semnexus_simulator", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=log.open("wb"),
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "ready on" in line, line
    return proc, line.split("ready on ", 1)[1].split()[0]


@pytest.fixture(scope="session")
def kafka_settings() -> KafkaSettings:
    """The local broker's settings; the test fails in CI when it is down."""
    settings = KafkaSettings(bootstrap=os.environ.get("SEMNEXUS_TEST_KAFKA", "127.0.0.1:9092"))
    host, port = settings.servers[0].rsplit(":", 1)
    require_port("Kafka", host, int(port))
    return settings


@pytest.fixture(scope="session")
def kafka_sasl_settings() -> KafkaSettings:
    """The local broker's SASL_PLAINTEXT listener and its user (infra/stack/kafka.sh)."""
    settings = KafkaSettings(
        bootstrap=os.environ.get("SEMNEXUS_TEST_KAFKA_SASL", "127.0.0.1:9094"),
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="semnexus",
        sasl_password=SecretStr("semnexus-local"),
    )
    host, port = settings.servers[0].rsplit(":", 1)
    require_port("Kafka's SASL listener", host, int(port))
    return settings


@pytest.fixture
def unique_prefix() -> str:
    """Topic-name prefix that isolates one test's topics and groups from all others."""
    return f"t{uuid.uuid4().hex[:10]}."
