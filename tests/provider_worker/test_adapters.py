"""Provider adapters against the simulator: each wire format and each failure class."""

from __future__ import annotations

import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from semnexus_provider_worker.app import make_clients
from semnexus_provider_worker.calls import Completed, Failed, ProviderCall
from semnexus_provider_worker.config import HealthSettings
from semnexus_provider_worker.health import HealthTracker
from semnexus_shared.events import (
    AttemptOutcome,
    FinishReason,
    HealthState,
    Message,
    Role,
    Sampling,
)
from semnexus_simulator import Faults, ProviderConfig, SimulatorConfig, Wire

from .conftest import MODELS, provider

LiveStarter = Callable[[SimulatorConfig], Awaitable[str]]


def call(name: str, deadline_s: float = 30.0) -> ProviderCall:
    """A small completion call for a provider's model, due in ``deadline_s``."""
    return ProviderCall(
        model=MODELS[name],
        messages=(
            Message(role=Role.SYSTEM, content="Be brief."),
            Message(role=Role.USER, content="What is the capital of France?"),
        ),
        deadline=datetime.now(UTC) + timedelta(seconds=deadline_s),
        sampling=Sampling(temperature=0.0),
        max_tokens=64,
    )


async def set_faults(transport: httpx.ASGITransport, name: str, faults: dict[str, object]) -> None:
    """Steer the in-memory simulator through its control API."""
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as control:
        response = await control.post(f"/_sim/providers/{name}/faults", json=faults)
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("name", ["openai", "anthropic", "llama"])
@pytest.mark.parametrize("stream", [False, True])
async def test_each_wire_answers_with_usage_and_limits(
    sim_clients: Callable[..., tuple[httpx.ASGITransport, dict]], name: str, stream: bool
) -> None:
    """Each wire format, plain or streamed, yields text, stop, provider-reported usage."""
    _, clients = sim_clients(stream=stream)
    result = await clients[name].complete(call(name))
    assert isinstance(result, Completed), result
    assert result.answer.text
    assert result.answer.finish_reason is FinishReason.STOP
    assert result.answer.usage.input_tokens > 0
    assert result.answer.usage.output_tokens > 0
    assert result.answer.model == MODELS[name]
    if name != "llama":  # the default simulator keeps no rate window for llama
        assert result.limits.remaining_requests is not None
        assert result.limits.reset_requests_s is not None


@pytest.mark.parametrize("name", ["openai", "anthropic"])
@pytest.mark.parametrize("in_ms", [False, True])
async def test_429_carries_retry_after(
    sim_clients: Callable[..., tuple[httpx.ASGITransport, dict]], name: str, in_ms: bool
) -> None:
    """A 429 is rate_limited, and its retry-after (or retry-after-ms) is read."""
    transport, clients = sim_clients()
    await set_faults(
        transport, name, {"rate_limit": {"for_s": 60, "retry_after_s": 30, "retry_after_ms": in_ms}}
    )
    result = await clients[name].complete(call(name))
    assert isinstance(result, Failed)
    assert (result.outcome, result.status_code) == (AttemptOutcome.RATE_LIMITED, 429)
    assert result.fails_over
    assert result.limits.retry_after_s == pytest.approx(30.0)


@pytest.mark.parametrize(
    ("name", "faults", "outcome", "status"),
    [
        (
            "openai",
            {"server_error": {"rate": 1.0, "status": 502}},
            AttemptOutcome.SERVER_ERROR,
            502,
        ),
        ("llama", {"server_error": {"rate": 1.0, "status": 500}}, AttemptOutcome.SERVER_ERROR, 500),
        ("anthropic", {"overloaded": {"rate": 1.0}}, AttemptOutcome.OVERLOADED, 529),
        ("openai", {"overloaded": {"rate": 1.0}}, AttemptOutcome.SERVER_ERROR, 503),
        ("openai", {"forced_status": {"status": 408}}, AttemptOutcome.TIMEOUT, 408),
    ],
)
async def test_server_side_failures_fail_over(
    sim_clients: Callable[..., tuple[httpx.ASGITransport, dict]],
    name: str,
    faults: dict[str, object],
    outcome: AttemptOutcome,
    status: int,
) -> None:
    """5xx, 529 and 408 are classified to outcomes that fail over."""
    transport, clients = sim_clients()
    await set_faults(transport, name, faults)
    result = await clients[name].complete(call(name))
    assert isinstance(result, Failed)
    assert (result.outcome, result.status_code) == (outcome, status)
    assert result.fails_over


@pytest.mark.parametrize("status", [400, 403, 413, 422])
async def test_request_faults_are_rejected_without_failover(
    sim_clients: Callable[..., tuple[httpx.ASGITransport, dict]], status: int
) -> None:
    """400/403/413/422 are rejected: the request is at fault, no failover."""
    transport, clients = sim_clients()
    await set_faults(transport, "anthropic", {"forced_status": {"status": status}})
    result = await clients["anthropic"].complete(call("anthropic"))
    assert isinstance(result, Failed)
    assert (result.outcome, result.status_code) == (AttemptOutcome.REJECTED, status)
    assert not result.fails_over


async def test_wrong_key_is_rejected_and_not_echoed(
    sim_clients: Callable[..., tuple[httpx.ASGITransport, dict]],
) -> None:
    """A 401 is rejected, and no part of the key reaches the failure reason."""
    config = SimulatorConfig(
        providers={
            "openai": ProviderConfig(
                wire=Wire.OPENAI, auth="keys", api_keys=(SecretStr("sk-the-right-one"),)
            ),
        }
    )
    transport = httpx.ASGITransport(app=__import__("semnexus_simulator").create_app(config))
    wrong = provider("openai", "http://sim")
    clients = make_clients({"openai": wrong}, lambda: datetime.now(UTC), transport)
    result = await clients["openai"].complete(call("openai"))
    await clients["openai"].aclose()
    assert isinstance(result, Failed)
    assert (result.outcome, result.status_code) == (AttemptOutcome.REJECTED, 401)
    assert "test-key" not in result.reason
    assert "sk-" not in result.reason


async def test_hang_times_out_at_the_deadline(
    sim_clients: Callable[..., tuple[httpx.ASGITransport, dict]],
) -> None:
    """A provider that accepts and never answers is a timeout, bounded by the deadline."""
    transport, clients = sim_clients()
    await set_faults(transport, "openai", {"hang": {}})
    started = time.monotonic()
    result = await clients["openai"].complete(call("openai", deadline_s=0.3))
    assert isinstance(result, Failed)
    assert result.outcome is AttemptOutcome.TIMEOUT
    assert time.monotonic() - started < 2.0


async def test_hang_on_a_socket_times_out(live_sim: LiveStarter) -> None:
    """Over a real connection too, a hung call ends at the deadline as a timeout."""
    config = SimulatorConfig(
        providers={
            "anthropic": ProviderConfig(
                wire=Wire.ANTHROPIC, faults=Faults.model_validate({"hang": {}})
            )
        }
    )
    base = await live_sim(config)
    clients = make_clients({"anthropic": provider("anthropic", base)}, lambda: datetime.now(UTC))
    started = time.monotonic()
    result = await clients["anthropic"].complete(call("anthropic", deadline_s=0.5))
    await clients["anthropic"].aclose()
    assert isinstance(result, Failed)
    assert result.outcome is AttemptOutcome.TIMEOUT
    assert time.monotonic() - started < 3.0


@pytest.mark.parametrize("name", ["openai", "anthropic"])
async def test_stalled_stream_is_detected(live_sim: LiveStarter, name: str) -> None:
    """A stream that goes quiet mid-answer is a stalled stream after stall_timeout_s."""
    wire = Wire.ANTHROPIC if name == "anthropic" else Wire.OPENAI
    config = SimulatorConfig(
        providers={
            name: ProviderConfig(
                wire=wire, faults=Faults.model_validate({"stall_stream": {"after_chunks": 3}})
            )
        }
    )
    base = await live_sim(config)
    adapter = provider(name, base, stream=True, stall_timeout_s=0.4)
    clients = make_clients({name: adapter}, lambda: datetime.now(UTC))
    started = time.monotonic()
    result = await clients[name].complete(call(name, deadline_s=20))
    await clients[name].aclose()
    assert isinstance(result, Failed), result
    assert result.outcome is AttemptOutcome.STALLED_STREAM
    assert result.fails_over
    assert 0.3 < time.monotonic() - started < 5.0


async def test_unreachable_provider_is_a_connect_error() -> None:
    """Nothing listening on the port: connect_error, which fails over."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    clients = make_clients(
        {"openai": provider("openai", f"http://127.0.0.1:{port}")}, lambda: datetime.now(UTC)
    )
    result = await clients["openai"].complete(call("openai"))
    await clients["openai"].aclose()
    assert isinstance(result, Failed)
    assert result.outcome is AttemptOutcome.CONNECT_ERROR
    assert result.fails_over


@pytest.mark.parametrize("name", ["openai", "anthropic"])
@pytest.mark.parametrize("mode", ["garbage", "negative", "huge"])
async def test_bogus_headers_give_a_bounded_cooldown(
    sim_clients: Callable[..., tuple[httpx.ASGITransport, dict]], name: str, mode: str
) -> None:
    """Unusable retry and reset headers are ignored; the cooldown is the clamped default."""
    transport, clients = sim_clients()
    await set_faults(
        transport,
        name,
        {"rate_limit": {"for_s": 60, "retry_after_s": 5}, "bogus_headers": {"mode": mode}},
    )
    result = await clients[name].complete(call(name))
    assert isinstance(result, Failed)
    assert result.outcome is AttemptOutcome.RATE_LIMITED
    limits = result.limits
    assert limits.retry_after_s is None
    assert limits.reset_requests_s is None
    assert limits.reset_tokens_s is None
    assert limits.remaining_requests is None
    now = datetime(2026, 1, 1, tzinfo=UTC)
    settings = HealthSettings(min_cooldown_s=1, max_cooldown_s=120, default_cooldown_s=10)
    event = HealthTracker(settings, lambda: now).observe(name, result)
    assert event is not None
    assert event.state is HealthState.COOLING_DOWN
    assert event.cooldown_until == now + timedelta(seconds=10)
