"""Fixtures for cache-lookup tests: a deterministic embedder, Milvus Lite, a MemoryBus harness."""

from __future__ import annotations

import re
import zlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from semnexus_cache_lookup.app import pipelines
from semnexus_cache_lookup.config import CacheSettings, Settings
from semnexus_cache_lookup.embedder import Vectors
from semnexus_cache_lookup.policy import Decisions, ThresholdDecisions
from semnexus_cache_lookup.vectorstore import MilvusVectorStore
from semnexus_shared.config import TopicSettings
from semnexus_shared.events import (
    CacheFilled,
    CacheInvalidated,
    CacheMissed,
    CachePolicy,
    CompletionRequested,
    CompletionResponded,
    DeadLettered,
    Event,
    FinishReason,
    Message,
    Role,
    Sampling,
    Usage,
    UsageRecorded,
    utc_now,
)
from semnexus_shared.scope import request_key
from semnexus_shared.service import context_for
from semnexus_shared.stream import MemoryBus, Pipeline

DIMS = 384
_WORD = re.compile(r"[a-z0-9]+")


class HashingEmbedder:
    """Bag of words hashed into 384 buckets, L2-normalised: same words, same vector."""

    dimensions = DIMS

    def __init__(self) -> None:
        self.calls: list[int] = []

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One row per text; records the batch size of every call."""
        self.calls.append(len(texts))
        out = np.zeros((len(texts), DIMS), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                out[row, zlib.crc32(word.encode()) % DIMS] += 1.0
            norm = float(np.linalg.norm(out[row]))
            if norm:
                out[row] /= norm
        return out


def make_request(
    prompt: str = "How do I reset my password?",
    *,
    tenant: str = "acme",
    request_id: str | None = None,
    alias: str = "chat",
    system: str | None = "You are a helpful assistant.",
    history: Sequence[tuple[Role, str]] = (),
    temperature: float | None = 0.0,
    policy: CachePolicy | None = None,
    tools: str | None = None,
    **extra: Any,
) -> CompletionRequested:
    """A valid request; keyword arguments change one thing at a time."""
    messages = [Message(role=Role.SYSTEM, content=system)] if system is not None else []
    messages += [Message(role=r, content=c) for r, c in history]
    messages.append(Message(role=Role.USER, content=prompt))
    return CompletionRequested(
        request_id=request_id or f"req-{zlib.crc32(prompt.encode() + tenant.encode())}",
        tenant_id=tenant,
        messages=tuple(messages),
        model_alias=alias,
        sampling=Sampling(temperature=temperature),
        cache=policy or CachePolicy(),
        tools=tools,
        **extra,
    )


def fill_for(
    missed: CacheMissed,
    answer: str = "Open Settings, then Security, then Reset password.",
    *,
    created_at: datetime | None = None,
    ttl_seconds: int | None = None,
    finish_reason: FinishReason = FinishReason.STOP,
) -> CacheFilled:
    """The fill a provider-worker publishes after answering a miss."""
    request = missed.request
    prompt = [m.content for m in request.messages if m.role is Role.USER][-1]
    return CacheFilled(
        request_id=missed.request_id,
        tenant_id=missed.tenant_id,
        scope=missed.scope,
        prompt=prompt,
        embedding=missed.embedding,
        answer=answer,
        finish_reason=finish_reason,
        usage=Usage(input_tokens=120, output_tokens=40),
        provider="openai",
        model="gpt-4o-mini-2024-07-18",
        ttl_seconds=ttl_seconds,
        created_at=created_at or utc_now(),
    )


@dataclass
class Harness:
    """The service's two pipelines on a MemoryBus, over one Milvus Lite file."""

    bus: MemoryBus
    lookup: Pipeline
    writer: Pipeline
    settings: Settings
    store: MilvusVectorStore
    embedder: HashingEmbedder
    codec: Any
    topics: Any
    sent: list[Event] = field(default_factory=list)

    def request(self, request: CompletionRequested, key: bytes | None = None) -> None:
        """Publish a request as the client SDK does (keyed by the request key)."""
        self.bus.append(
            self.topics.requests,
            self.codec.encode(request),
            key if key is not None else request_key(request),
        )

    def fill(self, fill: CacheFilled) -> None:
        """Publish a fill as the provider-worker does."""
        self.bus.append(self.topics.cache_fill, self.codec.encode(fill), fill.tenant_id.encode())

    def invalidate(self, event: CacheInvalidated) -> None:
        """Publish an invalidation."""
        self.bus.append(
            self.topics.cache_invalidate, self.codec.encode(event), event.tenant_id.encode()
        )

    async def run(self) -> None:
        """Drain both pipelines until nothing is pending."""
        await self.bus.run_until_idle([self.writer, self.lookup])

    def events(self, topic: str, kind: type[Any]) -> list[Any]:
        """Decoded events of one topic."""
        return [self.codec.decode(r.value, kind) for r in self.bus.records(topic)]

    def missed(self) -> list[CacheMissed]:
        """Every CacheMissed so far."""
        return self.events(self.topics.cache_missed, CacheMissed)

    def responses(self, topic: str | None = None) -> list[CompletionResponded]:
        """Every CompletionResponded on a reply topic (default: responses)."""
        return self.events(topic or self.topics.responses, CompletionResponded)

    def usage(self) -> list[UsageRecorded]:
        """Every UsageRecorded so far."""
        return self.events(self.topics.usage, UsageRecorded)

    def dead(self) -> list[DeadLettered]:
        """Every dead letter so far."""
        return self.events(self.topics.deadletter, DeadLettered)

    async def miss_then_fill(self, request: CompletionRequested, **fill: Any) -> CacheMissed:
        """Send a request that misses and store the provider's answer for it."""
        self.request(request)
        await self.run()
        missed = [m for m in self.missed() if m.request_id == request.request_id]
        assert len(missed) == 1, f"{request.request_id} did not miss exactly once"
        self.fill(fill_for(missed[0], **fill))
        await self.run()
        return missed[0]


def build_harness(
    path: Path,
    embedder: HashingEmbedder | None = None,
    decisions: Decisions | None = None,
    **cache: Any,
) -> Harness:
    """A harness over the Milvus Lite file at ``path``."""
    settings = Settings(
        topics=TopicSettings(prefix="t."),
        cache=CacheSettings(vector_uri=str(path), **cache),
    )
    ctx = context_for(settings)
    store = MilvusVectorStore(str(path), settings.cache.collection, DIMS)
    embedder = embedder or HashingEmbedder()
    lookup, writer = pipelines(
        ctx,
        settings,
        store,
        embedder,
        decisions or ThresholdDecisions(settings.cache.min_similarity),
    )
    return Harness(MemoryBus(), lookup, writer, settings, store, embedder, ctx.codec, ctx.topics)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    """A fresh service (Milvus Lite in tmp_path, coalescing window 0.5 s)."""
    h = build_harness(tmp_path / "cache.db", coalescing_window_s=0.5)
    await h.store.ensure()
    yield h
    await h.store.close()


def hours_ago(hours: float) -> datetime:
    """A UTC time in the past."""
    return utc_now() - timedelta(hours=hours)
