"""Fixtures for tests that need the local stack (`make up`).

Each fixture probes one real service and hands the test its address. When the
service does not answer, the test is skipped with the reason, except when the
environment variable CI is set: there it fails, because a CI run whose
infrastructure is missing must not pass by skipping (see DESIGN.md, "How we
test"). Addresses follow the stack scripts: 127.0.0.1 and the same port
variables with the same defaults (infra/stack/milvus.sh, infra/stack/jaeger.sh).
"""

from __future__ import annotations

import os

import httpx
import pytest

from tests.conftest import require

PROBE_TIMEOUT_S = 3.0


def _port(variable: str, default: int) -> int:
    return int(os.environ.get(variable, default))


@pytest.fixture(scope="session")
def milvus_uri() -> str:
    """URI of the local Milvus server, after one real client call succeeded."""
    from pymilvus import MilvusClient  # noqa: PLC0415 - heavy import, only for these tests

    uri = f"http://127.0.0.1:{_port('MILVUS_PORT', 19530)}"

    def probe() -> None:
        client = MilvusClient(uri=uri, timeout=PROBE_TIMEOUT_S)
        try:
            client.list_collections()
        finally:
            client.close()

    require(f"Milvus at {uri}", probe)
    return uri


@pytest.fixture(scope="session")
def jaeger() -> tuple[str, str]:
    """(OTLP HTTP traces URL, query API base URL) of the local Jaeger, both probed."""
    query = f"http://127.0.0.1:{_port('JAEGER_QUERY_PORT', 16686)}"
    otlp = f"http://127.0.0.1:{_port('JAEGER_OTLP_HTTP_PORT', 4318)}/v1/traces"

    def probe() -> None:
        httpx.get(f"{query}/api/services", timeout=PROBE_TIMEOUT_S).raise_for_status()
        # an empty POST is answered (400) only when the OTLP receiver listens
        httpx.post(otlp, content=b"", timeout=PROBE_TIMEOUT_S)

    require(f"Jaeger at {query} (OTLP {otlp})", probe)
    return otlp, query
