"""The router's decisions: chain, skipped providers, budgets, deadlines, refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from semnexus_router.config import Catalog, load_catalog
from semnexus_router.errors import CatalogError
from semnexus_router.handlers import Router
from semnexus_shared.events import (
    BudgetAction,
    BudgetChanged,
    BudgetState,
    CacheMissed,
    CacheScope,
    CompletionRequested,
    CompletionResponded,
    HealthState,
    Message,
    ProviderCallRequested,
    ProviderHealthChanged,
    ResponseStatus,
    Role,
)
from semnexus_shared.replies import ReplyPolicy
from semnexus_shared.stream import Emit, Reject

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
CATALOG = Catalog.model_validate(
    {
        "providers": ("openai", "anthropic", "llama"),
        "aliases": {
            "chat": {
                "chain": [
                    "openai:gpt-4o-mini",
                    "anthropic:claude-3-5-haiku-latest",
                    "llama:meta-llama/Llama-3.1-8B-Instruct",
                ],
                "downgrade": "chat-economy",
            },
            "chat-economy": {"chain": ["llama:meta-llama/Llama-3.1-8B-Instruct"]},
        },
    }
)
SCOPE = CacheScope(
    tenant_id="acme",
    model_alias="chat",
    system_hash="s",
    history_hash="h",
    tools_format_hash="t",
    sampling_bucket="b",
)


def miss(
    alias: str = "chat", deadline: datetime | None = None, reply_topic: str | None = None
) -> CacheMissed:
    """A cache miss for tenant acme."""
    request = CompletionRequested(
        request_id="r1",
        tenant_id="acme",
        model_alias=alias,
        deadline=deadline,
        messages=(Message(role=Role.USER, content="hi"),),
        reply_topic=reply_topic,
    )
    return CacheMissed(
        request_id="r1",
        tenant_id="acme",
        request=request,
        scope=SCOPE,
        embedding=b"\x01\x02\x03\x04",
    )


def router(
    health: dict[str, ProviderHealthChanged] | None = None,
    budgets: dict[str, BudgetChanged] | None = None,
) -> Router:
    """A router over the test catalog at a fixed time."""
    return Router(
        catalog=CATALOG,
        health=health or {},
        budgets=budgets or {},
        replies=ReplyPolicy("responses", frozenset({"app.replies"})),
        clock=lambda: NOW,
        default_deadline=timedelta(seconds=60),
    )


def cooling(
    provider: str, seconds: float, state: HealthState = HealthState.COOLING_DOWN
) -> ProviderHealthChanged:
    """A provider cooling down (or open) for ``seconds`` from NOW."""
    return ProviderHealthChanged(
        provider=provider, state=state, cooldown_until=NOW + timedelta(seconds=seconds)
    )


def budget(state: BudgetState, action: BudgetAction) -> dict[str, BudgetChanged]:
    """Tenant acme's budget in a given state."""
    return {
        "acme": BudgetChanged(
            tenant_id="acme",
            period="2026-01",
            spent_micros=10,
            budget_micros=10,
            state=state,
            action=action,
        )
    }


def only_call(out: list[object]) -> ProviderCallRequested:
    """The one provider call routed."""
    [call] = out
    assert isinstance(call, ProviderCallRequested)
    return call


def only_response(out: list[object]) -> CompletionResponded:
    """The one response emitted."""
    emits = [o for o in out if isinstance(o, Emit)]
    assert len(emits) == 1
    assert isinstance(emits[0].event, CompletionResponded)
    return emits[0].event


def test_routes_to_the_first_provider_with_the_rest_of_the_chain() -> None:
    """The alias's first provider is called, with the chain behind it and a default deadline."""
    call = only_call(router().route(miss()))
    assert (call.provider, call.model) == ("openai", "gpt-4o-mini")
    assert call.chain == (
        "anthropic:claude-3-5-haiku-latest",
        "llama:meta-llama/Llama-3.1-8B-Instruct",
    )
    assert (call.attempt_number, call.attempts, call.visited) == (1, (), ())
    assert call.deadline == NOW + timedelta(seconds=60)
    assert call.scope == SCOPE
    assert call.embedding == b"\x01\x02\x03\x04"


def test_request_deadline_is_kept() -> None:
    """A request's own deadline travels with the call."""
    deadline = NOW + timedelta(seconds=5)
    assert only_call(router().route(miss(deadline=deadline))).deadline == deadline


def test_skips_a_cooling_provider() -> None:
    """A provider cooling down is skipped; the next one is called."""
    call = only_call(router({"openai": cooling("openai", 30)}).route(miss()))
    assert call.provider == "anthropic"
    assert call.chain == ("llama:meta-llama/Llama-3.1-8B-Instruct",)


def test_uses_a_provider_again_once_its_cooldown_ended() -> None:
    """A cooldown in the past does not skip the provider."""
    assert only_call(router({"openai": cooling("openai", -1)}).route(miss())).provider == "openai"


def test_skips_an_open_circuit() -> None:
    """A provider whose circuit is open is skipped."""
    health = {"openai": cooling("openai", 30, HealthState.CIRCUIT_OPEN)}
    assert only_call(router(health).route(miss())).provider == "anthropic"


def test_all_cooling_answers_with_the_soonest_retry() -> None:
    """Every provider out: rate_limited_all_providers, retry after the soonest cooldown end."""
    health = {
        "openai": cooling("openai", 30),
        "anthropic": cooling("anthropic", 12),
        "llama": cooling("llama", 45, HealthState.CIRCUIT_OPEN),
    }
    response = only_response(router(health).route(miss()))
    assert response.status is ResponseStatus.RATE_LIMITED_ALL_PROVIDERS
    assert response.retry_after_ms == 12_000


def test_budget_reject() -> None:
    """An exceeded budget with action reject is refused with budget_exceeded."""
    out = router(budgets=budget(BudgetState.EXCEEDED, BudgetAction.REJECT)).route(miss())
    assert only_response(out).status is ResponseStatus.BUDGET_EXCEEDED


def test_budget_downgrade() -> None:
    """An exceeded budget with action downgrade routes by the cheaper alias's chain."""
    out = router(budgets=budget(BudgetState.EXCEEDED, BudgetAction.DOWNGRADE)).route(miss())
    call = only_call(out)
    assert (call.provider, call.chain) == ("llama", ())


def test_budget_downgrade_without_a_cheaper_alias_rejects() -> None:
    """Exceeded with downgrade but nowhere cheaper to go: budget_exceeded, not full price."""
    out = router(budgets=budget(BudgetState.EXCEEDED, BudgetAction.DOWNGRADE)).route(
        miss("chat-economy")
    )
    assert only_response(out).status is ResponseStatus.BUDGET_EXCEEDED


def test_near_budget_prefers_the_cheaper_chain() -> None:
    """A tenant at warning is routed by the cheaper chain."""
    out = router(budgets=budget(BudgetState.WARNING, BudgetAction.REJECT)).route(miss())
    assert only_call(out).provider == "llama"


def test_past_deadline_is_refused() -> None:
    """A request whose deadline has passed is answered deadline_exceeded, not routed."""
    out = router().route(miss(deadline=NOW - timedelta(seconds=1)))
    assert only_response(out).status is ResponseStatus.DEADLINE_EXCEEDED


def test_unknown_alias_is_answered_and_dead_lettered() -> None:
    """An unknown alias gets an invalid_request response and a dead letter."""
    out = router().route(miss("no-such-alias"))
    assert only_response(out).status is ResponseStatus.INVALID_REQUEST
    assert any(isinstance(o, Reject) for o in out)


def test_refusals_go_to_an_allowed_reply_topic_only() -> None:
    """A refusal is sent to the request's reply topic when allowed, else to responses."""
    past = NOW - timedelta(seconds=1)
    [allowed] = router().route(miss(deadline=past, reply_topic="app.replies"))
    [other] = router().route(miss(deadline=past, reply_topic="not.allowed"))
    assert isinstance(allowed, Emit)
    assert allowed.topic == "app.replies"
    assert isinstance(other, Emit)
    assert other.topic == "responses"
    assert allowed.key == b"r1"


def test_repository_catalog_loads() -> None:
    """infra/providers.yaml is a valid catalog whose chat alias has three providers."""
    catalog = load_catalog(REPO / "infra" / "providers.yaml")
    assert [e.provider for e in catalog.aliases["chat"].entries()] == [
        "openai",
        "anthropic",
        "llama",
    ]


def test_catalog_rejects_unknown_providers(tmp_path: Path) -> None:
    """A chain naming an undeclared provider fails at load time."""
    path = tmp_path / "providers.yaml"
    path.write_text("providers: {openai: {}}\naliases: {chat: {chain: ['nope:model']}}\n")
    with pytest.raises(CatalogError, match="nope"):
        load_catalog(path)
