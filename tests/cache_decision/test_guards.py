"""Lexical guards and pair features of the verifier."""

from __future__ import annotations

import numpy as np

from semnexus_cache_lookup.verifier import GUARD_NAMES, guards, pair_features


def _guard(a: str, b: str, name: str) -> float:
    return guards(a, b)[GUARD_NAMES.index(name) - 1]


def test_number_mismatch_flags_different_numbers() -> None:
    """Questions that differ only in a number are flagged; equal numbers are not."""
    assert _guard("Top 10 movies of 2015?", "Top 5 movies of 2015?", "number_mismatch") == 1.0
    assert _guard("Top 10 movies of 2015?", "The 10 best films of 2015?", "number_mismatch") == 0.0
    assert _guard("Is 1,000 a lot?", "Is 1000 a lot?", "number_mismatch") == 0.0


def test_negation_mismatch_flags_one_sided_negation() -> None:
    """A negation on one side only ("not", "don't", "without") is flagged."""
    assert _guard("Why do cats purr?", "Why don't cats purr?", "negation_mismatch") == 1.0
    assert _guard("Can I live without water?", "Can I live with water?", "negation_mismatch") == 1.0
    assert _guard("Why don't cats bark?", "Why do cats not bark?", "negation_mismatch") == 0.0


def test_name_and_question_word_guards() -> None:
    """A capitalised name only one side mentions, or another question word, is flagged."""
    assert _guard("Who is the CEO of Apple?", "Who is the CEO of Google?", "name_mismatch") == 1.0
    assert _guard("Who is the CEO of Apple?", "who is the ceo of apple", "name_mismatch") == 0.0
    assert _guard("Why is the sky blue?", "How is the sky blue?", "question_word_mismatch") == 1.0


def test_pair_features_are_symmetric() -> None:
    """Swapping query and candidate gives the same feature row."""
    rng = np.random.default_rng(0)
    u, v = rng.normal(size=(2, 1, 384)).astype(np.float32)
    a, b = "How do I learn Python fast?", "What is the fastest way to learn Python 3?"
    np.testing.assert_allclose(pair_features([a], u, [b], v), pair_features([b], v, [a], u))
