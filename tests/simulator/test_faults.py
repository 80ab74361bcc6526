"""Scripted faults: each kind, set at start or through the control API."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest

from semnexus_simulator import Faults, ProviderConfig, SimulatorConfig, Wire

from .conftest import ANTHROPIC_AUTH, OPENAI_AUTH, ClientFactory, ManualClock
from .sse import anthropic_events, openai_chunks

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
MESSAGE = {
    "model": "claude-3-5-haiku-latest",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "hello"}],
}
LiveStarter = Callable[[SimulatorConfig], Awaitable[str]]


async def set_faults(client: httpx.AsyncClient, provider: str, faults: object) -> None:
    """Set a provider's faults through the control API."""
    response = await client.post(f"/_sim/providers/{provider}/faults", json=faults)
    assert response.status_code == 200, response.text


async def chat(client: httpx.AsyncClient) -> httpx.Response:
    """One OpenAI chat completion call."""
    return await client.post("/openai/v1/chat/completions", json=CHAT, headers=OPENAI_AUTH)


def one_provider(wire: Wire, faults: Faults) -> SimulatorConfig:
    """A config with a single provider named after its wire."""
    name = "anthropic" if wire is Wire.ANTHROPIC else "openai"
    return SimulatorConfig(providers={name: ProviderConfig(wire=wire, faults=faults)})


async def test_rate_limit_for_n_seconds_then_recovery(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """A rate_limit fault answers 429 with retry-after for its duration, then calls succeed."""
    await set_faults(
        client, "openai", {"rate_limit": {"for_s": 5, "retry_after_s": 2, "retry_after_ms": True}}
    )
    limited = await chat(client)
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "2"
    assert limited.headers["retry-after-ms"] == "2000"
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    clock.advance(4.9)
    assert (await chat(client)).status_code == 429
    clock.advance(0.2)
    assert (await chat(client)).status_code == 200


async def test_rate_limit_fault_on_anthropic(client: httpx.AsyncClient) -> None:
    """On the Anthropic wire the 429 is a rate_limit_error with retry-after."""
    await set_faults(client, "anthropic", {"rate_limit": {"for_s": 30, "retry_after_s": 7}})
    response = await client.post("/anthropic/v1/messages", json=MESSAGE, headers=ANTHROPIC_AUTH)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["error"]["type"] == "rate_limit_error"


async def test_server_error_rate(client: httpx.AsyncClient) -> None:
    """A 5xx rate of one half fails about half the calls, with the configured status."""
    await set_faults(client, "openai", {"server_error": {"rate": 0.5, "status": 502}})
    statuses = [(await chat(client)).status_code for _ in range(200)]
    assert set(statuses) == {200, 502}
    assert 60 < statuses.count(502) < 140


async def test_server_error_body_is_openais(client: httpx.AsyncClient) -> None:
    """A certain 5xx carries OpenAI's server_error body."""
    await set_faults(client, "openai", {"server_error": {"rate": 1.0, "status": 503}})
    response = await chat(client)
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "server_error"


async def test_overloaded_is_529_on_anthropic(make_client: ClientFactory) -> None:
    """An overloaded fault set in the config answers 529 overloaded_error on Anthropic."""
    client = await make_client(
        one_provider(Wire.ANTHROPIC, Faults.model_validate({"overloaded": {"rate": 1.0}}))
    )
    response = await client.post("/anthropic/v1/messages", json=MESSAGE, headers=ANTHROPIC_AUTH)
    assert response.status_code == 529
    assert response.json() == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
        "request_id": response.headers["request-id"],
    }


async def test_overloaded_is_503_on_openai(client: httpx.AsyncClient) -> None:
    """On the OpenAI wire overloaded is a 503 server_error."""
    await set_faults(client, "openai", {"overloaded": {}})
    response = await chat(client)
    assert response.status_code == 503
    assert "overloaded" in response.json()["error"]["message"]


@pytest.mark.parametrize("status", [400, 401])
async def test_forced_status_for_count_calls(client: httpx.AsyncClient, status: int) -> None:
    """A forced status answers that status for exactly `count` calls."""
    await set_faults(client, "openai", {"forced_status": {"status": status, "count": 2}})
    statuses = [(await chat(client)).status_code for _ in range(3)]
    assert statuses == [status, status, 200]


@pytest.mark.parametrize(
    ("mode", "count", "duration"),
    [("garbage", "lots", "soon-ish"), ("negative", "-42", "-6m0s"), ("huge", None, None)],
)
async def test_bogus_openai_headers(
    client: httpx.AsyncClient, mode: str, count: str | None, duration: str | None
) -> None:
    """Bogus-header mode replaces every rate-limit header with an unusable value."""
    await set_faults(client, "openai", {"bogus_headers": {"mode": mode}})
    response = await chat(client)
    assert response.status_code == 200
    remaining = response.headers["x-ratelimit-remaining-requests"]
    reset = response.headers["x-ratelimit-reset-tokens"]
    if count is not None:
        assert (remaining, reset) == (count, duration)
    else:
        assert int(remaining) > 10**18
        assert reset.startswith("9999999h")


async def test_bogus_headers_reach_retry_after(client: httpx.AsyncClient) -> None:
    """With bogus headers a 429's retry-after is unusable too."""
    await set_faults(
        client,
        "openai",
        {"rate_limit": {"for_s": 10}, "bogus_headers": {"mode": "negative"}},
    )
    response = await chat(client)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "-42"


async def test_bogus_anthropic_reset_is_not_a_usable_time(client: httpx.AsyncClient) -> None:
    """Garbage mode on Anthropic writes reset times that do not parse."""
    await set_faults(client, "anthropic", {"bogus_headers": {"mode": "garbage"}})
    response = await client.post("/anthropic/v1/messages", json=MESSAGE, headers=ANTHROPIC_AUTH)
    assert response.headers["anthropic-ratelimit-tokens-reset"] == "next tuesday"
    assert response.headers["anthropic-ratelimit-requests-remaining"] == "lots"


async def test_hang_for_seconds_then_answers(client: httpx.AsyncClient) -> None:
    """A timed hang holds the call for its duration and then answers normally."""
    await set_faults(client, "openai", {"hang": {"for_s": 0.3}})
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await chat(client)
    assert response.status_code == 200
    assert loop.time() - started >= 0.3
    calls = (await client.get("/_sim/calls")).json()
    assert calls["providers"]["openai"]["by_status"] == {"hang": 1}


async def test_hang_until_client_times_out(live_url: LiveStarter) -> None:
    """An open-ended hang never answers: the client's read timeout fires, and the call counts."""
    base = await live_url(one_provider(Wire.OPENAI, Faults.model_validate({"hang": {}})))
    async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(0.5)) as client:
        with pytest.raises(httpx.ReadTimeout):
            await chat(client)
        calls = (await client.get("/_sim/calls")).json()
    assert calls["providers"]["openai"]["by_status"] == {"hang": 1}


async def read_stream(client: httpx.AsyncClient, received: list[str]) -> None:
    """Stream a chat completion, keeping each non-empty line as it arrives."""
    async with client.stream(
        "POST", "/openai/v1/chat/completions", json=CHAT | {"stream": True}, headers=OPENAI_AUTH
    ) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line:
                received.append(line)


async def test_stream_stalls_after_k_chunks(live_url: LiveStarter) -> None:
    """A stalled stream delivers K events, then nothing until the client's read timeout."""
    faults = Faults.model_validate({"stall_stream": {"after_chunks": 3}})
    base = await live_url(one_provider(Wire.OPENAI, faults))
    received: list[str] = []
    async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(0.5)) as client:
        with pytest.raises(httpx.ReadTimeout):
            await read_stream(client, received)
    chunks, done = openai_chunks("\n\n".join(received))
    assert len(chunks) == 3
    assert not done


async def test_timed_stall_finishes_the_stream(live_url: LiveStarter) -> None:
    """A stall with a duration pauses the Anthropic stream, which then completes."""
    faults = Faults.model_validate({"stall_stream": {"after_chunks": 2, "for_s": 0.2}})
    base = await live_url(one_provider(Wire.ANTHROPIC, faults))
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        response = await client.post(
            "/anthropic/v1/messages", json=MESSAGE | {"stream": True}, headers=ANTHROPIC_AUTH
        )
    assert anthropic_events(response.text)[-1][0] == "message_stop"
