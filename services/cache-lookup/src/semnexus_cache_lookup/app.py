"""Wiring of the cache-lookup service: two pipelines over one store and one in-flight table.

- ``<service>`` (lookup): ``requests`` → ``CompletionResponded`` hits to the
  reply topic, ``CacheMissed`` to ``cache.missed`` (key request_id),
  ``UsageRecorded`` to ``usage`` (key tenant_id); micro-batched.
- ``<service>-writer``: ``cache.fill`` + ``cache.invalidate`` → the vector store.
- A background task purges expired entries.

On faust both pipelines are agents of one app, hence one consumer group (named
after the service) over disjoint topics.
"""

from __future__ import annotations

from collections.abc import Callable

from semnexus_cache_lookup.coalescing import InFlight
from semnexus_cache_lookup.config import Settings
from semnexus_cache_lookup.embedder import Embedder, EmbeddingQueue
from semnexus_cache_lookup.handlers import LookupHandler, WriterHandler, purge_expired_forever
from semnexus_cache_lookup.policy import Decisions
from semnexus_cache_lookup.vectorstore import VectorStore
from semnexus_shared.events import CacheMissed, CompletionRequested, UsageRecorded
from semnexus_shared.replies import ReplyPolicy
from semnexus_shared.service import ServiceContext, Wiring
from semnexus_shared.stream import Pipeline, Route


def pipelines(
    ctx: ServiceContext,
    settings: Settings,
    store: VectorStore,
    embedder: Embedder,
    decisions: Decisions,
) -> tuple[Pipeline, Pipeline]:
    """The lookup and writer pipelines, sharing one in-flight table (also used by tests)."""
    cache = settings.cache
    inflight = InFlight(cache.coalescing_window_s, cache.coalescing_max_waiters)
    # One queue for both pipelines: the model never runs two calls side by side.
    embedding = EmbeddingQueue(embedder)
    lookup = ctx.pipeline(
        name=settings.service_name,
        sources=[ctx.topics.requests],
        handler=LookupHandler(
            store=store,
            embedder=embedding,
            decisions=decisions,
            inflight=inflight,
            settings=cache,
            rules=settings.requests,
            default_reply_topic=ctx.topics.responses,
        ),
        routes={
            CacheMissed: Route(ctx.topics.cache_missed, key=lambda e: e.request_id.encode()),
            UsageRecorded: Route(ctx.topics.usage, key=lambda e: e.tenant_id.encode()),
        },
        event_type=CompletionRequested,
        on_undecodable=ReplyPolicy(
            ctx.topics.responses, frozenset(settings.requests.reply_topics)
        ).undecodable,
        max_batch=cache.batch_size,
        concurrency=cache.concurrency,
    )
    writer = ctx.pipeline(
        name=f"{settings.service_name}-writer",
        sources=[ctx.topics.cache_fill, ctx.topics.cache_invalidate],
        handler=WriterHandler(store=store, embedder=embedding, inflight=inflight, settings=cache),
        routes={},
        max_batch=cache.writer_batch_size,
    )
    return lookup, writer


def wiring(
    settings: Settings, store: VectorStore, embedder: Embedder, decisions: Decisions
) -> Callable[[ServiceContext], Wiring]:
    """The ``build`` function :func:`~semnexus_shared.service.run_service` calls."""

    def build(ctx: ServiceContext) -> Wiring:
        lookup, writer = pipelines(ctx, settings, store, embedder, decisions)

        async def purge() -> None:
            await purge_expired_forever(store, settings.cache.purge_interval_s)

        return Wiring(pipelines=[lookup, writer], on_start=[purge])

    return build
