"""The ledger's counters: what one charge adds to a (tenant, day, provider, model) row.

Contract: a :class:`Tally` is a bag of integer counters that add up; the
store keeps one per (tenant, UTC day, provider, model) and sums them for
reports. The field names are the database column names and the JSON keys of
the report API, so the three cannot drift.

- ``requests``: calls a provider answered (``provider_call`` events);
- ``failed_attempts`` / ``failed_cost_micros``: attempts that failed over but
  still cost money (``failed_attempt`` events); their cost is inside ``cost_micros``;
- ``cache_hits``: requests the semantic cache answered;
- ``input_tokens``, ``output_tokens``, ``cached_input_tokens``: tokens paid for;
- ``cost_micros``: what the tenant pays, integer micro-USD;
- ``saved_input_tokens``, ``saved_output_tokens``, ``cache_saved_micros``: the
  provider calls the cache avoided, priced at the answering model's price;
- ``prompt_cache_saved_micros``: the provider-side prompt-cache discount;
- ``unpriced_events``: events with no price in the table (charged 0).
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields
from typing import ClassVar, Self

from semnexus_cost_ledger.pricing import Charge
from semnexus_shared.events import UsageKind

__all__ = ["Tally"]


@dataclass(frozen=True, slots=True)
class Tally:
    """Counters of one aggregate row (or a sum of rows)."""

    FIELDS: ClassVar[tuple[str, ...]]

    requests: int = 0
    failed_attempts: int = 0
    cache_hits: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost_micros: int = 0
    failed_cost_micros: int = 0
    saved_input_tokens: int = 0
    saved_output_tokens: int = 0
    cache_saved_micros: int = 0
    prompt_cache_saved_micros: int = 0
    unpriced_events: int = 0

    @classmethod
    def of(cls, charge: Charge) -> Self:
        """What one charge adds."""
        unpriced = 0 if charge.priced else 1
        if charge.kind is UsageKind.CACHE_HIT:
            return cls(
                cache_hits=1,
                saved_input_tokens=charge.input_tokens,
                saved_output_tokens=charge.output_tokens,
                cache_saved_micros=charge.cache_saved_micros,
                unpriced_events=unpriced,
            )
        failed = charge.kind is UsageKind.FAILED_ATTEMPT
        return cls(
            requests=0 if failed else 1,
            failed_attempts=1 if failed else 0,
            input_tokens=charge.input_tokens,
            output_tokens=charge.output_tokens,
            cached_input_tokens=charge.cached_input_tokens,
            cost_micros=charge.cost_micros,
            failed_cost_micros=charge.cost_micros if failed else 0,
            prompt_cache_saved_micros=charge.prompt_cache_saved_micros,
            unpriced_events=unpriced,
        )

    @classmethod
    def from_row(cls, values: tuple[int, ...]) -> Self:
        """A tally from column values in :attr:`FIELDS` order (NULL sums read as 0)."""
        return cls(*(int(v or 0) for v in values))

    def __add__(self, other: Tally) -> Tally:
        return Tally(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    def values(self) -> tuple[int, ...]:
        """Counter values in :attr:`FIELDS` order."""
        return astuple(self)

    def as_dict(self) -> dict[str, int]:
        """Counters by name."""
        return dict(zip(self.FIELDS, astuple(self), strict=True))

    @property
    def answered(self) -> int:
        """Requests answered, by a provider or by the cache."""
        return self.requests + self.cache_hits

    @property
    def cache_hit_rate(self) -> float:
        """Share of answered requests the cache answered (0 when none)."""
        return self.cache_hits / self.answered if self.answered else 0.0


Tally.FIELDS = tuple(f.name for f in fields(Tally))
