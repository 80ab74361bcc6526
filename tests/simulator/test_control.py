"""The /_sim control API: faults, latency, rate limits, call counts and reset."""

from __future__ import annotations

import asyncio

import httpx

from .conftest import ANTHROPIC_AUTH, OPENAI_AUTH

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}


async def test_faults_round_trip(client: httpx.AsyncClient) -> None:
    """Faults set by POST are returned by GET and removed by DELETE."""
    plan = {"server_error": {"rate": 0.25, "status": 502}, "bogus_headers": {"mode": "huge"}}
    posted = await client.post("/_sim/providers/openai/faults", json=plan)
    assert posted.status_code == 200
    got = (await client.get("/_sim/providers/openai/faults")).json()
    assert got == plan
    assert (await client.delete("/_sim/providers/openai/faults")).json() == {}
    assert (await client.get("/_sim/providers/openai/faults")).json() == {}


async def test_invalid_faults_are_422(client: httpx.AsyncClient) -> None:
    """A fault body with an unknown kind or a bad value is rejected, not ignored."""
    unknown = await client.post("/_sim/providers/openai/faults", json={"explode": {}})
    bad_rate = await client.post(
        "/_sim/providers/openai/faults", json={"server_error": {"rate": 2}}
    )
    not_json = await client.post("/_sim/providers/openai/faults", content=b"{nope")
    assert [unknown.status_code, bad_rate.status_code, not_json.status_code] == [422, 422, 422]


async def test_unknown_provider_is_404(client: httpx.AsyncClient) -> None:
    """Control routes for a provider that is not configured answer 404."""
    response = await client.post("/_sim/providers/nope/faults", json={})
    assert response.status_code == 404


async def test_calls_are_counted_per_provider_model_and_status(
    client: httpx.AsyncClient,
) -> None:
    """GET /_sim/calls counts calls by provider, model and outcome status."""
    await client.post("/openai/v1/chat/completions", json=CHAT, headers=OPENAI_AUTH)
    await client.post("/openai/v1/chat/completions", json=CHAT | {"model": "gpt-4o"})
    await client.post(
        "/anthropic/v1/messages",
        json={"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        headers=ANTHROPIC_AUTH,
    )
    calls = (await client.get("/_sim/calls")).json()
    assert calls["total"] == 3
    openai = calls["providers"]["openai"]
    assert openai["total"] == 2
    assert openai["by_status"] == {"200": 1, "401": 1}
    assert openai["models"] == {
        "gpt-4o": {"total": 1, "by_status": {"401": 1}},
        "gpt-4o-mini": {"total": 1, "by_status": {"200": 1}},
    }
    assert calls["providers"]["anthropic"]["models"]["claude"]["by_status"] == {"200": 1}
    assert calls["providers"]["llama"] == {"total": 0, "by_status": {}, "models": {}}


async def test_reset_zeroes_counts_and_clears_faults(client: httpx.AsyncClient) -> None:
    """POST /_sim/reset zeroes counts, clears faults and refills the rate window."""
    await client.post("/_sim/providers/openai/faults", json={"forced_status": {"status": 500}})
    failed = await client.post("/openai/v1/chat/completions", json=CHAT, headers=OPENAI_AUTH)
    assert failed.status_code == 500
    assert (await client.post("/_sim/reset")).status_code == 200
    assert (await client.get("/_sim/calls")).json()["total"] == 0
    assert (await client.get("/_sim/providers/openai/faults")).json() == {}
    ok = await client.post("/openai/v1/chat/completions", json=CHAT, headers=OPENAI_AUTH)
    assert ok.status_code == 200
    assert ok.headers["x-ratelimit-remaining-requests"] == "499"


async def test_latency_is_applied_before_the_answer(client: httpx.AsyncClient) -> None:
    """A fixed latency set at run time delays each answer by at least that long."""
    response = await client.put("/_sim/providers/openai/latency", json={"kind": "fixed", "ms": 150})
    assert response.status_code == 200
    loop = asyncio.get_running_loop()
    started = loop.time()
    await client.post("/openai/v1/chat/completions", json=CHAT, headers=OPENAI_AUTH)
    assert loop.time() - started >= 0.15


async def test_lognormal_latency_needs_its_quantiles(client: httpx.AsyncClient) -> None:
    """A lognormal latency without p99_ms is rejected."""
    response = await client.put(
        "/_sim/providers/openai/latency", json={"kind": "lognormal", "median_ms": 100}
    )
    assert response.status_code == 422


async def test_rate_limit_can_be_replaced_or_removed(client: httpx.AsyncClient) -> None:
    """PUT rate_limit installs a fresh budget, and null turns the headers off."""
    put = await client.put(
        "/_sim/providers/llama/rate_limit", json={"requests": 2, "tokens": 1000, "window_s": 1}
    )
    assert put.status_code == 200
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    limited = await client.post("/llama/v1/chat/completions", json=body)
    assert limited.headers["x-ratelimit-limit-requests"] == "2"
    removed = await client.put("/_sim/providers/openai/rate_limit", content=b"null")
    assert removed.status_code == 200
    plain = await client.post("/openai/v1/chat/completions", json=CHAT, headers=OPENAI_AUTH)
    assert "x-ratelimit-limit-requests" not in plain.headers


async def test_providers_and_health(client: httpx.AsyncClient) -> None:
    """GET /_sim/providers describes each provider; /_sim/health says ok."""
    providers = (await client.get("/_sim/providers")).json()
    assert {name: p["wire"] for name, p in providers.items()} == {
        "openai": "openai",
        "anthropic": "anthropic",
        "llama": "openai_compatible",
    }
    assert providers["llama"]["rate_limit"] is None
    assert (await client.get("/_sim/health")).json() == {"status": "ok"}
