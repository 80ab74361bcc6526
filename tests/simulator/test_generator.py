"""Deterministic answers and token counting."""

from __future__ import annotations

from semnexus_simulator.generator import answer, count_tokens, prompt_key


def test_same_prompt_same_answer() -> None:
    """The same conversation always yields the same answer text."""
    key = prompt_key([("user", "What is a semantic cache?")])
    assert answer(key, None) == answer(prompt_key([("user", "What is a semantic cache?")]), None)


def test_different_prompts_different_answers() -> None:
    """Different conversations yield different answers."""
    texts = {answer(prompt_key([("user", f"question {n}")]), None).text for n in range(50)}
    assert len(texts) == 50


def test_roles_are_part_of_the_key() -> None:
    """The same text under a different role is a different prompt."""
    assert prompt_key([("user", "hi")]) != prompt_key([("system", "hi")])


def test_each_piece_is_one_token() -> None:
    """Every streamed piece counts as exactly one token, so usage matches the text."""
    for n in range(30):
        generated = answer(prompt_key([("user", f"prompt {n}")]), None)
        assert all(count_tokens(piece) == 1 for piece in generated.pieces)
        assert count_tokens(generated.text) == generated.output_tokens


def test_max_tokens_cuts_the_answer() -> None:
    """An answer longer than max_tokens is cut to exactly max_tokens and marked truncated."""
    key = prompt_key([("user", "tell me everything")])
    full = answer(key, None)
    cut = answer(key, 3)
    assert full.output_tokens > 3
    assert cut.output_tokens == 3
    assert cut.truncated
    assert full.text.startswith(cut.text)
    assert not answer(key, full.output_tokens).truncated


def test_count_tokens_is_about_four_characters_a_token() -> None:
    """Words cost a token per started four characters, punctuation one each."""
    assert count_tokens("") == 0
    assert count_tokens("the cat sat.") == 4
    assert count_tokens("internationalization") == 5
    prose = "The quick brown fox jumps over the lazy dog near the riverbank today. " * 20
    assert 0.15 < count_tokens(prose) / len(prose) < 0.35
