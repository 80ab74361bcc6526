"""The committed MLP verifier model: it loads, it is small, and it tells obvious pairs apart."""

from __future__ import annotations

import json

import numpy as np
import pytest

from semnexus_cache_lookup.embedder import SentenceTransformerEmbedder
from semnexus_cache_lookup.verifier import MLP_MODEL, MODELS_DIR, Verifier

from .cases import OBVIOUS_PAIRS


def test_committed_model_loads_and_is_small() -> None:
    """The default model is a pickle-free .npz under 5 MB whose metadata matches its weights."""
    weights = MODELS_DIR / f"{MLP_MODEL}.npz"
    assert weights.stat().st_size < 5 * 1024 * 1024
    verifier = Verifier.load()
    metadata = json.loads((MODELS_DIR / f"{MLP_MODEL}.json").read_text())
    assert verifier.weights.w1.shape[0] == metadata["features"]
    assert set(metadata["operating_points"]) >= {"p85", "p90"}


def test_score_is_one_probability_per_candidate() -> None:
    """score() returns a probability in [0, 1] per candidate, empty for none."""
    verifier = Verifier.load()
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    got = verifier.score("How do I learn Python?", vectors[0], ["a?", "b?", "c?"], vectors)
    assert got.shape == (3,)
    assert ((got >= 0) & (got <= 1)).all()
    assert verifier.score("q", vectors[0], [], vectors[:0]).shape == (0,)


@pytest.mark.model
def test_separates_obvious_pairs_with_real_embeddings() -> None:
    """Paraphrases score above questions that differ in a number, a negation or a name."""
    embedder = SentenceTransformerEmbedder(threads=2)
    verifier = Verifier.load()
    cases = OBVIOUS_PAIRS
    queries = embedder.embed([q for q, _, _ in cases])
    cached = embedder.embed([c for _, c, _ in cases])
    scores = verifier.score_pairs(
        [q for q, _, _ in cases], queries, [c for _, c, _ in cases], cached
    )
    same = [s for s, (_, _, ok) in zip(scores, cases, strict=True) if ok]
    different = [s for s, (_, _, ok) in zip(scores, cases, strict=True) if not ok]
    assert min(same) > max(different)
