"""Pricing: versions by date, exact micro-USD, half-up once per event, savings, unknown models."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from semnexus_cost_ledger.errors import PriceTableError
from semnexus_cost_ledger.pricing import PriceTable, charge
from semnexus_cost_ledger.tally import Tally
from semnexus_shared.events import UsageKind

from .conftest import usage


def test_price_is_the_version_in_force_at_created_at(prices: PriceTable) -> None:
    """gpt-4o is priced at its launch price before 2024-10-02 and at the lower one from then."""
    before = usage(1, model="gpt-4o", at=datetime(2024, 10, 1, 23, 59, 59, tzinfo=UTC))
    after = usage(2, model="gpt-4o", at=datetime(2024, 10, 2, 0, 0, tzinfo=UTC))
    assert charge(before, prices).cost_micros == 12_500  # 1000 x $5 + 500 x $15 per M
    assert charge(after, prices).cost_micros == 7_500  # 1000 x $2.50 + 500 x $10 per M


def test_usd_per_million_times_tokens_is_exact_micro_usd(prices: PriceTable) -> None:
    """1,000 in + 500 out on gpt-4o-mini ($0.15 / $0.60 per M) costs exactly 450 micro-USD."""
    assert charge(usage(1), prices).cost_micros == 450


def test_rounds_half_up_once_per_event_not_per_component(prices: PriceTable) -> None:
    """Half a micro-USD rounds up, and components are summed before rounding."""
    # gpt-4o (2025): 1 input token at $2.50/M = 2.5 micro-USD -> 3 (half-up, not banker's 2).
    assert (
        charge(usage(1, model="gpt-4o", input_tokens=1, output_tokens=0), prices).cost_micros == 3
    )
    # gpt-4o-mini: 3 uncached (0.45) + 6 cached (0.45) = 0.9 -> 1; per component it would be 0.
    event = usage(2, input_tokens=9, cached=6, output_tokens=0)
    assert charge(event, prices).cost_micros == 1


def test_prompt_cache_discount_is_priced_and_kept_apart(prices: PriceTable) -> None:
    """Cached input is billed at the cached price; the discount is its own figure."""
    c = charge(usage(1, input_tokens=1000, cached=600, output_tokens=0), prices)
    assert c.cost_micros == 105  # 400 x $0.15 + 600 x $0.075 per M
    assert c.prompt_cache_saved_micros == 45  # 600 x ($0.15 - $0.075)
    assert c.cache_saved_micros == 0


def test_cache_hit_costs_nothing_and_saves_the_answering_models_price(
    prices: PriceTable,
) -> None:
    """A cache hit is free; the tokens it avoided, at the answering model's price, are saved."""
    hit = charge(
        usage(1, kind=UsageKind.CACHE_HIT, provider="anthropic", model="claude-3-5-haiku-latest"),
        prices,
    )
    assert (hit.cost_micros, hit.cache_saved_micros) == (0, 2_800)  # 1000 x $0.80 + 500 x $4
    tally = Tally.of(hit)
    assert (tally.cache_hits, tally.requests, tally.input_tokens) == (1, 0, 0)
    assert (tally.saved_input_tokens, tally.saved_output_tokens) == (1000, 500)


def test_failed_attempt_costs_money_and_is_counted_apart(prices: PriceTable) -> None:
    """A failed attempt that consumed tokens is charged and counted as a failure, not a request."""
    tally = Tally.of(charge(usage(1, kind=UsageKind.FAILED_ATTEMPT, output_tokens=0), prices))
    assert (tally.requests, tally.failed_attempts) == (0, 1)
    assert tally.cost_micros == tally.failed_cost_micros == 150


def test_unknown_model_is_charged_zero_and_flagged(prices: PriceTable) -> None:
    """An unpriced model still counts its tokens at cost 0, flagged (not dead-lettered)."""
    c = charge(usage(1, provider="openai", model="gpt-9"), prices)
    assert (c.cost_micros, c.priced) == (0, False)
    tally = Tally.of(c)
    assert (tally.unpriced_events, tally.requests, tally.input_tokens) == (1, 1, 1000)


def test_event_before_the_first_version_is_unpriced(prices: PriceTable) -> None:
    """A price never applies before its ``from`` date."""
    early = usage(1, model="gpt-4o", at=datetime(2024, 1, 1, tzinfo=UTC))
    assert charge(early, prices).priced is False


def test_aliases_share_their_models_prices(prices: PriceTable) -> None:
    """The simulator's model ids resolve to the listed models' prices."""
    at = datetime(2025, 6, 1, tzinfo=UTC)
    assert prices.price_at("anthropic", "claude-3-5-haiku-latest", at) == prices.price_at(
        "anthropic", "claude-3-5-haiku", at
    )
    assert prices.price_at("llama", "meta-llama/Llama-3.1-8B-Instruct", at) is not None


def test_float_prices_are_refused() -> None:
    """Money written as a YAML float is an error: it would lose digits."""
    doc = {
        "version": "x",
        "models": [
            {
                "provider": "p",
                "model": "m",
                "prices": [
                    {"from": "2025-01-01", "input": 0.1, "cached_input": "0", "output": "1"}
                ],
            }
        ],
    }
    with pytest.raises(PriceTableError, match="float"):
        PriceTable.parse(doc)


def test_two_versions_starting_together_are_refused() -> None:
    """Overlapping versions would make the price ambiguous."""
    version = {"from": "2025-01-01", "input": "1", "cached_input": "1", "output": "1"}
    doc = {"version": "x", "models": [{"provider": "p", "model": "m", "prices": [version] * 2}]}
    with pytest.raises(PriceTableError, match="same time"):
        PriceTable.parse(doc)
