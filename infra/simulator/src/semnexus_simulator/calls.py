"""Counting of completion calls, for tests and benchmarks to assert on.

Contract: ``CallLog.record(provider, model, outcome)`` counts one call; the
outcome is the HTTP status as a string ("200", "429", ...) or "hang" for a call
that was held without an answer. ``as_json()`` is the body of
``GET /_sim/calls``::

    {"total": 3,
     "providers": {"openai": {"total": 3,
                              "by_status": {"200": 2, "429": 1},
                              "models": {"gpt-4o-mini": {"total": 3,
                                                          "by_status": {"200": 2, "429": 1}}}}}}

Every configured provider is present, with zero counts until called.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable


class CallLog:
    """Calls per provider, model and outcome."""

    def __init__(self, providers: Iterable[str]) -> None:
        self._providers = tuple(providers)
        self._counts: Counter[tuple[str, str, str]] = Counter()

    def record(self, provider: str, model: str, outcome: str) -> None:
        """Count one call."""
        self._counts[(provider, model, outcome)] += 1

    def reset(self) -> None:
        """Forget every count."""
        self._counts.clear()

    def count(self, provider: str, *, model: str | None = None, outcome: str | None = None) -> int:
        """Calls to ``provider``, optionally only of one model and/or one outcome."""
        return sum(
            n
            for (p, m, o), n in self._counts.items()
            if p == provider and model in (None, m) and outcome in (None, o)
        )

    def as_json(self) -> dict[str, object]:
        """The counts as the control API reports them."""
        providers: dict[str, object] = {}
        for name in self._providers:
            per_model: dict[str, Counter[str]] = {}
            for (p, model, outcome), n in sorted(self._counts.items()):
                if p == name:
                    per_model.setdefault(model, Counter())[outcome] += n
            by_status: Counter[str] = sum(per_model.values(), Counter())
            providers[name] = {
                "total": by_status.total(),
                "by_status": dict(by_status),
                "models": {
                    model: {"total": counts.total(), "by_status": dict(counts)}
                    for model, counts in per_model.items()
                },
            }
        return {"total": self._counts.total(), "providers": providers}
