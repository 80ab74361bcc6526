"""Wiring of the provider-worker: provider topics in, answers, failovers and health out.

Contract: :func:`build` returns one pipeline consuming ``provider.<name>`` for
every provider in ``clients`` (max_batch 1, ``concurrency`` calls in flight),
routing ``ProviderCallRequested`` to the next provider's topic,
``ProviderHealthChanged`` to ``provider.health`` (key provider),
``UsageRecorded`` to ``usage`` (key tenant), ``CacheFilled`` to ``cache.fill``
(key scope); responses carry their own destination (``ReplyPolicy``).
:func:`make_clients` builds one pooled HTTP adapter per provider.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from semnexus_provider_worker.anthropic import AnthropicWire
from semnexus_provider_worker.calls import ProviderClient
from semnexus_provider_worker.config import Provider, ProviderKind, WorkerSettings
from semnexus_provider_worker.handlers import Dispatcher
from semnexus_provider_worker.health import Clock, HealthTracker
from semnexus_provider_worker.openai import OpenAIWire
from semnexus_provider_worker.transport import HttpProvider, Wire
from semnexus_shared.events import (
    CacheFilled,
    ProviderCallRequested,
    ProviderHealthChanged,
    UsageRecorded,
)
from semnexus_shared.replies import ReplyPolicy
from semnexus_shared.scope import scope_key
from semnexus_shared.service import ServiceContext, Wiring
from semnexus_shared.stream import Pipeline, Route, for_each
from semnexus_shared.topics import TopicNames

__all__ = ["build", "make_clients", "pipeline"]


def make_clients(
    providers: Mapping[str, Provider],
    clock: Clock,
    transport: httpx.AsyncBaseTransport | None = None,
) -> dict[str, HttpProvider]:
    """One pooled HTTP adapter per provider, by its wire kind."""
    clients: dict[str, HttpProvider] = {}
    for name, provider in providers.items():
        wire: Wire = (
            AnthropicWire() if provider.settings.kind is ProviderKind.ANTHROPIC else OpenAIWire()
        )
        clients[name] = HttpProvider(provider, wire, clock, transport=transport)
    return clients


def pipeline(
    ctx: ServiceContext,
    *,
    settings: WorkerSettings,
    clients: Mapping[str, ProviderClient],
    providers: Mapping[str, Provider],
    clock: Clock,
) -> Pipeline:
    """The worker's one pipeline over its providers' topics."""
    topics: TopicNames = ctx.topics
    floors = {name: p.settings.rate_limit_floor for name, p in providers.items()}
    dispatcher = Dispatcher(
        clients=clients,
        health=HealthTracker(settings.health, clock, floors),
        replies=ReplyPolicy(topics.responses, frozenset(settings.reply_topics_allowed)),
        clock=clock,
        max_attempts=settings.max_attempts,
        exhausted_retry_ms=settings.exhausted_retry_ms,
    )
    return ctx.pipeline(
        sources=[topics.provider(name) for name in clients],
        handler=for_each(dispatcher.dispatch),
        routes={
            ProviderCallRequested: Route(
                lambda e: topics.provider(e.provider), key=lambda e: e.request_id.encode()
            ),
            ProviderHealthChanged: Route(topics.provider_health, key=lambda e: e.provider.encode()),
            UsageRecorded: Route(topics.usage, key=lambda e: e.tenant_id.encode()),
            CacheFilled: Route(topics.cache_fill, key=lambda e: scope_key(e.scope)),
        },
        event_type=ProviderCallRequested,
        max_batch=1,
        concurrency=settings.concurrency,
    )


def build(
    ctx: ServiceContext,
    settings: WorkerSettings,
    providers: Mapping[str, Provider],
    clock: Clock,
) -> Wiring:
    """The worker's wiring for ``run_service``."""
    clients = make_clients(providers, clock)
    return Wiring(
        pipelines=[
            pipeline(ctx, settings=settings, clients=clients, providers=providers, clock=clock)
        ]
    )
