"""The vector store adapter against the local Milvus server (HNSW, partition key)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest

from semnexus_cache_lookup.app import pipelines
from semnexus_cache_lookup.config import CacheSettings, Settings
from semnexus_cache_lookup.policy import ThresholdDecisions
from semnexus_cache_lookup.vectorstore import MilvusVectorStore
from semnexus_shared.config import TopicSettings
from semnexus_shared.scope import exact_key, prompt_of, scope_of
from semnexus_shared.service import context_for

from ..conftest import require
from .conftest import DIMS, Harness, HashingEmbedder, make_request

pytestmark = pytest.mark.milvus

PARAPHRASE = "My password: how do I reset it?"


@pytest.fixture
async def server_harness() -> AsyncIterator[Harness]:
    """A harness over a private collection on 127.0.0.1:19530, dropped afterwards."""
    port = int(os.environ.get("MILVUS_PORT", "19530"))
    uri = f"http://127.0.0.1:{port}"

    def probe() -> None:
        from pymilvus import MilvusClient  # noqa: PLC0415

        MilvusClient(uri=uri, timeout=5).list_collections()

    require("Milvus", probe)
    collection = f"test_{uuid.uuid4().hex[:12]}"
    settings = Settings(
        topics=TopicSettings(prefix="t."),
        cache=CacheSettings(vector_uri=uri, collection=collection),
    )
    ctx = context_for(settings)
    # Strong: this test reads what it has just written.
    store = MilvusVectorStore(uri, collection, DIMS, consistency="Strong")
    await store.ensure()
    embedder = HashingEmbedder()
    lookup, writer = pipelines(ctx, settings, store, embedder, ThresholdDecisions(0.9))
    from semnexus_shared.stream import MemoryBus  # noqa: PLC0415

    yield Harness(MemoryBus(), lookup, writer, settings, store, embedder, ctx.codec, ctx.topics)
    store._client.drop_collection(collection)
    await store.close()


async def test_server_serves_exact_and_paraphrase_within_tenant(server_harness: Harness) -> None:
    """On the server (HNSW, tenant partition key) hits stay inside their tenant."""
    h = server_harness
    await h.miss_then_fill(make_request(request_id="r1"))
    h.request(make_request(request_id="r2"))
    h.request(make_request(PARAPHRASE, request_id="r3"))
    h.request(make_request(tenant="globex", request_id="g1"))
    await h.run()
    assert sorted(r.request_id for r in h.responses()) == ["r2", "r3"]
    assert await h.store.count_by_tenant() == {"acme": 1}
    described = h.store._client.describe_collection(h.store.collection)
    tenant = next(f for f in described["fields"] if f["name"] == "tenant_id")
    assert tenant.get("is_partition_key") is True
    # The nominee's vector comes from its text copy, not a second pass for the vector field.
    assert "vector_b64" in {f["name"] for f in described["fields"]}
    first = make_request(request_id="r1")
    stored = await h.store.get([exact_key(scope_of(first), prompt_of(first))])
    [entry] = stored.values()
    assert entry.vector is not None
    assert entry.vector.tobytes() == h.embedder.embed([entry.prompt])[0].tobytes()
