"""A cache entry: one stored answer in its scope, and how a fill becomes one.

Contract: an entry's id is the exact key of its scope and prompt
(:func:`~semnexus_shared.scope.exact_key`), so the exact-match path is a
primary-key lookup, a refreshed answer replaces the old one, and replaying a
fill writes the same row again. ``created_at`` is the fill event's time (a
replay gives the same row) and ``expires_at`` is ``created_at`` plus the fill's
TTL (or the default), capped at the maximum. Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from semnexus_shared.events import CacheFilled, CacheScope, FinishReason, Usage
from semnexus_shared.scope import exact_key, scope_hash

__all__ = ["CacheEntry", "entry_from_fill"]

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One stored answer with everything needed to serve and account for it."""

    id: str
    scope: CacheScope
    prompt: str
    answer: str
    finish_reason: FinishReason
    usage: Usage
    provider: str
    model: str
    request_id: str
    created_at: datetime
    expires_at: datetime
    vector: Vector | None = None

    @property
    def scope_hash(self) -> str:
        """The hash of the entry's whole scope."""
        return scope_hash(self.scope)

    def live_at(self, now: datetime) -> bool:
        """Whether the entry may still be served at ``now``."""
        return self.expires_at > now

    def age_ms(self, now: datetime) -> int:
        """Milliseconds since the answer was stored (never negative)."""
        return max(0, int((now - self.created_at).total_seconds() * 1000))


def entry_from_fill(
    fill: CacheFilled, vector: Vector, default_ttl_s: int, max_ttl_s: int
) -> CacheEntry:
    """The entry a fill stores."""
    ttl = min(fill.ttl_seconds or default_ttl_s, max_ttl_s)
    return CacheEntry(
        id=exact_key(fill.scope, fill.prompt),
        scope=fill.scope,
        prompt=fill.prompt,
        answer=fill.answer,
        finish_reason=fill.finish_reason,
        usage=fill.usage,
        provider=fill.provider,
        model=fill.model,
        request_id=fill.request_id,
        created_at=fill.created_at,
        expires_at=fill.created_at + timedelta(seconds=ttl),
        vector=vector,
    )
