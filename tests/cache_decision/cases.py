"""Question pairs any verifier must order: paraphrases above near misses."""

from __future__ import annotations

# (query, cached question, same question?)
OBVIOUS_PAIRS = [
    ("How can I lose weight quickly?", "What is the fastest way to lose weight?", True),
    ("How do I learn Python programming?", "What is the best way to learn Python?", True),
    ("What are the top 10 movies of 2015?", "What are the top 10 movies of 2016?", False),
    ("Why do cats purr?", "Why don't cats purr?", False),
    ("Who is the CEO of Apple?", "Who is the CEO of Microsoft?", False),
]
