"""Wiring: one Starlette app serving every configured provider and the control API.

Contract: ``create_app(config)`` mounts each provider under ``/<name>``:

- OpenAI and OpenAI-compatible: ``POST /<name>/v1/chat/completions`` and
  ``GET /<name>/v1/models``;
- Anthropic: ``POST /<name>/v1/messages``;

and the control API under ``/_sim`` (see ``control``). So a provider adapter's
base URL is ``http://HOST:PORT/<name>``. The ``Simulator`` behind the app is
``app.state.simulator``. Nothing is created at import time.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from semnexus_simulator.anthropic import AnthropicDialect
from semnexus_simulator.clock import Clock, SystemClock
from semnexus_simulator.config import SimulatorConfig, Wire
from semnexus_simulator.control import control_routes
from semnexus_simulator.exchange import Exchange
from semnexus_simulator.openai import OpenAIDialect
from semnexus_simulator.state import ProviderState, Simulator


def _openai_routes(provider: ProviderState, simulator: Simulator) -> list[BaseRoute]:
    owned_by = "openai" if provider.config.wire is Wire.OPENAI else "vllm"
    dialect = OpenAIDialect(owned_by=owned_by)
    exchange = Exchange(provider, dialect, simulator.calls, simulator.clock)

    async def models(request: Request) -> Response:
        if not provider.accepts(dialect.credentials(request.headers)):
            failure = dialect.auth_failure(dialect.credentials(request.headers))
            return JSONResponse(dialect.error_body(failure, ""), status_code=failure.status)
        return JSONResponse(dialect.models(provider.config.models, simulator.clock.now()))

    return [
        Route("/v1/chat/completions", exchange.complete, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
    ]


def _anthropic_routes(provider: ProviderState, simulator: Simulator) -> list[BaseRoute]:
    exchange = Exchange(provider, AnthropicDialect(), simulator.calls, simulator.clock)
    return [Route("/v1/messages", exchange.complete, methods=["POST"])]


def create_app(config: SimulatorConfig, *, clock: Clock | None = None) -> Starlette:
    """Build the simulator app for ``config``."""
    simulator = Simulator(config, clock or SystemClock())
    routes: list[BaseRoute] = list(control_routes(simulator))
    for name, provider in simulator.providers.items():
        provider_routes = (
            _anthropic_routes(provider, simulator)
            if provider.config.wire is Wire.ANTHROPIC
            else _openai_routes(provider, simulator)
        )
        routes.append(Mount(f"/{name}", routes=provider_routes))
    app = Starlette(routes=routes)
    app.state.simulator = simulator
    return app
