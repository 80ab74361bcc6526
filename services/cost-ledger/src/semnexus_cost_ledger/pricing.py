"""The versioned price table, and what one usage event costs.

Contract:

- A :class:`PriceTable` is loaded from a reviewed YAML file (``infra/prices.yaml``):
  per provider and model, price versions in USD per million tokens (decimal
  strings; floats are refused) for input, cached input and output, each with the
  UTC date or time it applies from. :meth:`PriceTable.price_at` returns the
  version in force at an instant: the latest whose ``from`` is at or before it.
- :func:`charge` prices one :class:`~semnexus_shared.events.UsageRecorded`:
  USD per million tokens times tokens is exactly micro-USD, so the amount is
  summed in :class:`~decimal.Decimal` and rounded half-up to an integer once per
  event, never per component.
- ``input_tokens`` counts every prompt token, including ``cached_input_tokens``
  (the OpenAI convention); uncached input is the difference (never negative).
- ``provider_call`` and ``failed_attempt`` events are what the tenant pays.
  A ``cache_hit`` costs nothing; its tokens are those the hit avoided, priced at
  the answering provider/model's price: that is the cache saving. The provider's
  own prompt-cache discount (cached tokens times input minus cached-input price)
  is a separate figure.
- Unknown provider/model, or an event older than the model's first version:
  the event is still counted (tokens, requests) at cost 0 with ``priced=False``,
  so reports show it as unpriced and ``semnexus ledger rebuild --prices`` with a
  corrected table reprices it. Dead-lettering instead would drop its tokens from
  the aggregates and from budgets, and a valid event is not bad input.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from semnexus_cost_ledger.errors import PriceTableError
from semnexus_shared.events import UsageKind, UsageRecorded

__all__ = ["Charge", "Price", "PriceTable", "charge"]


def _money_text(value: object) -> object:
    if isinstance(value, float):
        raise ValueError(  # noqa: TRY004 - pydantic turns only ValueError into a validation error
            f"price {value!r} is a float; write it as a string, e.g. '0.15'"
        )
    if isinstance(value, int):
        return str(value)
    return value


def _utc_instant(value: object) -> object:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time.min, tzinfo=UTC)
    if isinstance(value, str) and len(value) == 10:
        return datetime.combine(date.fromisoformat(value), time.min, tzinfo=UTC)
    return value


Usd = Annotated[Decimal, BeforeValidator(_money_text), Field(ge=0)]
UtcInstant = Annotated[datetime, BeforeValidator(_utc_instant)]


class Price(BaseModel):
    """One price version: USD per million tokens, in force from ``from_`` (UTC)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    from_: UtcInstant = Field(alias="from")
    input: Usd
    cached_input: Usd
    output: Usd


class _ModelPrices(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str = Field(min_length=1)
    model: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()
    prices: tuple[Price, ...] = Field(min_length=1)


class _PriceFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    models: tuple[_ModelPrices, ...]


class PriceTable:
    """Price versions by (provider, model id); aliases resolve to the same versions."""

    def __init__(self, version: str, models: Iterable[_ModelPrices]) -> None:
        self.version = version
        self._prices: dict[tuple[str, str], tuple[Price, ...]] = {}
        for entry in models:
            versions = tuple(sorted(entry.prices, key=lambda p: p.from_))
            starts = [p.from_ for p in versions]
            if len(set(starts)) != len(starts):
                raise PriceTableError(
                    f"{entry.provider}/{entry.model}: two versions start at the same time"
                )
            for name in (entry.model, *entry.aliases):
                key = (entry.provider, name)
                if key in self._prices:
                    raise PriceTableError(f"{entry.provider}/{name} is listed twice")
                self._prices[key] = versions

    @classmethod
    def parse(cls, document: Mapping[str, Any]) -> PriceTable:
        """Build a table from the parsed YAML document."""
        try:
            spec = _PriceFile.model_validate(document)
        except ValidationError as exc:
            raise PriceTableError(f"invalid price table: {exc}") from exc
        return cls(spec.version, spec.models)

    @classmethod
    def load(cls, path: Path) -> PriceTable:
        """Read and validate a price table file."""
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise PriceTableError(f"cannot read price table {path}: {exc}") from exc
        if not isinstance(document, Mapping):
            raise PriceTableError(f"{path}: expected a mapping at the top level")
        return cls.parse(document)

    def price_at(self, provider: str, model: str, at: datetime) -> Price | None:
        """The version in force at ``at``, or None (unknown model, or before its first)."""
        versions = self._prices.get((provider, model), ())
        found: Price | None = None
        for version in versions:
            if version.from_ > at:
                break
            found = version
        return found

    def models(self) -> Sequence[tuple[str, str]]:
        """Every (provider, model id) the table prices, aliases included."""
        return sorted(self._prices)


@dataclass(frozen=True, slots=True)
class Charge:
    """One usage event, priced: what it adds to its tenant's day for its provider/model."""

    event_id: str
    tenant_id: str
    day: date
    created_at: datetime
    provider: str
    model: str
    kind: UsageKind
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cost_micros: int
    cache_saved_micros: int
    prompt_cache_saved_micros: int
    priced: bool


def _micros(amount: Decimal) -> int:
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def charge(event: UsageRecorded, prices: PriceTable) -> Charge:
    """Price one usage event (see the module contract for the rules)."""
    price = prices.price_at(event.provider, event.model, event.created_at)
    cached = min(event.cached_input_tokens, event.input_tokens)
    uncached = event.input_tokens - cached
    full = cache_saved = prompt_saved = 0
    if price is not None:
        # USD per 1M tokens x tokens = micro-USD, exactly.
        full = _micros(
            uncached * price.input
            + cached * price.cached_input
            + event.output_tokens * price.output
        )
        prompt_saved = _micros(cached * (price.input - price.cached_input))
    cost = full
    if event.kind is UsageKind.CACHE_HIT:
        cost, cache_saved = 0, full
    return Charge(
        event_id=event.event_id,
        tenant_id=event.tenant_id,
        day=event.created_at.date(),
        created_at=event.created_at,
        provider=event.provider,
        model=event.model,
        kind=event.kind,
        input_tokens=event.input_tokens,
        output_tokens=event.output_tokens,
        cached_input_tokens=cached,
        cost_micros=cost,
        cache_saved_micros=cache_saved,
        prompt_cache_saved_micros=prompt_saved if event.kind is not UsageKind.CACHE_HIT else 0,
        priced=price is not None,
    )
