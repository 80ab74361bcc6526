"""Fixtures for the simulator tests: a steppable clock, in-memory clients, and
an in-process uvicorn server for behaviour that needs a real socket (client
timeouts, streams that stall)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import TypeAlias

import httpx
import pytest
import uvicorn

from semnexus_simulator import SimulatorConfig, create_app
from tests.clocks import ManualClock

OPENAI_AUTH = {"authorization": "Bearer sk-test-123456789"}
ANTHROPIC_AUTH = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}


ClientFactory: TypeAlias = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
def clock() -> ManualClock:
    """A fresh manual clock."""
    return ManualClock()


@pytest.fixture
async def make_client(clock: ManualClock) -> AsyncIterator[ClientFactory]:
    """Build in-memory clients of a simulator app for a given config (default providers)."""
    async with AsyncExitStack() as stack:

        async def factory(config: SimulatorConfig | None = None) -> httpx.AsyncClient:
            app = create_app(config or SimulatorConfig(), clock=clock)
            transport = httpx.ASGITransport(app=app)
            return await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://sim")
            )

        yield factory


@pytest.fixture
async def client(make_client: ClientFactory) -> httpx.AsyncClient:
    """An in-memory client of the default simulator."""
    return await make_client()


@pytest.fixture
async def live_url() -> AsyncIterator[Callable[[SimulatorConfig], Awaitable[str]]]:
    """Serve a simulator on a free local port inside this event loop; yields a starter."""
    servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(config: SimulatorConfig) -> str:
        sock = socket.create_server(("127.0.0.1", 0))
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(config), log_level="warning", lifespan="off", access_log=False
            )
        )
        task = asyncio.create_task(server.serve(sockets=[sock]))
        servers.append((server, task))
        async with asyncio.timeout(10):
            # uvicorn.Server exposes readiness only as a flag.
            while not server.started:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    yield start
    for server, task in servers:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
