"""The services that infra/stack starts answer the way the project uses them.

Milvus: a collection shaped like a cache scope (tenant field, HNSW on cosine)
takes rows and answers a filtered vector search. Jaeger: a span exported over
OTLP HTTP is readable from the query API.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from pymilvus import DataType, MilvusClient

DIM = 8
SERVICE_NAME = "stack-check"


@pytest.fixture
def milvus(milvus_uri: str) -> Iterator[tuple[MilvusClient, str]]:
    """A client and a fresh, uniquely named collection, dropped afterwards."""
    client = MilvusClient(uri=milvus_uri, timeout=30)
    name = f"stack_check_{uuid.uuid4().hex}"
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("tenant", DataType.VARCHAR, max_length=64)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    index = client.prepare_index_params()
    index.add_index(
        field_name="vector",
        index_type="HNSW",
        metric_type="COSINE",
        params={"M": 16, "efConstruction": 64},
    )
    client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")
    try:
        yield client, name
    finally:
        client.drop_collection(name)
        client.close()


def one_hot(i: int) -> list[float]:
    """A unit vector along axis i: cosine 1 with itself, 0 with the others."""
    return [1.0 if j == i else 0.0 for j in range(DIM)]


@pytest.mark.milvus
def test_milvus_filtered_search_returns_only_the_tenants_nearest_rows(
    milvus: tuple[MilvusClient, str],
) -> None:
    """A search filtered on tenant never returns another tenant's row, even a closer one."""
    client, name = milvus
    rows = [
        {"id": i, "tenant": "acme" if i % 2 == 0 else "globex", "vector": one_hot(i)}
        for i in range(DIM)
    ]
    assert client.insert(name, rows)["insert_count"] == DIM

    # nearest overall is globex's row 3 (cosine 0.89); acme's best is row 2 (0.45)
    query = one_hot(3)
    query[2] = 0.5
    hits = client.search(
        name,
        data=[query],
        filter='tenant == "acme"',
        limit=3,
        output_fields=["tenant"],
        search_params={"metric_type": "COSINE", "params": {"ef": 32}},
    )[0]

    assert hits[0]["id"] == 2
    assert {h["entity"]["tenant"] for h in hits} == {"acme"}
    assert len(hits) == 3


@pytest.mark.milvus
def test_milvus_lists_the_new_collection(milvus: tuple[MilvusClient, str], milvus_uri: str) -> None:
    """A collection one client created is listed by a second, independent client."""
    _, name = milvus
    other = MilvusClient(uri=milvus_uri, timeout=30)
    try:
        assert name in other.list_collections()
    finally:
        other.close()


def export_one_span(otlp_traces_url: str, span_name: str) -> str:
    """Export one span as service SERVICE_NAME; return its trace id in hex."""
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=otlp_traces_url, timeout=10))
    )
    try:
        with provider.get_tracer("tests.stack").start_as_current_span(span_name) as span:
            span.set_attribute("semnexus.check", "stack")
            trace_id = format(span.get_span_context().trace_id, "032x")
    finally:
        provider.shutdown()
    return trace_id


@pytest.mark.e2e
def test_jaeger_serves_a_span_sent_over_otlp_http(jaeger: tuple[str, str]) -> None:
    """A span exported over OTLP HTTP is found by service in Jaeger's query API."""
    otlp_traces_url, query_url = jaeger
    span_name = f"stack-check-{uuid.uuid4().hex[:8]}"
    trace_id = export_one_span(otlp_traces_url, span_name)

    found: list[dict[str, object]] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        resp = httpx.get(
            f"{query_url}/api/traces",
            params={"service": SERVICE_NAME, "lookback": "1h", "limit": 100},
            timeout=5,
        )
        resp.raise_for_status()
        found = [t for t in resp.json()["data"] if t["traceID"] == trace_id]
        if found:
            break
        time.sleep(0.3)

    assert found, f"trace {trace_id} of service {SERVICE_NAME!r} not in Jaeger after 15 s"
    spans = found[0]["spans"]
    assert isinstance(spans, list)
    assert [s["operationName"] for s in spans] == [span_name]
    assert {"key": "semnexus.check", "type": "string", "value": "stack"} in spans[0]["tags"]
