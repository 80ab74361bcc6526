"""The lookup and writer pipelines on a MemoryBus over Milvus Lite (no broker needed)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from semnexus_cache_lookup.decision import OperatingPoint, OperatingPoints, TenantDecisions
from semnexus_cache_lookup.handlers import RecentKeys
from semnexus_shared.events import (
    CacheInvalidated,
    CacheMode,
    CachePolicy,
    FinishReason,
    InvalidationTarget,
    ResponseStatus,
    Role,
    SourceKind,
    UsageKind,
    unpack_embedding,
    utc_now,
)
from semnexus_shared.scope import request_key
from tests.conftest import counter_value

from .conftest import Harness, build_harness, hours_ago, make_request

PARAPHRASE = "My password: how do I reset it?"


async def test_miss_carries_scope_and_embedding_then_exact_repeat_hits(harness: Harness) -> None:
    """A miss goes to cache.missed with scope and embedding; once filled, a repeat is a hit."""
    first = make_request(request_id="r1")
    missed = await harness.miss_then_fill(first)
    assert missed.request == first
    assert missed.embedding is not None
    assert len(unpack_embedding(missed.embedding)) == 384
    assert missed.scope.tenant_id == "acme"

    harness.request(make_request(request_id="r2"))
    await harness.run()
    [hit] = harness.responses()
    assert hit.request_id == "r2"
    assert hit.status is ResponseStatus.OK
    assert hit.text.startswith("Open Settings")
    assert hit.source is not None
    assert hit.source.kind is SourceKind.CACHE
    assert hit.source.similarity == 1.0
    assert hit.source.cache_entry_age_ms is not None
    assert {s.stage for s in hit.latency} >= {"exact"}
    [usage] = harness.usage()
    assert usage.kind is UsageKind.CACHE_HIT
    assert (usage.input_tokens, usage.output_tokens) == (120, 40)
    assert (usage.provider, usage.model) == ("openai", "gpt-4o-mini-2024-07-18")
    assert len(harness.missed()) == 1


async def test_paraphrase_hits_semantically_with_stage_latencies(harness: Harness) -> None:
    """A reworded prompt in the same scope is served from the nearest entry."""
    await harness.miss_then_fill(make_request(request_id="r1"))
    harness.request(make_request(PARAPHRASE, request_id="r2"))
    await harness.run()
    [hit] = harness.responses()
    assert hit.source is not None
    assert 0.9 <= (hit.source.similarity or 0) < 1.0
    assert {s.stage for s in hit.latency} >= {"exact", "embed", "search", "decide"}


async def test_identical_prompt_of_another_tenant_never_hits(harness: Harness) -> None:
    """Tenant isolation: the same prompt and scope from another tenant misses."""
    await harness.miss_then_fill(make_request(request_id="r1"))
    other = make_request(tenant="globex", request_id="r2")
    harness.request(other)
    await harness.run()
    assert harness.responses() == []
    assert [m.request_id for m in harness.missed()] == ["r1", "r2"]


async def test_any_scope_change_misses(harness: Harness) -> None:
    """Model alias, system prompt, earlier turn, tools or a hot temperature each miss."""
    await harness.miss_then_fill(make_request(request_id="r0"))
    variants = [
        make_request(alias="smart", request_id="alias"),
        make_request(system="You are a pirate.", request_id="system"),
        make_request(history=[(Role.USER, "hi"), (Role.ASSISTANT, "hey")], request_id="turn"),
        make_request(tools='[{"name": "lookup"}]', request_id="tools"),
        make_request(temperature=0.9, request_id="hot"),
        make_request(temperature=None, request_id="omitted"),
    ]
    for variant in variants:
        harness.request(variant)
    await harness.run()
    assert harness.responses() == []
    missed = {m.request_id: m for m in harness.missed()}
    assert set(missed) == {"r0", *(v.request_id for v in variants)}
    for rid in ("hot", "omitted"):
        # Too hot to cache: downstream is told not to store it, and nothing was embedded.
        assert missed[rid].request.cache.mode is CacheMode.BYPASS
        assert missed[rid].embedding is None


async def test_expired_entries_are_never_served(harness: Harness) -> None:
    """An entry past its TTL misses, on the exact and the semantic path."""
    created = utc_now() - timedelta(seconds=3599.4)
    await harness.miss_then_fill(
        make_request(request_id="r1"), created_at=created, ttl_seconds=3600
    )
    await asyncio.sleep(0.8)
    harness.request(make_request(request_id="r2"))
    harness.request(make_request(PARAPHRASE, request_id="r3"))
    await harness.run()
    assert harness.responses() == []


async def test_request_ttl_is_a_maximum_age(harness: Harness) -> None:
    """A request's ttl_seconds refuses entries older than that."""
    await harness.miss_then_fill(make_request(request_id="r1"), created_at=hours_ago(1))
    harness.request(make_request(request_id="r2", policy=CachePolicy(ttl_seconds=60)))
    await harness.run()
    assert harness.responses() == []
    harness.request(make_request(request_id="r3", policy=CachePolicy(ttl_seconds=7200)))
    await harness.run()
    assert [r.request_id for r in harness.responses()] == ["r3"]


async def test_invalidation_by_tenant_scope_and_entry(harness: Harness) -> None:
    """Each invalidation drops its target only; other tenants' entries stay."""
    acme = await harness.miss_then_fill(make_request(request_id="a1"))
    await harness.miss_then_fill(make_request("What is the refund policy?", request_id="a2"))
    await harness.miss_then_fill(
        make_request("Colour of the sky?", request_id="a3", system="Be brief.")
    )
    await harness.miss_then_fill(make_request(tenant="globex", request_id="g1"))

    harness.invalidate(
        CacheInvalidated(
            tenant_id="acme",
            target=InvalidationTarget.ENTRY,
            entry_id=request_key(make_request()).decode(),
        )
    )
    # Another tenant cannot drop acme's entry by naming its id.
    harness.invalidate(
        CacheInvalidated(
            tenant_id="globex",
            target=InvalidationTarget.ENTRY,
            entry_id=request_key(make_request("What is the refund policy?")).decode(),
        )
    )
    await harness.run()
    counts = await harness.store.count_by_tenant()
    assert counts == {"acme": 2, "globex": 1}

    harness.invalidate(
        CacheInvalidated(tenant_id="acme", target=InvalidationTarget.SCOPE, scope=acme.scope)
    )
    await harness.run()
    assert await harness.store.count_by_tenant() == {"acme": 1, "globex": 1}

    harness.invalidate(CacheInvalidated(tenant_id="acme", target=InvalidationTarget.TENANT))
    await harness.run()
    assert await harness.store.count_by_tenant() == {"globex": 1}
    harness.request(make_request("Colour of the sky?", request_id="a4", system="Be brief."))
    harness.request(make_request(tenant="globex", request_id="g2"))
    await harness.run()
    assert [r.request_id for r in harness.responses()] == ["g2"]


async def test_replayed_invalidation_spares_newer_entries(harness: Harness) -> None:
    """An old invalidation read again (compacted topic) does not drop later answers."""
    old = CacheInvalidated(
        tenant_id="acme", target=InvalidationTarget.TENANT, created_at=hours_ago(1)
    )
    await harness.miss_then_fill(make_request(request_id="r1"))
    harness.invalidate(old)
    await harness.run()
    assert await harness.store.count_by_tenant() == {"acme": 1}


async def test_refresh_skips_lookup_and_replaces_the_answer(harness: Harness) -> None:
    """refresh misses despite an entry, and its fill replaces the stored answer."""
    await harness.miss_then_fill(make_request(request_id="r1"), answer="old answer")
    refresh = make_request(request_id="r2", policy=CachePolicy(mode=CacheMode.REFRESH))
    missed = await harness.miss_then_fill(refresh, answer="new answer")
    assert missed.embedding is not None
    harness.request(make_request(request_id="r3"))
    await harness.run()
    assert [r.text for r in harness.responses()] == ["new answer"]


async def test_bypass_skips_lookup_and_embedding(harness: Harness) -> None:
    """bypass misses even with an entry present, without computing an embedding."""
    await harness.miss_then_fill(make_request(request_id="r1"))
    calls = len(harness.embedder.calls)
    harness.request(make_request(request_id="r2", policy=CachePolicy(mode=CacheMode.BYPASS)))
    await harness.run()
    assert harness.responses() == []
    [missed] = [m for m in harness.missed() if m.request_id == "r2"]
    assert missed.request.cache.mode is CacheMode.BYPASS
    assert missed.embedding is None
    assert len(harness.embedder.calls) == calls


async def test_only_exact_serves_identical_prompts_only(harness: Harness) -> None:
    """only_exact hits the exact key and misses a paraphrase, without embedding."""
    await harness.miss_then_fill(make_request(request_id="r1"))
    calls = len(harness.embedder.calls)
    policy = CachePolicy(mode=CacheMode.ONLY_EXACT)
    harness.request(make_request(PARAPHRASE, request_id="r2", policy=policy))
    harness.request(make_request(request_id="r3", policy=policy))
    await harness.run()
    assert [r.request_id for r in harness.responses()] == ["r3"]
    assert "r2" in {m.request_id for m in harness.missed()}
    assert len(harness.embedder.calls) == calls


async def test_min_similarity_raises_the_bar(harness: Harness) -> None:
    """A paraphrase that would hit misses when the request asks for 0.99."""
    await harness.miss_then_fill(make_request(request_id="r1"))
    harness.request(
        make_request(PARAPHRASE, request_id="r2", policy=CachePolicy(min_similarity=0.99))
    )
    await harness.run()
    assert harness.responses() == []


async def test_truncated_answers_are_not_stored(harness: Harness) -> None:
    """A fill that stopped on length is not cached by default."""
    await harness.miss_then_fill(make_request(request_id="r1"), finish_reason=FinishReason.LENGTH)
    assert await harness.store.count_by_tenant() == {}


async def test_batch_embeds_once(harness: Harness) -> None:
    """Ten distinct misses in one batch cost one embedding call."""
    for i in range(10):
        harness.request(make_request(f"question number {i} about invoices", request_id=f"r{i}"))
    await harness.run()
    assert harness.embedder.calls == [10]
    assert len(harness.missed()) == 10


async def test_invalid_request_is_dead_lettered_and_answered(harness: Harness) -> None:
    """An invalid request reaches the dead-letter topic and its app gets invalid_request."""
    harness.request(make_request(alias="gpt-9", request_id="bad"))
    await harness.run()
    [letter] = harness.dead()
    assert letter.request_id == "bad"
    assert "unknown model alias" in letter.reason
    [answer] = harness.responses()
    assert answer.status is ResponseStatus.INVALID_REQUEST
    assert answer.error_message is not None
    assert "unknown model alias" in answer.error_message
    assert harness.missed() == []


async def test_undecodable_bytes_are_dead_lettered(harness: Harness) -> None:
    """Garbage on the requests topic is dead-lettered and the partition moves on."""
    harness.bus.append(harness.topics.requests, b"not avro", b"k")
    harness.request(make_request(request_id="ok"))
    await harness.run()
    assert len(harness.dead()) == 1
    assert [m.request_id for m in harness.missed()] == ["ok"]


async def test_passed_deadline_is_answered_with_a_timeout(harness: Harness) -> None:
    """A request whose deadline passed is answered deadline_exceeded, not sent on."""
    harness.request(make_request(request_id="late", deadline=hours_ago(1)))
    await harness.run()
    [answer] = harness.responses()
    assert answer.status is ResponseStatus.DEADLINE_EXCEEDED
    assert harness.missed() == []


async def test_entries_survive_a_restart(tmp_path: Path) -> None:
    """Entries written before a restart are served after it (Milvus Lite file reopened)."""
    path = tmp_path / "cache.db"
    first = build_harness(path)
    await first.store.ensure()
    await first.miss_then_fill(make_request(request_id="r1"))
    await first.store.close()

    second = build_harness(path)
    await second.store.ensure()
    second.request(make_request(request_id="r2"))
    second.request(make_request(PARAPHRASE, request_id="r3"))
    await second.run()
    assert sorted(r.request_id for r in second.responses()) == ["r2", "r3"]
    await second.store.close()


async def test_fill_for_helper_matches_the_key(harness: Harness) -> None:
    """The stored entry's id is the request key the client uses (one definition)."""
    request = make_request(request_id="r1")
    await harness.miss_then_fill(request)
    found = await harness.store.get([request_key(request).decode()])
    assert list(found) == [request_key(request).decode()]


async def test_hits_and_misses_are_counted_per_tenant_for_the_hit_rate(harness: Harness) -> None:
    """Each lookup adds one to semnexus_cache_lookups with result hit or miss."""
    tenant = make_request().tenant_id
    hits = counter_value("semnexus_cache_lookups", result="hit", tenant_id=tenant)
    misses = counter_value("semnexus_cache_lookups", result="miss", tenant_id=tenant)
    await harness.miss_then_fill(make_request(request_id="m1"))
    harness.request(make_request(request_id="m2"))
    await harness.run()
    assert counter_value("semnexus_cache_lookups", result="miss", tenant_id=tenant) == misses + 1
    assert counter_value("semnexus_cache_lookups", result="hit", tenant_id=tenant) == hits + 1


async def test_light_load_embeds_ahead_but_an_exact_hit_reports_no_embedding(
    harness: Harness,
) -> None:
    """A small batch starts its model call before the exact lookup; the hit shows only exact."""
    await harness.miss_then_fill(make_request(request_id="r1"))
    calls = len(harness.embedder.calls)
    harness.request(make_request(request_id="r2"))
    await harness.run()
    [hit] = harness.responses()
    assert hit.source is not None
    assert hit.source.similarity == 1.0
    assert "exact" in {s.stage for s in hit.latency}
    assert "embed" not in {s.stage for s in hit.latency}
    # Speculation: the exact repeat was embedded while it was looked up, in one call.
    assert harness.embedder.calls[calls:] == [1]


@pytest.mark.parametrize(("remembered", "embeds"), [(4096, []), (0, [1])], ids=["default", "off"])
async def test_a_recent_exact_hit_is_not_embedded_ahead_again(
    tmp_path: Path, remembered: int, embeds: list[int]
) -> None:
    """Once a prompt hit the exact path, its next lone repeat skips the speculative call."""
    h = build_harness(tmp_path / "cache.db", recent_exact_hits=remembered)
    await h.store.ensure()
    try:
        await h.miss_then_fill(make_request(request_id="r1"))
        h.request(make_request(request_id="r2"))
        await h.run()
        calls = len(h.embedder.calls)
        h.request(make_request(request_id="r3"))
        await h.run()
        [*_, hit] = h.responses()
        assert hit.source is not None
        assert hit.source.similarity == 1.0
        assert h.embedder.calls[calls:] == embeds
        # A paraphrase of it is still embedded ahead, and served from that one call.
        calls = len(h.embedder.calls)
        h.request(make_request(PARAPHRASE, request_id="r4"))
        await h.run()
        assert h.embedder.calls[calls:] == [1]
    finally:
        await h.store.close()


def test_recent_keys_forget_the_oldest_and_what_missed() -> None:
    """A bounded memory: the oldest key goes first, a key added again is the newest."""
    keys = RecentKeys(2)
    for key in ("a", "b", "a", "c"):
        keys.add(key)
    assert "a" in keys
    assert "c" in keys
    assert "b" not in keys
    keys.discard("a")
    keys.discard("never")
    assert len(keys) == 1
    off = RecentKeys(0)
    off.add("a")
    assert "a" not in off


async def test_a_paraphrase_uses_the_vector_embedded_ahead(harness: Harness) -> None:
    """The semantic path reuses the speculative call instead of embedding again."""
    await harness.miss_then_fill(make_request(request_id="r1"))
    calls = len(harness.embedder.calls)
    harness.request(make_request(PARAPHRASE, request_id="r2"))
    await harness.run()
    [hit] = harness.responses()
    assert hit.source is not None
    assert 0.9 <= (hit.source.similarity or 0) < 1.0
    assert harness.embedder.calls[calls:] == [1]


@pytest.mark.parametrize(
    ("limit", "repeats"),
    [(2, 5), (0, 1)],
    ids=["batch-over-the-limit", "speculation-off"],
)
async def test_exact_hits_cost_no_model_time_without_speculation(
    tmp_path: Path, limit: int, repeats: int
) -> None:
    """A batch over speculative_embed_max_batch (load), or the limit 0, never embeds exact hits."""
    h = build_harness(tmp_path / "cache.db", speculative_embed_max_batch=limit)
    await h.store.ensure()
    try:
        await h.miss_then_fill(make_request(request_id="r1"))
        calls = len(h.embedder.calls)
        for i in range(repeats):
            h.request(make_request(request_id=f"again-{i}"))
        await h.run()
        assert len(h.responses()) == repeats
        assert h.embedder.calls[calls:] == []
    finally:
        await h.store.close()


class _ByQuery:
    """A pair scorer with a fixed probability per query text; records its batch sizes."""

    def __init__(self, table: dict[str, float]) -> None:
        self.table = table
        self.calls: list[int] = []

    def score_pairs(
        self, a_texts: Sequence[str], a_vectors: Any, b_texts: Sequence[str], b_vectors: Any
    ) -> npt.NDArray[np.float64]:
        self.calls.append(len(a_texts))
        return np.array([self.table.get(t, 0.0) for t in a_texts], dtype=np.float64)


async def test_the_verifier_scores_a_whole_batch_in_one_call(tmp_path: Path) -> None:
    """Semantic nominees of one micro-batch share one verifier call; its verdict decides."""
    good, bad = "How do I reset my password?", "How do I change my email address?"
    para_good, para_bad = "My password: how do I reset it?", "My email address: how do I change it?"
    scorer = _ByQuery({para_good: 0.95, para_bad: 0.2})
    points = OperatingPoints(default=OperatingPoint(threshold=0.8, target_precision=0.9))
    decisions = TenantDecisions(scorer, points)
    h = build_harness(tmp_path / "cache.db", decisions=decisions, speculative_embed_max_batch=0)
    await h.store.ensure()
    try:
        await h.miss_then_fill(make_request(good, request_id="seed-1"))
        await h.miss_then_fill(make_request(bad, request_id="seed-2"))
        before = len(scorer.calls)
        h.request(make_request(para_good, request_id="para-1"))
        h.request(make_request(para_bad, request_id="para-2"))
        await h.run()
        assert scorer.calls[before:] == [2]
        served = {r.request_id: r for r in h.responses()}
        assert served["para-1"].source is not None
        assert {s.stage for s in served["para-1"].latency} >= {"embed", "search", "verify"}
        assert "para-2" not in served
        assert {m.request_id for m in h.missed()} >= {"para-2"}
    finally:
        await h.store.close()
