"""The cross-encoder verifier: the committed int8 graph, its batching, and its training path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from semnexus_cache_lookup.crossencoder import CrossEncoder
from semnexus_cache_lookup.evaluation import LabelledPair
from semnexus_cache_lookup.verifier import CROSS_ENCODER_MODEL, MODELS_DIR, load_scorer

from .cases import OBVIOUS_PAIRS

_CASES = [
    *OBVIOUS_PAIRS,
    ("What are ancient folk tales?", "What are the ten most ancient folk tales?", False),
]


@pytest.fixture(scope="module")
def model() -> CrossEncoder:
    """The committed default cross-encoder, loaded the way the service loads it."""
    scorer = load_scorer(CROSS_ENCODER_MODEL)
    assert isinstance(scorer, CrossEncoder)
    return scorer


def test_committed_graph_is_small_and_described(model: CrossEncoder) -> None:
    """An int8 ONNX file under 40 MB, with its recipe and calibrated operating points."""
    assert (MODELS_DIR / f"{CROSS_ENCODER_MODEL}.onnx").stat().st_size < 40 * 1024 * 1024
    metadata = json.loads((MODELS_DIR / f"{CROSS_ENCODER_MODEL}.json").read_text())
    assert metadata["kind"] == "cross-encoder"
    assert set(metadata["operating_points"]) >= {"p85", "p90", "p95"}
    assert model.name == CROSS_ENCODER_MODEL


def test_separates_paraphrases_from_near_misses(model: CrossEncoder) -> None:
    """Paraphrases score above pairs that differ in a number, a negation, a name or a word."""
    scores = model.pair_probabilities([(q, c) for q, c, _ in _CASES])
    same = [s for s, (_, _, ok) in zip(scores, _CASES, strict=True) if ok]
    different = [s for s, (_, _, ok) in zip(scores, _CASES, strict=True) if not ok]
    assert min(same) > max(different)
    assert ((scores >= 0) & (scores <= 1)).all()


def test_a_batch_scores_like_one_pair_at_a_time(model: CrossEncoder) -> None:
    """A pair's score does not depend on the pairs scored with it (dynamic int8 would)."""
    pairs = [(q, c) for q, c, _ in _CASES] + [("Hi?", "Hello, how do you do today, my friend?")]
    together = model.pair_probabilities(pairs)
    alone = np.array([model.pair_probabilities([p])[0] for p in pairs])
    np.testing.assert_array_equal(together, alone)
    assert model.pair_probabilities([]).shape == (0,)


def test_a_pair_runs_at_its_own_length(model: CrossEncoder) -> None:
    """Not at the fixed 128 tokens the packaged tokenizer.json pads to.

    Padding is masked out of the pooling, so scores would barely move, but one short
    pair took 17-19 ms at 128 tokens against 2.8 ms at its own 28 (BENCHMARKS.md).
    """
    (encoding,) = model._tokenizer.encode_batch([("How do I learn guitar?", "Guitar for adults?")])
    assert len(encoding.ids) < 20
    (long_pair,) = model._tokenizer.encode_batch([("word " * 200, "other " * 200)])
    assert len(long_pair.ids) == model.metadata["max_tokens"]


def test_score_pairs_matches_the_verifier_signature(model: CrossEncoder) -> None:
    """The vectors are accepted and unused; one probability per pair."""
    vectors = np.zeros((2, 384), dtype=np.float32)
    got = model.score_pairs(["a?", "b?"], vectors, ["c?", "d?"], vectors)
    assert got.shape == (2,)


@pytest.mark.model
def test_training_writes_a_model_that_loads(tmp_path: Path) -> None:
    """The training path end to end on a few pairs: fine-tune, export, quantise, calibrate."""
    from semnexus_cache_lookup.training import (  # noqa: PLC0415  (torch)
        CrossEncoderRecipe,
        train_cross_encoder,
    )

    pairs = [
        LabelledPair(f"What is topic number {i}?", f"Tell me about topic number {i}.", 1)
        for i in range(40)
    ] + [
        LabelledPair(f"What is topic number {i}?", f"Who won match number {i}?", 0)
        for i in range(40, 80)
    ]
    recipe = CrossEncoderRecipe(epochs=1, batch_size=16, threads=1)
    metadata = train_cross_encoder(pairs, tmp_path, name="tiny", recipe=recipe, source="synthetic")
    assert metadata["kind"] == "cross-encoder"
    assert {"val", "test", "operating_points", "epochs"} <= set(metadata)
    scorer = load_scorer("tiny", tmp_path)
    assert isinstance(scorer, CrossEncoder)
    assert scorer.pair_probabilities([("a?", "b?")]).shape == (1,)
