"""The lookup with the real embedding model (all-MiniLM-L6-v2, offline)."""

from __future__ import annotations

from pathlib import Path

import pytest

from semnexus_cache_lookup.embedder import SentenceTransformerEmbedder

from .conftest import build_harness, make_request

pytestmark = pytest.mark.model


async def test_paraphrase_hits_and_unrelated_question_misses(tmp_path: Path) -> None:
    """With the real model, a reworded question is served and an unrelated one is not."""
    embedder = SentenceTransformerEmbedder()
    harness = build_harness(tmp_path / "cache.db", embedder=embedder)  # type: ignore[arg-type]
    await harness.store.ensure()
    await harness.miss_then_fill(make_request("How do I reset my password?", request_id="r1"))
    harness.request(make_request("How can I reset my password?", request_id="para"))
    harness.request(make_request("What is the capital of France?", request_id="other"))
    await harness.run()
    [hit] = harness.responses()
    assert hit.request_id == "para"
    assert hit.source is not None
    assert 0.9 <= (hit.source.similarity or 0) < 1.0
    assert "other" in {m.request_id for m in harness.missed()}
    await harness.store.close()
