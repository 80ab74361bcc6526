"""What the cache may do for one request, and which decision judges its candidates.

Contract:

- :func:`plan_for` turns a request's cache policy and sampling into a
  :class:`Plan`: whether to try the exact key, whether to search semantically,
  and whether the answer will be stored (so the miss carries an embedding and
  twins may wait for it).

  ============  =====  ========  =====
  mode          exact  semantic  store
  ============  =====  ========  =====
  use           yes    yes       yes
  only_exact    yes    no        yes
  refresh       no     no        yes
  bypass        no     no        no
  ============  =====  ========  =====

  A request whose temperature (omitted: the provider default, 1.0) is above the
  ceiling is treated as ``bypass`` whatever it asked.
- :class:`ThresholdDecisions` hands out the default decision: one cosine floor,
  raised (never lowered) by a request's ``min_similarity``. The learned
  ``decision.TenantDecisions`` has the same ``for_tenant`` shape.
- Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from semnexus_cache_lookup.config import CacheSettings
from semnexus_cache_lookup.decision import HitDecision, PairScorer, ThresholdDecision
from semnexus_shared.events import CacheMode, CompletionRequested

__all__ = ["Decisions", "Plan", "ThresholdDecisions", "plan_for"]


@dataclass(frozen=True, slots=True)
class Plan:
    """What the lookup does for one request."""

    exact: bool
    semantic: bool
    store: bool
    reason: str

    @property
    def cacheable(self) -> bool:
        """Whether the cache takes part at all (read or write)."""
        return self.exact or self.semantic or self.store


def plan_for(request: CompletionRequested, settings: CacheSettings) -> Plan:
    """The plan for this request under these settings."""
    mode = request.cache.mode
    if mode is CacheMode.BYPASS:
        return Plan(exact=False, semantic=False, store=False, reason="policy bypass")
    temperature = request.sampling.temperature
    effective = settings.default_temperature if temperature is None else temperature
    if effective > settings.temperature_ceiling:
        return Plan(
            exact=False,
            semantic=False,
            store=False,
            reason=f"temperature {effective:g} above ceiling {settings.temperature_ceiling:g}",
        )
    if mode is CacheMode.REFRESH:
        return Plan(exact=False, semantic=False, store=True, reason="policy refresh")
    if mode is CacheMode.ONLY_EXACT:
        return Plan(exact=True, semantic=False, store=True, reason="policy only_exact")
    return Plan(exact=True, semantic=True, store=True, reason="policy use")


class Decisions(Protocol):
    """Gives the decision for a tenant, narrowed by a request's similarity floor."""

    @property
    def scorer(self) -> PairScorer | None:
        """The one scorer every tenant's decision uses (``None``: none needs one)."""
        ...

    def for_tenant(self, tenant_id: str, min_similarity: float | None = None) -> HitDecision:
        """The decision that judges this tenant's candidates."""
        ...


@dataclass(frozen=True, slots=True)
class ThresholdDecisions:
    """One global cosine floor for every tenant; a request may only raise it."""

    min_similarity: float

    @property
    def scorer(self) -> PairScorer | None:
        """Cosine needs no scorer."""
        return None

    def for_tenant(self, tenant_id: str, min_similarity: float | None = None) -> HitDecision:
        """``ThresholdDecision`` at max(floor, the request's min_similarity)."""
        floor = (
            self.min_similarity
            if min_similarity is None
            else max(self.min_similarity, min_similarity)
        )
        return ThresholdDecision(floor)
