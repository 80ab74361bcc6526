"""The default verifier: MLP gate, cross-encoder, logistic layer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from semnexus_cache_lookup.embedder import SentenceTransformerEmbedder
from semnexus_cache_lookup.stacking import StackedScorer, StackWeights, fit_logistic, logit
from semnexus_cache_lookup.verifier import (
    DEFAULT_MODEL,
    MODELS_DIR,
    STACK_MODEL,
    load_scorer,
)

from .cases import OBVIOUS_PAIRS


def test_the_default_verifier_is_the_committed_stack() -> None:
    """The service's default model is the stack, and its metadata names both members."""
    assert DEFAULT_MODEL == STACK_MODEL
    scorer = load_scorer()
    assert isinstance(scorer, StackedScorer)
    metadata = json.loads((MODELS_DIR / f"{STACK_MODEL}.json").read_text())
    assert metadata["kind"] == "stack"
    assert set(metadata["operating_points"]) >= {"p80", "p85", "p90", "p95"}
    assert 0.0 < scorer.weights.gate < 1.0


def test_fit_logistic_recovers_a_known_rule() -> None:
    """Newton's method finds the direction that separates the labels."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4000, 2))
    labels = (rng.random(4000) < 1 / (1 + np.exp(-(2.0 * x[:, 0] - 1.0 * x[:, 1] + 0.5)))).astype(
        np.int8
    )
    w = fit_logistic(x, labels)
    np.testing.assert_allclose(w, [2.0, -1.0, 0.5], atol=0.2)


class _CountingCross:
    """A cross-encoder stand-in that records which pairs it was asked about."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def logits(self, a_texts: list[str], b_texts: list[str]) -> np.ndarray:
        self.asked += list(b_texts)
        return np.full(len(a_texts), 3.0)


class _FixedMlp:
    def __init__(self, table: dict[str, float]) -> None:
        self.table = table

    def score_pairs(self, a_texts, a_vectors, b_texts, b_vectors) -> np.ndarray:  # type: ignore[no-untyped-def]
        return np.array([self.table[t] for t in b_texts])


def test_the_gate_spares_the_cross_encoder_and_scores_zero() -> None:
    """Pairs under the MLP gate score 0 and never reach the cross-encoder."""
    cross = _CountingCross()
    weights = StackWeights(cross=1.0, cosine=0.0, mlp=0.0, bias=0.0, gate=0.3)
    scorer = StackedScorer(
        _FixedMlp({"low": 0.1, "high": 0.9}),  # type: ignore[arg-type]
        cross,  # type: ignore[arg-type]
        weights,
        {"name": "t"},
    )
    vectors = np.eye(2, 4, dtype=np.float32)
    got = scorer.score_pairs(["q1", "q2"], vectors, ["low", "high"], vectors)
    assert cross.asked == ["high"]
    assert got[0] == 0.0
    assert got[1] == 1 / (1 + np.exp(-3.0))
    assert scorer.score_pairs([], vectors[:0], [], vectors[:0]).shape == (0,)


def test_the_fast_path_serves_what_the_mlp_is_sure_of_without_the_cross_encoder() -> None:
    """A pair at or above its fast threshold scores 1 at once; the rest are scored in full."""
    cross = _CountingCross()
    weights = StackWeights(cross=1.0, cosine=0.0, mlp=0.0, bias=0.0, gate=0.3)
    scorer = StackedScorer(
        _FixedMlp({"low": 0.1, "mid": 0.6, "sure": 0.9}),  # type: ignore[arg-type]
        cross,  # type: ignore[arg-type]
        weights,
        {"name": "t"},
    )
    vectors = np.eye(4, 4, dtype=np.float32)
    texts = ["low", "mid", "sure", "sure"]
    # The last pair's tenant has no fast path (inf): it is verified like any other.
    got = scorer.score_pairs_fast(["q"] * 4, vectors, texts, vectors, [0.8, 0.8, 0.8, np.inf])
    assert cross.asked == ["mid", "sure"]
    assert got[0] == 0.0
    assert got[2] == 1.0
    assert got[1] == got[3] == 1 / (1 + np.exp(-3.0))
    # Without fast thresholds the stack scores as it always did.
    cross.asked.clear()
    np.testing.assert_array_equal(
        scorer.score_pairs(["q"] * 4, vectors, texts, vectors),
        [0.0, got[1], got[1], got[1]],
    )
    assert cross.asked == ["mid", "sure", "sure"]


def test_logit_is_clipped() -> None:
    """0 and 1 give finite logits."""
    assert np.isfinite(logit(np.array([0.0, 1.0]))).all()


@pytest.mark.model
def test_the_committed_stack_orders_obvious_pairs() -> None:
    """Paraphrases score above near misses, end to end with the real members."""
    scorer = load_scorer()
    embedder = SentenceTransformerEmbedder(threads=2)
    queries = [q for q, _, _ in OBVIOUS_PAIRS]
    cached = [c for _, c, _ in OBVIOUS_PAIRS]
    scores = scorer.score_pairs(queries, embedder.embed(queries), cached, embedder.embed(cached))
    same = [s for s, (_, _, ok) in zip(scores, OBVIOUS_PAIRS, strict=True) if ok]
    different = [s for s, (_, _, ok) in zip(scores, OBVIOUS_PAIRS, strict=True) if not ok]
    assert min(same) > max(different)
