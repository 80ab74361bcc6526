"""Deterministic answer text and token counting.

Contract:

- ``count_tokens(text)`` approximates a BPE tokenizer: every run of word
  characters costs one token per started four characters, every other
  non-space character costs one token. It is cheap, stable and close enough to
  real counts (about four characters a token on English prose) for budgets,
  prices and rate limits.
- ``answer(prompt_key, max_tokens)`` returns the same ``Answer`` for the same
  key, and (with overwhelming probability) a different one for a different key.
  The answer is a sequence of pieces, each exactly one token by
  ``count_tokens``, so a stream of pieces reassembles into ``Answer.text`` and
  ``output_tokens == count_tokens(text)`` always holds. When the natural length
  exceeds ``max_tokens`` the answer is cut at ``max_tokens`` and ``truncated``
  is true.
- ``prompt_key(parts)`` is the hash that seeds the answer: the roles and texts
  of the conversation, and nothing else (not the model, not the provider).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass

_TOKEN = re.compile(r"\w+|[^\w\s]")

# Words of at most four characters, so that each word (with its leading space)
# is exactly one token and a stream can send one token per chunk.
_WORD_LIST = (
    "the a an one two this that each some any all more less most few many "
    "data hit node edge path flow load fast slow busy idle safe warm cold "
    "key map set list row page file disk core task job work plan step goal "
    "user team lead code test run call send read save keep drop pick move "
    "sort mark note tell ask say know show find make take give help try use "
    "good bad new old big tiny long wide deep real true open shut last next "
    "time day week hour year then now soon late here near far up down out "
    "in on at by for to of with from into over and or but so yet if when "
    "is are was be has had can may will must"
)
_WORDS = tuple(_WORD_LIST.split())

_MIN_WORDS = 10
_MAX_WORDS = 70


@dataclass(frozen=True, slots=True)
class Answer:
    """A generated completion: its pieces (one token each) and whether it was cut."""

    pieces: tuple[str, ...]
    truncated: bool

    @property
    def text(self) -> str:
        """The whole answer text."""
        return "".join(self.pieces)

    @property
    def output_tokens(self) -> int:
        """Completion tokens: one per piece."""
        return len(self.pieces)


def count_tokens(text: str) -> int:
    """Approximate the number of tokens in ``text``."""
    total = 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        total += -(-len(token) // 4) if token[0].isalnum() or token[0] == "_" else 1
    return total


def prompt_key(parts: Iterable[tuple[str, str]]) -> str:
    """Hash a conversation given as (role, text) pairs into the answer seed."""
    digest = hashlib.sha256()
    for role, text in parts:
        digest.update(role.encode())
        digest.update(b"\x00")
        digest.update(text.encode())
        digest.update(b"\x01")
    return digest.hexdigest()


def answer(key: str, max_tokens: int | None) -> Answer:
    """Generate the deterministic answer for ``key``, cut at ``max_tokens``."""
    rng = random.Random(key)
    pieces: list[str] = []
    sentence_start = True
    for _ in range(rng.randint(_MIN_WORDS, _MAX_WORDS)):
        word = rng.choice(_WORDS)
        if sentence_start:
            word = word.capitalize()
        pieces.append(word if not pieces else f" {word}")
        sentence_start = rng.random() < 0.12
        if sentence_start:
            pieces.append(".")
    if not pieces or pieces[-1] != ".":
        pieces.append(".")
    if max_tokens is not None and len(pieces) > max_tokens:
        return Answer(pieces=tuple(pieces[: max(max_tokens, 0)]), truncated=True)
    return Answer(pieces=tuple(pieces), truncated=False)
