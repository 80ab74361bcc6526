"""Rate-limit bookkeeping: budgets count down and a spent window answers a real 429."""

from __future__ import annotations

import httpx

from semnexus_simulator import ProviderConfig, RateLimitConfig, SimulatorConfig, Wire

from .conftest import ANTHROPIC_AUTH, OPENAI_AUTH, ClientFactory, ManualClock

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}


def limited(wire: Wire, requests: int = 3, tokens: int = 100_000) -> SimulatorConfig:
    """One provider with a small budget in a 10-second window."""
    name = "anthropic" if wire is Wire.ANTHROPIC else "openai"
    budget = RateLimitConfig(requests=requests, tokens=tokens, window_s=10)
    return SimulatorConfig(providers={name: ProviderConfig(wire=wire, rate_limit=budget)})


async def test_exhausted_requests_answer_429_until_the_window_resets(
    make_client: ClientFactory, clock: ManualClock
) -> None:
    """After the request budget is spent calls get 429 with retry-after until the window rolls."""
    client = await make_client(limited(Wire.OPENAI, requests=3))
    ok = [await client.post("/openai/v1/chat/completions", json=CHAT, headers=OPENAI_AUTH)]
    clock.advance(4)
    for _ in range(2):
        ok.append(await client.post("/openai/v1/chat/completions", json=CHAT, headers=OPENAI_AUTH))
    assert [r.status_code for r in ok] == [200, 200, 200]
    assert [r.headers["x-ratelimit-remaining-requests"] for r in ok] == ["2", "1", "0"]
    refused = await client.post("/openai/v1/chat/completions", json=CHAT, headers=OPENAI_AUTH)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "6"
    assert refused.headers["retry-after-ms"] == "6000"
    assert refused.headers["x-ratelimit-reset-requests"] == "6s"
    assert refused.json()["error"]["type"] == "requests"
    clock.advance(6)
    again = await client.post("/openai/v1/chat/completions", json=CHAT, headers=OPENAI_AUTH)
    assert again.status_code == 200
    assert again.headers["x-ratelimit-remaining-requests"] == "2"


async def test_token_budget_refuses_a_prompt_that_does_not_fit(
    make_client: ClientFactory,
) -> None:
    """A prompt larger than the remaining token budget is refused with type tokens."""
    client = await make_client(limited(Wire.OPENAI, requests=100, tokens=50))
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "word " * 100}]}
    response = await client.post("/openai/v1/chat/completions", json=body, headers=OPENAI_AUTH)
    assert response.status_code == 429
    assert response.json()["error"]["type"] == "tokens"


async def test_anthropic_exhaustion_is_rate_limit_error(make_client: ClientFactory) -> None:
    """On Anthropic a spent window answers 429 rate_limit_error with remaining 0."""
    client = await make_client(limited(Wire.ANTHROPIC, requests=1))
    body = {"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    first = await client.post("/anthropic/v1/messages", json=body, headers=ANTHROPIC_AUTH)
    second = await client.post("/anthropic/v1/messages", json=body, headers=ANTHROPIC_AUTH)
    assert first.status_code == 200
    assert second.status_code == 429
    assert second.json()["error"]["type"] == "rate_limit_error"
    assert second.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert int(second.headers["retry-after"]) == 10
    assert "retry-after-ms" not in second.headers


async def test_output_tokens_count_against_the_budget(client: httpx.AsyncClient) -> None:
    """Remaining tokens drop by the prompt and the completion of each call."""
    first = await client.post("/openai/v1/chat/completions", json=CHAT, headers=OPENAI_AUTH)
    second = await client.post("/openai/v1/chat/completions", json=CHAT, headers=OPENAI_AUTH)
    drop = int(first.headers["x-ratelimit-remaining-tokens"]) - int(
        second.headers["x-ratelimit-remaining-tokens"]
    )
    assert drop == second.json()["usage"]["total_tokens"]
