"""The control API under ``/_sim``: inspect and steer the simulator at run time.

Routes (JSON in and out; a bad body is 422 ``{"detail": [...]}``, an unknown
provider 404 ``{"detail": "..."}``):

- ``GET /_sim/health``: ``{"status": "ok"}``
- ``GET /_sim/providers``: each provider's wire, models, latency, rate limit,
  faults and current rate-limit snapshot
- ``GET /_sim/providers/{name}/faults``: the active ``Faults``
- ``POST /_sim/providers/{name}/faults``: replace them with the body (a
  ``Faults`` object, e.g. ``{"rate_limit": {"for_s": 5, "retry_after_s": 2}}``);
  their timers start now
- ``DELETE /_sim/providers/{name}/faults``: clear them
- ``PUT /_sim/providers/{name}/latency``: replace the ``LatencyConfig``
- ``PUT /_sim/providers/{name}/rate_limit``: replace the ``RateLimitConfig``
  (``null`` turns bookkeeping and headers off) with a fresh window
- ``GET /_sim/calls``: the ``CallLog`` counts (see ``calls``)
- ``POST /_sim/reset``: zero the counts, clear every fault, restore configured
  latency and rate limits with fresh windows
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import TypeAlias

from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from semnexus_simulator.config import Faults, LatencyConfig, RateLimitConfig
from semnexus_simulator.state import ProviderState, Simulator

Endpoint: TypeAlias = Callable[[Request], Awaitable[Response]]

_RATE_LIMIT = TypeAdapter(RateLimitConfig | None)


def _describe(provider: ProviderState) -> dict[str, object]:
    window = provider.window
    return {
        "wire": provider.wire,
        "models": list(provider.config.models),
        "latency": provider.latency.model_dump(),
        "rate_limit": window.config.model_dump() if window is not None else None,
        "remaining": asdict(window.snapshot()) if window is not None else None,
        "faults": _faults_json(provider.faults.plan),
    }


def _faults_json(faults: BaseModel) -> dict[str, object]:
    return faults.model_dump(exclude_none=True)


def control_routes(simulator: Simulator) -> list[Route]:
    """The ``/_sim`` routes acting on ``simulator``."""

    def provider_endpoint(
        handler: Callable[[ProviderState, Request], Awaitable[Response]],
    ) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            name = request.path_params["name"]
            provider = simulator.providers.get(name)
            if provider is None:
                return JSONResponse({"detail": f"unknown provider {name!r}"}, status_code=404)
            try:
                return await handler(provider, request)
            except ValidationError as exc:
                return JSONResponse(
                    {"detail": exc.errors(include_url=False, include_context=False)},
                    status_code=422,
                )
            except ValueError:
                return JSONResponse({"detail": "body is not valid JSON"}, status_code=422)

        return endpoint

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def providers(_: Request) -> Response:
        return JSONResponse({name: _describe(p) for name, p in simulator.providers.items()})

    async def get_faults(provider: ProviderState, _: Request) -> Response:
        return JSONResponse(_faults_json(provider.faults.plan))

    async def set_faults(provider: ProviderState, request: Request) -> Response:
        provider.set_faults(Faults.model_validate(await request.json()))
        return JSONResponse(_faults_json(provider.faults.plan))

    async def clear_faults(provider: ProviderState, _: Request) -> Response:
        provider.faults.clear()
        return JSONResponse(_faults_json(provider.faults.plan))

    async def set_latency(provider: ProviderState, request: Request) -> Response:
        provider.set_latency(LatencyConfig.model_validate(await request.json()))
        return JSONResponse(provider.latency.model_dump())

    async def set_rate_limit(provider: ProviderState, request: Request) -> Response:
        provider.set_rate_limit(_RATE_LIMIT.validate_python(await request.json()))
        return JSONResponse(_describe(provider))

    async def calls(_: Request) -> Response:
        return JSONResponse(simulator.calls.as_json())

    async def reset(_: Request) -> Response:
        simulator.reset()
        return JSONResponse({"status": "reset"})

    faults_path = "/_sim/providers/{name}/faults"
    return [
        Route("/_sim/health", health, methods=["GET"]),
        Route("/_sim/providers", providers, methods=["GET"]),
        Route(faults_path, provider_endpoint(get_faults), methods=["GET"]),
        Route(faults_path, provider_endpoint(set_faults), methods=["POST", "PUT"]),
        Route(faults_path, provider_endpoint(clear_faults), methods=["DELETE"]),
        Route(
            "/_sim/providers/{name}/latency",
            provider_endpoint(set_latency),
            methods=["PUT", "POST"],
        ),
        Route(
            "/_sim/providers/{name}/rate_limit",
            provider_endpoint(set_rate_limit),
            methods=["PUT", "POST"],
        ),
        Route("/_sim/calls", calls, methods=["GET"]),
        Route("/_sim/reset", reset, methods=["POST"]),
    ]
