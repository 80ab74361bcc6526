"""Fixtures for the provider-worker tests: a steppable clock, the simulator in
process (in memory, or on a real socket for timeouts and stalled streams), and
adapters pointed at it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeAlias

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from semnexus_provider_worker.app import make_clients
from semnexus_provider_worker.config import (
    Provider,
    ProviderKind,
    ProviderSettings,
    RateLimitFloor,
    Timeouts,
)
from semnexus_provider_worker.transport import HttpProvider
from semnexus_simulator import SimulatorConfig, create_app
from tests.clocks import ManualClock

KINDS = {
    "openai": ProviderKind.OPENAI,
    "anthropic": ProviderKind.ANTHROPIC,
    "llama": ProviderKind.OPENAI_COMPATIBLE,
}
MODELS = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-3-5-haiku-latest",
    "llama": "meta-llama/Llama-3.1-8B-Instruct",
}


def provider(
    name: str,
    base_url: str,
    *,
    stream: bool = False,
    stall_timeout_s: float = 10.0,
    total_s: float = 60.0,
    floor: RateLimitFloor | None = None,
) -> Provider:
    """A provider entry for a simulator provider of the same name."""
    settings = ProviderSettings(
        kind=KINDS[name],
        base_url=f"{base_url}/{name}",
        timeouts=Timeouts(total_s=total_s),
        stream=stream,
        stall_timeout_s=stall_timeout_s,
        rate_limit_floor=floor or RateLimitFloor(),
    )
    key = None if name == "llama" else SecretStr(f"sk-{name}-test-key")
    return Provider(name, settings, key)


SimClients: TypeAlias = Callable[..., dict[str, HttpProvider]]


@pytest.fixture
def clock() -> ManualClock:
    """A fresh manual clock."""
    return ManualClock()


@pytest.fixture
async def sim_clients() -> AsyncIterator[
    Callable[..., tuple[httpx.ASGITransport, dict[str, HttpProvider]]]
]:
    """Build adapters for every simulator provider over an in-memory transport."""
    made: list[HttpProvider] = []

    def build(
        config: SimulatorConfig | None = None,
        clock: Callable[[], datetime] | None = None,
        sim_clock: object | None = None,
        **options: object,
    ) -> tuple[httpx.ASGITransport, dict[str, HttpProvider]]:
        app = create_app(config or SimulatorConfig(), clock=sim_clock)  # type: ignore[arg-type]
        transport = httpx.ASGITransport(app=app)
        providers = {n: provider(n, "http://sim", **options) for n in KINDS}  # type: ignore[arg-type]
        clients = make_clients(providers, clock or (lambda: datetime.now(UTC)), transport)
        made.extend(clients.values())
        return transport, clients

    yield build
    for client in made:
        await client.aclose()


@pytest.fixture
async def live_sim() -> AsyncIterator[Callable[[SimulatorConfig], Awaitable[str]]]:
    """Serve a simulator on a free local port inside this event loop; yields a starter."""
    servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(config: SimulatorConfig) -> str:
        sock = socket.create_server(("127.0.0.1", 0))
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(config),
                log_level="warning",
                lifespan="off",
                access_log=False,
                timeout_graceful_shutdown=1,
            )
        )
        task = asyncio.create_task(server.serve(sockets=[sock]))
        servers.append((server, task))
        async with asyncio.timeout(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn exposes readiness as a flag
                await asyncio.sleep(0.01)
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    yield start
    for server, task in servers:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
