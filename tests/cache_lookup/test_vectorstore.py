"""The Milvus adapter's vector copy (``vector_b64``) on Milvus Lite, and its older collections."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from semnexus_cache_lookup.entry import CacheEntry
from semnexus_cache_lookup.vectorstore import (
    MilvusVectorStore,
    vector_from_text,
    vector_text,
    vector_text_length,
)
from semnexus_shared.events import FinishReason, Usage, utc_now
from semnexus_shared.scope import scope_of

from .conftest import DIMS, make_request

SCOPE = scope_of(make_request())


def _vectors(n: int, seed: int = 3) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, DIMS)).astype(np.float32)
    normalised: np.ndarray = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return normalised


def _entries(vectors: np.ndarray) -> list[CacheEntry]:
    now = utc_now()
    return [
        CacheEntry(
            id=f"key-{i}",
            scope=SCOPE,
            prompt=f"question {i}",
            answer=f"answer {i}",
            finish_reason=FinishReason.STOP,
            usage=Usage(input_tokens=3, output_tokens=5),
            provider="openai",
            model="gpt-4o-mini",
            request_id=f"r{i}",
            created_at=now,
            expires_at=now + timedelta(hours=1),
            vector=vector,
        )
        for i, vector in enumerate(vectors)
    ]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[MilvusVectorStore]:
    """A store on a fresh Milvus Lite file, closed afterwards."""
    opened = MilvusVectorStore(str(tmp_path / "cache.db"), "entries", DIMS)
    yield opened
    await opened.close()


def test_vector_text_round_trips_every_bit() -> None:
    vectors = _vectors(20)
    vectors[0, :4] = [0.0, -0.0, 1e-38, -1.0]
    for vector in vectors:
        text = vector_text(vector)
        assert len(text) == vector_text_length(DIMS)
        back = vector_from_text(text)
        assert back.dtype == np.float32
        assert back.tobytes() == vector.tobytes()


async def _stored_vectors(store: MilvusVectorStore, vectors: np.ndarray) -> None:
    """Write the entries, then check that get and search hand back each stored vector."""
    entries = _entries(vectors)
    await store.upsert(entries)
    found = await store.get([e.id for e in entries])
    for entry in entries:
        got = found[entry.id].vector
        assert got is not None
        assert got.tobytes() == np.asarray(entry.vector).tobytes()
    results = await store.search(SCOPE, vectors[:3], top_k=2, now=utc_now())
    for i, scored in enumerate(results):
        nearest, similarity = scored[0]
        assert nearest.id == f"key-{i}"
        assert similarity == pytest.approx(1.0, abs=1e-5)
        assert nearest.vector is not None
        assert nearest.vector.tobytes() == vectors[i].tobytes()


async def test_a_new_collection_reads_vectors_from_their_text_copy(
    store: MilvusVectorStore,
) -> None:
    await store.ensure()
    fields = {f["name"] for f in store._client.describe_collection("entries")["fields"]}
    assert {"vector", "vector_b64"} <= fields
    assert "vector_b64" in store._outputs
    assert "vector" not in store._outputs
    await _stored_vectors(store, _vectors(8))


async def test_a_collection_from_before_the_text_copy_still_serves_its_vectors(
    store: MilvusVectorStore,
) -> None:
    # As an earlier release created it: no vector_b64 field.
    store._client.create_collection(
        "entries",
        schema=store.schema(with_text=False),
        index_params=store._index(),
        consistency_level="Strong",
    )
    await store.ensure()
    assert "vector" in store._outputs
    assert "vector_b64" not in store._outputs
    await _stored_vectors(store, _vectors(8))
