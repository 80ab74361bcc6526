"""The lookup handler's own checks, against a store that ignores every filter."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from opentelemetry import trace

from semnexus_cache_lookup.coalescing import InFlight
from semnexus_cache_lookup.config import CacheSettings, RequestRules
from semnexus_cache_lookup.entry import CacheEntry
from semnexus_cache_lookup.handlers import LookupHandler
from semnexus_cache_lookup.policy import ThresholdDecisions
from semnexus_cache_lookup.vectorstore import MilvusVectorStore, ScoredEntry
from semnexus_shared.events import CacheScope, CompletionRequested, FinishReason, Usage, utc_now
from semnexus_shared.scope import prompt_of, scope_of
from semnexus_shared.stream import Emit, Inbound, Record

from .conftest import HashingEmbedder, make_request


class LeakyStore:
    """Returns its entries for every search at similarity 1.0, whatever the scope or TTL."""

    def __init__(self, entries: Sequence[CacheEntry]) -> None:
        self.entries = list(entries)

    async def get(self, ids: Sequence[str]) -> dict[str, CacheEntry]:
        return {e.id: e for e in self.entries if e.id in ids}

    async def search(
        self, scope: CacheScope, vectors: np.ndarray, top_k: int, now: datetime
    ) -> list[list[ScoredEntry]]:
        return [[(e, 1.0) for e in self.entries] for _ in vectors]


def _entry(request: CompletionRequested, *, expires_in: timedelta) -> CacheEntry:
    vector = HashingEmbedder().embed([prompt_of(request)])[0]
    now = utc_now()
    return CacheEntry(
        id="entry-1",
        scope=scope_of(request),
        prompt=prompt_of(request),
        answer="cached",
        finish_reason=FinishReason.STOP,
        usage=Usage(input_tokens=1, output_tokens=1),
        provider="openai",
        model="m",
        request_id="old",
        created_at=now - timedelta(hours=1),
        expires_at=now + expires_in,
        vector=vector,
    )


async def _lookup(store: LeakyStore, request: CompletionRequested) -> list[object]:
    handler = LookupHandler(
        store=store,  # type: ignore[arg-type]
        embedder=HashingEmbedder(),
        decisions=ThresholdDecisions(0.9),
        inflight=InFlight(0.0, 0),
        settings=CacheSettings(),
        rules=RequestRules(),
        default_reply_topic="responses",
    )
    inbound = Inbound(request, Record("requests", 0, 0, None, b""), trace.INVALID_SPAN)
    [outcomes] = await handler([inbound])
    return list(outcomes)


def _served(outcomes: list[object]) -> bool:
    return any(isinstance(o, Emit) for o in outcomes)


async def test_other_tenants_entry_at_similarity_one_is_not_served() -> None:
    """Even if the store returned another tenant's identical entry, the handler refuses it."""
    store = LeakyStore([_entry(make_request(tenant="globex"), expires_in=timedelta(hours=1))])
    assert not _served(await _lookup(store, make_request(tenant="acme")))
    assert _served(await _lookup(store, make_request(tenant="globex")))


async def test_other_scope_entry_is_not_served() -> None:
    """An entry of another system prompt is refused by the exact scope check."""
    store = LeakyStore([_entry(make_request(system="Be a pirate."), expires_in=timedelta(hours=1))])
    assert not _served(await _lookup(store, make_request()))


async def test_expired_entry_is_not_served_even_if_returned() -> None:
    """The Python TTL check stands behind the store's filter."""
    store = LeakyStore([_entry(make_request(), expires_in=-timedelta(seconds=1))])
    assert not _served(await _lookup(store, make_request()))


def test_hashing_embedder_is_normalised() -> None:
    """The test double honours the Embedder contract (unit-length rows)."""
    vectors = HashingEmbedder().embed(["a b c", "d"])
    assert vectors.shape == (2, 384)
    assert abs(float((vectors[0] ** 2).sum()) - 1.0) < 1e-5


def test_service_and_cli_open_the_store_the_settings_name(tmp_path: Path) -> None:
    """Every setting that shapes the collection reaches the store (the CLI once missed one)."""
    cache = CacheSettings(
        vector_uri=str(tmp_path / "c.db"), collection="other", partition_key=False
    )
    store = MilvusVectorStore.configured(cache)
    assert (store.uri, store.collection, store.partition_key) == (
        str(tmp_path / "c.db"),
        "other",
        False,
    )
