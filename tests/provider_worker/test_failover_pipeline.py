"""Router and worker pipelines on the in-memory bus against the simulator:
a primary that answers 429 with retry-after 30 is routed around, then used again."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import httpx

from semnexus_provider_worker import app as worker_app
from semnexus_provider_worker.config import WorkerSettings, load_providers
from semnexus_router import app as router_app
from semnexus_router.config import RouterSettings, load_catalog
from semnexus_shared.events import (
    AttemptOutcome,
    CacheFilled,
    CacheMissed,
    CacheScope,
    CompletionRequested,
    CompletionResponded,
    HealthState,
    Message,
    ProviderHealthChanged,
    ResponseStatus,
    Role,
    UsageRecorded,
)
from semnexus_shared.service import context_for
from semnexus_shared.stream import Inbound, MemoryBus, Pipeline, for_each
from semnexus_simulator import Faults, SimulatorConfig, create_app

from .conftest import KINDS, ManualClock, provider

REPO = Path(__file__).resolve().parents[2]


def miss(n: int) -> CacheMissed:
    """The cache miss of request n."""
    request = CompletionRequested(
        request_id=f"r{n}",
        tenant_id="acme",
        model_alias="chat",
        messages=(Message(role=Role.USER, content=f"question number {n}?"),),
    )
    scope = CacheScope(
        tenant_id="acme",
        model_alias="chat",
        system_hash="s",
        history_hash="h",
        tools_format_hash="t",
        sampling_bucket="b",
    )
    return CacheMissed(request_id=f"r{n}", tenant_id="acme", request=request, scope=scope)


def health_view(source: str, state: dict[str, ProviderHealthChanged], codec: object) -> Pipeline:
    """A stand-in for the router's compacted view: folds provider.health into ``state``."""

    async def fold(inbound: Inbound[ProviderHealthChanged]) -> Sequence[object]:
        state[inbound.event.provider] = inbound.event
        return []

    return Pipeline(
        name="health-view",
        sources=[source],
        handler=for_each(fold),
        routes={},
        codec=codec,
        deadletter_topic="dlq",  # type: ignore[arg-type]
        event_type=ProviderHealthChanged,
    )


async def test_429_primary_is_routed_around_then_used_again() -> None:
    """Every request is answered by the fallback while the primary cools; none calls it."""
    clock = ManualClock()
    defaults = SimulatorConfig().providers
    primary_429 = Faults.model_validate({"rate_limit": {"for_s": 30, "retry_after_s": 30}})
    config = SimulatorConfig(
        providers={
            **defaults,
            "openai": defaults["openai"].model_copy(update={"faults": primary_429}),
        }
    )
    sim = create_app(config, clock=clock)
    calls = sim.state.simulator.calls
    transport = httpx.ASGITransport(app=sim)

    router_settings = RouterSettings()
    worker_settings = WorkerSettings()
    ctx = context_for(worker_settings)
    topics = ctx.topics
    health: dict[str, ProviderHealthChanged] = {}
    catalog = load_catalog(REPO / "infra" / "providers.yaml")
    providers = {n: provider(n, "http://sim") for n in KINDS}
    clients = worker_app.make_clients(providers, clock, transport)
    router = router_app.pipeline(
        context_for(router_settings),
        settings=router_settings,
        catalog=catalog,
        health=health,
        budgets={},
        clock=clock,
    )
    worker = worker_app.pipeline(
        ctx, settings=worker_settings, clients=clients, providers=providers, clock=clock
    )
    view = health_view(topics.provider_health, health, ctx.codec)
    bus = MemoryBus()

    def responses() -> list[CompletionResponded]:
        return [
            ctx.codec.decode(r.value, CompletionResponded) for r in bus.records(topics.responses)
        ]

    # Burst 1: all routed to openai before any health is known.
    for n in range(10):
        bus.append(topics.cache_missed, ctx.codec.encode(miss(n)), f"r{n}".encode())
    await bus.run_until_idle([router, worker, view])
    assert calls.count("openai") == 1  # the first 429; the rest failed over without calling
    assert health["openai"].state is HealthState.COOLING_DOWN
    assert health["openai"].cooldown_until == clock() + timedelta(seconds=30)

    # Burst 2: the router knows openai is cooling down and skips it.
    for n in range(10, 20):
        bus.append(topics.cache_missed, ctx.codec.encode(miss(n)), f"r{n}".encode())
    await bus.run_until_idle([router, worker, view])
    answered = responses()
    assert len(answered) == 20
    assert all(r.status is ResponseStatus.OK for r in answered)
    assert {r.source.provider for r in answered if r.source} == {"anthropic"}
    assert calls.count("openai") == 1
    assert calls.count("anthropic") == 20
    first = {r.request_id: r for r in answered}["r0"]
    assert [(a.provider, a.outcome) for a in first.attempts] == [
        ("openai", AttemptOutcome.RATE_LIMITED),
        ("anthropic", AttemptOutcome.OK),
    ]
    skipped = {r.request_id: r for r in answered}["r15"]
    assert [a.provider for a in skipped.attempts] == ["anthropic"]

    # After the cooldown the primary answers again.
    clock.advance(31)
    bus.append(topics.cache_missed, ctx.codec.encode(miss(99)), b"r99")
    await bus.run_until_idle([router, worker, view])
    last = {r.request_id: r for r in responses()}["r99"]
    assert last.status is ResponseStatus.OK
    assert last.source
    assert last.source.provider == "openai"
    assert calls.count("openai", outcome="200") == 1

    usage = [ctx.codec.decode(r.value, UsageRecorded) for r in bus.records(topics.usage)]
    fills = [ctx.codec.decode(r.value, CacheFilled) for r in bus.records(topics.cache_fill)]
    assert len(usage) == 21
    assert len(fills) == 21
    assert bus.records(topics.deadletter) == []
    for client in clients.values():
        await client.aclose()


def test_providers_file_resolves_keys_from_the_environment() -> None:
    """The repository's providers file loads; keys come from the variables it names."""
    providers = load_providers(
        REPO / "infra" / "providers.yaml", {"OPENAI_API_KEY": "sk-secret"}, ("openai", "llama")
    )
    assert providers["openai"].api_key is not None
    assert providers["openai"].api_key.get_secret_value() == "sk-secret"
    assert "sk-secret" not in repr(providers["openai"])
    assert providers["llama"].api_key is None
