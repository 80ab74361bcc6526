"""The HTTP side of every provider adapter: pooled client, timeouts, classification.

Contract: :class:`HttpProvider` implements the ``ProviderClient`` protocol for
one provider over one pooled ``httpx.AsyncClient`` (``max_in_flight``
connections), with no SDK and no retries. Its :class:`Wire` (``openai``,
``anthropic``) writes the request and parses the answer; this module does the
rest:

- timeouts come from the provider's ``Timeouts``, each lowered to the time
  left before the request's deadline; the whole call is bounded by the
  smaller of ``total_s`` and that time;
- with ``stream: true`` the answer is read as server-sent events, and a stream
  that sends nothing for ``stall_timeout_s`` is a stalled stream;
- every failure is classified here, once: 429 rate_limited; 529 overloaded;
  408, connect/read/pool timeouts and the total bound timeout; other 5xx
  server_error; a dropped connection or an unparseable 200 server_error;
  connect failures connect_error; every other 4xx (400, 401, 403, 404, 413,
  422 …) rejected.

The API key goes only into the request headers; it is never logged or put
into a reason.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import httpx
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from semnexus_provider_worker.calls import (
    Answer,
    Completed,
    Failed,
    ProviderCall,
    ProviderResult,
)
from semnexus_provider_worker.config import Provider
from semnexus_provider_worker.ratelimits import read_limits
from semnexus_shared.events import AttemptOutcome
from semnexus_shared.metrics import meter

__all__ = ["HttpProvider", "ServerEvent", "StreamParser", "Wire", "classify_status"]

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class ServerEvent:
    """One server-sent event: its ``event:`` name (if any) and its ``data:``."""

    event: str | None
    data: str


class StreamParser(Protocol):
    """Folds a provider's stream events into an answer."""

    def feed(self, event: ServerEvent) -> bool:
        """Take one event; true once the stream is complete."""
        ...

    def answer(self) -> Answer:
        """The answer so far; raises ``ValueError`` when incomplete."""
        ...

    def failure(self) -> Failed | None:
        """An error the provider reported inside the stream, if any."""
        ...


class Wire(Protocol):
    """A provider wire format: where to post, what, and how to read the answer."""

    path: str

    def headers(self, provider: Provider) -> dict[str, str]:
        """Request headers, credentials included."""
        ...

    def body(self, provider: Provider, call: ProviderCall, stream: bool) -> dict[str, object]:
        """The JSON request body."""
        ...

    def parse(self, data: object) -> Answer:
        """The answer in a JSON body; raises ``ValueError`` (or ``KeyError``/``TypeError``)."""
        ...

    def stream_parser(self) -> StreamParser:
        """A fresh parser for one streamed answer."""
        ...

    def error_reason(self, data: object) -> str:
        """A short reason from an error body (no prompt text in it)."""
        ...


def classify_status(status: int) -> AttemptOutcome:
    """The outcome of a non-2xx HTTP status."""
    if status == 429:
        return AttemptOutcome.RATE_LIMITED
    if status == 529:
        return AttemptOutcome.OVERLOADED
    if status == 408:
        return AttemptOutcome.TIMEOUT
    if status >= 500:
        return AttemptOutcome.SERVER_ERROR
    return AttemptOutcome.REJECTED


async def _server_events(lines: AsyncIterator[str]) -> AsyncIterator[ServerEvent]:
    event: str | None = None
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield ServerEvent(event, "\n".join(data))
            event, data = None, []
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
    if data:
        yield ServerEvent(event, "\n".join(data))


class _Stalled(Exception):
    """No stream event within the stall timeout."""


# GenAI semantic conventions name self-hosted OpenAI-compatible servers by what
# they are not: the generic value.
_GENAI_SYSTEM = {"openai": "openai", "anthropic": "anthropic", "openai_compatible": "_OTHER"}
_TRACER = trace.get_tracer("semnexus.provider")
_METER = meter("semnexus.provider")
_CALLS = _METER.create_counter(
    "semnexus_provider_calls", unit="1", description="provider calls by outcome"
)
_LATENCY = _METER.create_histogram(
    "semnexus_provider_latency", unit="s", description="provider call latency"
)


class HttpProvider:
    """One provider behind one pooled HTTP client."""

    def __init__(
        self,
        provider: Provider,
        wire: Wire,
        clock: Clock,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.provider = provider
        self.wire = wire
        self._clock = clock
        settings = provider.settings
        self.client = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/"),
            limits=httpx.Limits(
                max_connections=settings.max_in_flight,
                max_keepalive_connections=settings.max_in_flight,
            ),
            transport=transport,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()

    def _timeout(self, left_s: float) -> httpx.Timeout:
        t = self.provider.settings.timeouts
        return httpx.Timeout(
            connect=min(t.connect_s, left_s),
            read=min(t.read_s, left_s),
            write=min(t.write_s, left_s),
            pool=min(t.pool_s, left_s),
        )

    async def complete(self, call: ProviderCall) -> ProviderResult:
        """Call the provider once inside a GenAI client span; failures come back classified.

        The span carries the OpenTelemetry GenAI attributes (system, operation,
        request and response model, token usage) and never the prompt, the
        answer or the key.
        """
        settings = self.provider.settings
        system = _GENAI_SYSTEM.get(settings.kind.value, settings.kind.value)
        with _TRACER.start_as_current_span(
            f"chat {call.model}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.system": system,
                "gen_ai.request.model": call.model,
                "semnexus.provider": self.provider.name,
                "server.address": self.client.base_url.host,
            },
        ) as span:
            result = await self._complete(call)
            attrs = {"provider": self.provider.name, "model": call.model}
            if isinstance(result, Completed):
                usage = result.answer.usage
                span.set_attributes(
                    {
                        "gen_ai.response.model": result.answer.model,
                        "gen_ai.usage.input_tokens": usage.input_tokens,
                        "gen_ai.usage.output_tokens": usage.output_tokens,
                        "gen_ai.response.finish_reasons": [result.answer.finish_reason.value],
                        "http.response.status_code": result.status_code,
                    }
                )
                _CALLS.add(1, {**attrs, "outcome": "ok"})
            else:
                span.set_status(Status(StatusCode.ERROR, result.outcome.value))
                span.set_attribute("error.type", result.outcome.value)
                if result.status_code is not None:
                    span.set_attribute("http.response.status_code", result.status_code)
                _CALLS.add(1, {**attrs, "outcome": result.outcome.value})
            _LATENCY.record(result.latency_ms / 1000, attrs)
            return result

    async def _complete(  # noqa: PLR0911 - one return per failure class
        self, call: ProviderCall
    ) -> ProviderResult:
        started = time.perf_counter()

        def elapsed() -> int:
            return round((time.perf_counter() - started) * 1000)

        left_s = (call.deadline - self._clock()).total_seconds()
        if left_s <= 0:
            return Failed(AttemptOutcome.TIMEOUT, "deadline passed before the call", 0)
        bound_s = min(self.provider.settings.timeouts.total_s, left_s)
        stream = self.provider.settings.stream
        body = self.wire.body(self.provider, call, stream)
        headers = self.wire.headers(self.provider)
        try:
            async with asyncio.timeout(bound_s):
                if stream:
                    return await self._streamed(body, headers, self._timeout(left_s), elapsed)
                response = await self.client.post(
                    self.wire.path, json=body, headers=headers, timeout=self._timeout(left_s)
                )
                return self._answered(response, elapsed())
        except TimeoutError:
            return Failed(AttemptOutcome.TIMEOUT, f"no answer within {bound_s:.1f}s", elapsed())
        except _Stalled:
            stall = self.provider.settings.stall_timeout_s
            return Failed(
                AttemptOutcome.STALLED_STREAM, f"stream sent nothing for {stall:.1f}s", elapsed()
            )
        except httpx.ConnectTimeout:
            return Failed(AttemptOutcome.CONNECT_ERROR, "connect timed out", elapsed())
        except httpx.ConnectError as exc:
            return Failed(AttemptOutcome.CONNECT_ERROR, f"connect failed: {exc}", elapsed())
        except httpx.TimeoutException as exc:
            return Failed(AttemptOutcome.TIMEOUT, f"{type(exc).__name__}", elapsed())
        except httpx.TransportError as exc:
            return Failed(
                AttemptOutcome.SERVER_ERROR, f"connection lost: {type(exc).__name__}", elapsed()
            )

    def _limits_of(self, response: httpx.Response) -> Mapping[str, str]:
        return {k.lower(): v for k, v in response.headers.items()}

    def _answered(self, response: httpx.Response, latency_ms: int) -> ProviderResult:
        limits = read_limits(self._limits_of(response), self._clock())
        status = response.status_code
        if status >= 300:
            try:
                reason = self.wire.error_reason(response.json())
            except ValueError:
                reason = response.reason_phrase
            if status in (401, 403):
                # Providers echo part of a rejected key; keep none of it.
                reason = "authentication or permission refused"
            return Failed(
                classify_status(status),
                f"HTTP {status}: {reason}"[:300],
                latency_ms,
                status,
                limits,
            )
        try:
            answer = self.wire.parse(response.json())
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            return Failed(
                AttemptOutcome.SERVER_ERROR,
                f"unparseable answer: {type(exc).__name__}",
                latency_ms,
                status,
                limits,
            )
        return Completed(answer, status, latency_ms, limits)

    async def _streamed(
        self,
        body: dict[str, object],
        headers: dict[str, str],
        bounds: httpx.Timeout,
        elapsed: Callable[[], int],
    ) -> ProviderResult:
        stall_s = self.provider.settings.stall_timeout_s
        # The stall detector, not the read timeout, decides a quiet stream.
        timeout = httpx.Timeout(
            connect=bounds.connect, read=None, write=bounds.write, pool=bounds.pool
        )
        loop = asyncio.get_running_loop()
        async with self.client.stream(
            "POST", self.wire.path, json=body, headers=headers, timeout=timeout
        ) as response:
            limits = read_limits(self._limits_of(response), self._clock())
            status = response.status_code
            if status >= 300:
                await response.aread()
                return self._answered(response, elapsed())
            parser = self.wire.stream_parser()
            quiet = asyncio.timeout(stall_s)
            try:
                async with quiet:
                    async for event in _server_events(response.aiter_lines()):
                        quiet.reschedule(loop.time() + stall_s)
                        if parser.feed(event):
                            break
            except TimeoutError:
                if quiet.expired():
                    raise _Stalled from None
                raise
            except (json.JSONDecodeError, KeyError, TypeError, IndexError) as exc:
                return Failed(
                    AttemptOutcome.SERVER_ERROR,
                    f"unparseable stream: {type(exc).__name__}",
                    elapsed(),
                    status,
                    limits,
                )
            failure = parser.failure()
            if failure is not None:
                return Failed(
                    failure.outcome, failure.reason, elapsed(), status, limits, failure.usage
                )
            try:
                answer = parser.answer()
            except ValueError as exc:
                return Failed(
                    AttemptOutcome.SERVER_ERROR,
                    f"stream ended early: {exc}",
                    elapsed(),
                    status,
                    limits,
                )
            return Completed(answer, status, elapsed(), limits)
