"""Wiring of the router: cache misses in, provider calls and refusals out.

Contract: :func:`build` returns one pipeline consuming ``cache.missed``
(key request_id) and routing ``ProviderCallRequested`` to
``provider.<provider>`` (key request_id); refusals carry their own
destination (``ReplyPolicy``). Two views follow the compacted
``provider.health`` and ``budget`` topics for every router instance; they
start with the worker (``on_start``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from semnexus_router.config import Catalog, RouterSettings
from semnexus_router.handlers import Clock, Router
from semnexus_shared.events import (
    BudgetChanged,
    CacheMissed,
    ProviderCallRequested,
    ProviderHealthChanged,
)
from semnexus_shared.replies import ReplyPolicy
from semnexus_shared.service import ServiceContext, Wiring
from semnexus_shared.stream import Pipeline, Route, for_each
from semnexus_shared.views import CompactedView

__all__ = ["build", "pipeline"]


def pipeline(
    ctx: ServiceContext,
    *,
    settings: RouterSettings,
    catalog: Catalog,
    health: Mapping[str, ProviderHealthChanged],
    budgets: Mapping[str, BudgetChanged],
    clock: Clock,
) -> Pipeline:
    """The router's pipeline over ``cache.missed``."""
    topics = ctx.topics
    router = Router(
        catalog=catalog,
        health=health,
        budgets=budgets,
        replies=ReplyPolicy(topics.responses, frozenset(settings.reply_topics_allowed)),
        clock=clock,
        default_deadline=timedelta(seconds=settings.default_deadline_s),
        prefer_cheaper=settings.prefer_cheaper_on_warning,
        unavailable_retry_ms=settings.unavailable_retry_ms,
    )
    return ctx.pipeline(
        sources=[topics.cache_missed],
        handler=for_each(router.route_inbound),
        routes={
            ProviderCallRequested: Route(
                lambda e: topics.provider(e.provider), key=lambda e: e.request_id.encode()
            ),
        },
        event_type=CacheMissed,
        max_batch=64,
        concurrency=settings.concurrency,
    )


def build(ctx: ServiceContext, settings: RouterSettings, catalog: Catalog, clock: Clock) -> Wiring:
    """The router's wiring for ``run_service``."""
    kafka = settings.kafka
    health = CompactedView(
        kafka,
        ctx.topics.provider_health,
        ctx.codec,
        ProviderHealthChanged,
        key=lambda e: e.provider,
    )
    budgets = CompactedView(
        kafka, ctx.topics.budget, ctx.codec, BudgetChanged, key=lambda e: e.tenant_id
    )
    return Wiring(
        pipelines=[
            pipeline(
                ctx,
                settings=settings,
                catalog=catalog,
                health=health.current,
                budgets=budgets.current,
                clock=clock,
            )
        ],
        on_start=[health.start, budgets.start],
    )
