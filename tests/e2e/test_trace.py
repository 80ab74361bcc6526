"""One request, one trace: the whole pipeline on the local stack, read back from Jaeger."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from semnexus_shared.client import SemNexusClient
from semnexus_shared.config import KafkaSettings, TopicSettings
from semnexus_shared.events import CacheMode, CachePolicy, DeadLettered, SourceKind
from semnexus_shared.serde import Codec, SchemaRegistry
from semnexus_shared.tracing import trace_id_of

from .conftest import OTLP_HTTP, PLANTED_KEY, Gateway, wait_for_trace

pytestmark = pytest.mark.e2e

PLANTED_PROMPT = "PLANTEDPROMPT-7f3a: how do penguins keep their eggs warm?"


@pytest.fixture(scope="module")
def exporting_tracer() -> Iterator[TracerProvider]:
    """The test process (the app) exports its own spans to Jaeger too."""
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    processor = BatchSpanProcessor(
        OTLPSpanExporter(endpoint=f"{OTLP_HTTP}/v1/traces"), schedule_delay_millis=200
    )
    provider.add_span_processor(processor)
    yield provider
    processor.shutdown()


def _by_service(data: dict) -> dict[str, list[dict]]:
    names = {pid: p["serviceName"] for pid, p in data["processes"].items()}
    out: dict[str, list[dict]] = {}
    for span in data["spans"]:
        out.setdefault(names[span["processID"]], []).append(span)
    return out


def _tags(span: dict) -> dict[str, object]:
    return {t["key"]: t["value"] for t in span.get("tags", [])}


def _parent(span: dict) -> str | None:
    refs = [r for r in span.get("references", []) if r["refType"] == "CHILD_OF"]
    return refs[0]["spanID"] if refs else None


async def test_a_failed_over_request_is_one_trace_across_every_hop(
    gateway: Gateway,
    kafka_settings: KafkaSettings,
    jaeger_query: str,
    exporting_tracer: TracerProvider,
) -> None:
    """Publish → lookup → router → openai (429) → anthropic → fill and ledger, one trace."""
    httpx.post(
        f"{gateway.simulator}/_sim/providers/openai/faults",
        json={"rate_limit": {"for_s": 300, "retry_after_s": 30}},
        timeout=5,
    ).raise_for_status()
    tracer = trace.get_tracer("e2e-app")
    topics = TopicSettings(prefix=gateway.prefix)
    async with SemNexusClient(kafka_settings, "acme", topics=topics) as client:
        with tracer.start_as_current_span("app asks") as root:
            response = await client.complete(
                PLANTED_PROMPT,
                model_alias="chat",
                timeout_s=90,
                cache=CachePolicy(mode=CacheMode.USE),
            )
        trace_id = trace_id_of(root)
    exporting_tracer.force_flush()
    assert response.source is not None
    assert response.source.kind == SourceKind.PROVIDER
    assert response.source.provider == "anthropic", gateway.log_text()[-4000:]
    assert [a.provider for a in response.attempts] == ["openai", "anthropic"]

    p = gateway.prefix
    data = wait_for_trace(jaeger_query, trace_id, want=10)
    services = _by_service(data)

    def one(service: str, name: str) -> dict:
        found = [
            s for s in services.get(gateway.service_name(service), []) if s["operationName"] == name
        ]
        assert found, f"no span {name!r} of {service}; have {sorted(services)}"
        return found[0]

    publish = next(s for s in data["spans"] if s["operationName"] == f"{p}requests publish")
    lookup = one("cache-lookup", f"{p}requests process")
    route = one("router", f"{p}cache.missed process")
    first = one("provider-worker", f"{p}provider.openai process")
    second = one("provider-worker", f"{p}provider.anthropic process")
    fill = one("cache-lookup", f"{p}cache.fill process")
    charges = [
        s
        for s in services.get(gateway.service_name("cost-ledger"), [])
        if s["operationName"] == f"{p}usage process"
    ]
    calls = [
        s
        for s in services.get(gateway.service_name("provider-worker"), [])
        if s["operationName"].startswith("chat ")
    ]

    # parent/child links across every Kafka hop
    assert _parent(lookup) == publish["spanID"]
    assert _parent(route) == lookup["spanID"]
    assert _parent(first) == route["spanID"]
    assert _parent(second) == first["spanID"]
    assert _parent(fill) == second["spanID"]
    assert charges, "the ledger's charge is not in the trace"
    # the usage the ledger charges was produced by a provider hop of this request
    assert {_parent(c) for c in charges} <= {first["spanID"], second["spanID"]}

    # a failover shows two provider calls, each a GenAI client span under its hop
    assert len(calls) == 2
    by_parent = {_parent(c): c for c in calls}
    failed, answered = by_parent[first["spanID"]], by_parent[second["spanID"]]
    assert _tags(failed)["gen_ai.system"] == "openai"
    assert _tags(failed)["error.type"] == "rate_limited"
    ok = _tags(answered)
    assert ok["gen_ai.system"] == "anthropic"
    assert ok["gen_ai.usage.input_tokens"] > 0
    assert ok["gen_ai.usage.output_tokens"] > 0

    # nothing secret anywhere: no key, no prompt text, in spans or logs
    trace_text = httpx.get(f"{jaeger_query}/api/traces/{trace_id}", timeout=5).text
    logs = gateway.log_text()
    for secret in (PLANTED_KEY, "PLANTEDPROMPT-7f3a"):
        assert secret not in trace_text
        assert secret not in logs


async def test_planted_secrets_never_reach_logs_spans_or_dead_letters(
    gateway: Gateway,
    kafka_settings: KafkaSettings,
    jaeger_query: str,
    exporting_tracer: TracerProvider,
) -> None:
    """A provider key and a prompt secret stay out of logs, every span, and the dead letters."""
    topics = TopicSettings(prefix=gateway.prefix)
    secret_prompt = "my password is hunter2-PLANTED-c0ffee"
    async with SemNexusClient(kafka_settings, "acme", topics=topics) as client:
        answered = await client.complete(secret_prompt, model_alias="chat", timeout_s=90)
        # an invalid request (unknown alias) is dead-lettered and answered with an error
        bad = client.build("an ordinary question", model_alias="no-such-alias")
        with pytest.raises(Exception, match="invalid_request"):
            await client.send(bad, timeout_s=60)
    exporting_tracer.force_flush()
    assert answered.text

    consumer = AIOKafkaConsumer(
        f"{gateway.prefix}deadletter",
        bootstrap_servers=kafka_settings.servers,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=5000)
    finally:
        await consumer.stop()
    codec = Codec(SchemaRegistry.load())
    letters = [codec.decode(r.value, DeadLettered) for part in batches.values() for r in part]
    assert [letter.request_id for letter in letters] == [bad.request_id]
    assert "no-such-alias" in letters[0].reason
    for letter in letters:
        text = repr(letter.model_dump()) + letter.payload.decode("utf-8", "replace")
        assert "hunter2-PLANTED-c0ffee" not in text
        assert PLANTED_KEY not in text

    logs = gateway.log_text()
    assert "hunter2-PLANTED-c0ffee" not in logs
    assert PLANTED_KEY not in logs
    services = httpx.get(f"{jaeger_query}/api/services", timeout=5).json()["data"]
    for service in services:
        if not service.startswith(gateway.prefix):
            continue
        traces = httpx.get(
            f"{jaeger_query}/api/traces", params={"service": service, "limit": 50}, timeout=10
        ).text
        assert "hunter2-PLANTED-c0ffee" not in traces
        assert PLANTED_KEY not in traces
