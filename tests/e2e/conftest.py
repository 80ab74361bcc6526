"""The whole pipeline as real processes on the local stack, private to one test.

:func:`gateway` starts the provider simulator and the four services
(``python -m semnexus_<service>``) on topics under a fresh prefix, a private
Milvus collection on the local Milvus server, a private ledger database, and
OTLP export to the local Jaeger. Every service's log is kept for the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from semnexus_shared.config import KafkaSettings, TopicSettings
from semnexus_shared.topics import apply_topics
from tests.conftest import require, start_simulator

REPO = Path(__file__).resolve().parents[2]
JAEGER_QUERY = f"http://127.0.0.1:{os.environ.get('JAEGER_QUERY_PORT', '16686')}"
OTLP_HTTP = f"http://127.0.0.1:{os.environ.get('JAEGER_OTLP_HTTP_PORT', '4318')}"
MILVUS = f"http://127.0.0.1:{os.environ.get('MILVUS_PORT', '19530')}"
# Planted secrets: they must never surface in a log, a span or a dead letter.
PLANTED_KEY = "sk-planted-0123456789abcdefSECRET"

SERVICES = {
    "cache-lookup": "semnexus_cache_lookup",
    "router": "semnexus_router",
    "provider-worker": "semnexus_provider_worker",
    "cost-ledger": "semnexus_cost_ledger",
}


@dataclass
class Gateway:
    """A running pipeline: its prefix, simulator URL, logs and processes."""

    prefix: str
    simulator: str
    logs: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def service_name(self, service: str) -> str:
        """The service's name in Jaeger and its consumer group."""
        return f"{self.prefix}{service}"

    def start(self, service: str) -> None:
        """Start (or restart) one service process; its log is appended to."""
        log = (self.logs / f"{service}.log").open("ab")
        self.procs[service] = subprocess.Popen(
            [sys.executable, "-m", SERVICES[service]],
            env={**self.env, "SEMNEXUS_SERVICE_NAME": self.service_name(service)},
            stdout=log,
            stderr=log,
            cwd=REPO,
        )

    def kill(self, service: str) -> None:
        """SIGKILL one service: no shutdown hook, no final offset commit."""
        proc = self.procs[service]
        proc.kill()
        proc.wait(timeout=10)

    def log_text(self) -> str:
        """Every process's output so far."""
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("*.log")))


@pytest.fixture
def jaeger_query() -> str:
    """The local Jaeger's query API; fails under CI when Jaeger is down."""
    require(
        f"Jaeger at {JAEGER_QUERY}",
        lambda: httpx.get(f"{JAEGER_QUERY}/api/services", timeout=3).raise_for_status(),
    )
    return JAEGER_QUERY


@pytest.fixture
def milvus_server() -> str:
    """The local Milvus server's URI; fails under CI when it is down."""
    from pymilvus import MilvusClient  # noqa: PLC0415  (heavy; only here)

    require(f"Milvus at {MILVUS}", lambda: MilvusClient(uri=MILVUS, timeout=3).list_collections())
    return MILVUS


@pytest.fixture
def gateway_env() -> dict[str, str]:
    """Extra environment for every service of the gateway (tests override this)."""
    return {}


@pytest.fixture
async def gateway(
    kafka_settings: KafkaSettings,
    unique_prefix: str,
    jaeger_query: str,
    milvus_server: str,
    gateway_env: dict[str, str],
    tmp_path: Path,
) -> Iterator[Gateway]:
    """Simulator + cache-lookup + router + provider-worker + cost-ledger, all processes."""
    await apply_topics(kafka_settings, TopicSettings(prefix=unique_prefix))
    logs = tmp_path / "logs"
    logs.mkdir()
    sim_proc, simulator = start_simulator(logs / "simulator.log")
    providers = tmp_path / "providers.yaml"
    providers.write_text(
        (REPO / "infra" / "providers.yaml").read_text().replace("http://127.0.0.1:8900", simulator)
    )
    collection = "e2e_" + unique_prefix.strip(".").replace("-", "_")
    env = {
        **os.environ,
        "SEMNEXUS_KAFKA__BOOTSTRAP": kafka_settings.bootstrap,
        "SEMNEXUS_TOPICS__PREFIX": unique_prefix,
        "SEMNEXUS_KAFKA__COMMIT_INTERVAL_S": "0.5",
        "SEMNEXUS_TELEMETRY__ENABLED": "true",
        "SEMNEXUS_TELEMETRY__OTLP_ENDPOINT": OTLP_HTTP,
        "SEMNEXUS_PROVIDERS_FILE": str(providers),
        "SEMNEXUS_CACHE__VECTOR_URI": milvus_server,
        "SEMNEXUS_CACHE__COLLECTION": collection,
        "SEMNEXUS_DATA_DIR": str(tmp_path / "ledger"),
        "SEMNEXUS_HTTP__PORT": "0",
        "OPENAI_API_KEY": PLANTED_KEY,
        "ANTHROPIC_API_KEY": PLANTED_KEY,
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        **gateway_env,
    }
    gw = Gateway(unique_prefix, simulator, logs, env)
    for service in SERVICES:
        gw.start(service)
    try:
        yield gw
    finally:
        for proc in [*gw.procs.values(), sim_proc]:
            proc.terminate()
        for proc in [*gw.procs.values(), sim_proc]:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_for_trace(query: str, trace_id: str, want: int, timeout_s: float = 60) -> dict:
    """The trace from Jaeger's API once it holds at least ``want`` spans."""
    deadline = time.monotonic() + timeout_s
    data: dict = {}
    while time.monotonic() < deadline:
        response = httpx.get(f"{query}/api/traces/{trace_id}", timeout=5)
        if response.status_code == 200:
            data = response.json()["data"][0]
            if len(data["spans"]) >= want:
                return data
        time.sleep(1)
    return data
