"""One completion call, from request to response, whatever the wire format.

Contract: ``complete()`` is the endpoint behind ``/v1/chat/completions`` and
``/v1/messages``. In order, it:

1. counts the call (provider, the body's model, outcome) exactly once;
2. checks the wire's required headers and the API key (400 / 401);
3. validates the body (400);
4. asks the fault plan (forced status, hang, 429, overloaded, 5xx);
5. takes the prompt from the rate window, answering a real 429 with
   ``retry-after`` when the window is exhausted;
6. generates the deterministic answer, charges its tokens, waits the sampled
   latency, and answers JSON or an SSE stream (pausing ``inter_chunk_ms``
   between events and stalling where a ``stall_stream`` fault says).

Every error is a ``ProviderError`` rendered by the wire's ``Dialect``; the
rate-limit headers (real or bogus) and the request id ride on every answer.
A hang or stall ends when its time is up or the client disconnects, so a
hung call never outlives its client.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive

from semnexus_simulator import generator
from semnexus_simulator.calls import CallLog
from semnexus_simulator.clock import Clock
from semnexus_simulator.config import Wire
from semnexus_simulator.errors import ErrorKind, ProviderError
from semnexus_simulator.faults import Hang, bogus_value
from semnexus_simulator.generator import Answer
from semnexus_simulator.ratelimit import Snapshot
from semnexus_simulator.state import ProviderState

_CACHE_MIN_TOKENS = 1024
_CACHE_BLOCK = 128


@dataclass(frozen=True, slots=True)
class Prompt:
    """A validated request, independent of its wire format."""

    model: str
    turns: tuple[tuple[str, str], ...]
    max_tokens: int | None
    stream: bool
    include_usage: bool
    input_tokens: int
    cache_marked: bool = False


@dataclass(frozen=True, slots=True)
class Completion:
    """Everything a dialect needs to write a successful answer."""

    prompt: Prompt
    answer: Answer
    cached_tokens: int
    created: datetime


class Dialect(Protocol):
    """A provider's wire format: how it reads requests and writes answers."""

    def new_request_id(self) -> str:
        """A fresh request id in the provider's style."""
        ...

    def request_id_headers(self, request_id: str) -> dict[str, str]:
        """The header(s) carrying the request id."""
        ...

    def credentials(self, headers: Headers) -> str | None:
        """The API key the caller sent, if any; raises 400 on missing required headers."""
        ...

    def auth_failure(self, key: str | None) -> ProviderError:
        """The 401 for a missing or wrong key."""
        ...

    def parse(self, body: object) -> Prompt:
        """Validate a request body; raises ``ProviderError`` (400)."""
        ...

    def cached_tokens(self, prompt: Prompt, seen_before: bool) -> int:
        """Input tokens served from the provider's prompt cache."""
        ...

    def limit_headers(self, snapshot: Snapshot, now: datetime) -> dict[str, str]:
        """The rate-limit headers for a budget snapshot."""
        ...

    def bogus_limit_headers(self, mode: str) -> dict[str, str]:
        """The rate-limit headers with unusable values."""
        ...

    def body(self, completion: Completion) -> dict[str, object]:
        """The JSON body of a non-streamed answer."""
        ...

    def events(self, completion: Completion) -> list[bytes]:
        """The SSE frames of a streamed answer, in order."""
        ...

    def error_body(self, failure: ProviderError, request_id: str) -> dict[str, object]:
        """The JSON body of an error answer."""
        ...


def cacheable_prefix(input_tokens: int) -> int:
    """Tokens a prompt cache serves for a repeated prompt (0 below 1024 tokens)."""
    if input_tokens < _CACHE_MIN_TOKENS:
        return 0
    return input_tokens // _CACHE_BLOCK * _CACHE_BLOCK


async def wait_for_disconnect(receive: Receive, timeout_s: float | None) -> bool:
    """Wait until the client disconnects (true) or ``timeout_s`` passes (false)."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    try:
        await asyncio.wait_for(disconnected(), timeout_s)
    except TimeoutError:
        return False
    return True


def _model_of(body: object) -> str:
    if isinstance(body, Mapping):
        model = body.get("model")
        if isinstance(model, str) and model:
            return model
    return "unknown"


def _retry_headers(failure: ProviderError, bogus: str | None) -> dict[str, str]:
    if failure.retry_after_s is None:
        return {}
    if bogus is not None:
        value = bogus_value(bogus, "int")
        return {"retry-after": value, "retry-after-ms": value}
    headers = {"retry-after": str(max(math.ceil(failure.retry_after_s), 0))}
    if failure.retry_after_ms:
        headers["retry-after-ms"] = str(round(failure.retry_after_s * 1000))
    return headers


class Exchange:
    """The completion endpoint of one provider."""

    def __init__(
        self, provider: ProviderState, dialect: Dialect, calls: CallLog, clock: Clock
    ) -> None:
        self.provider = provider
        self.dialect = dialect
        self.calls = calls
        self.clock = clock

    def _limit_headers(self) -> dict[str, str]:
        bogus = self.provider.faults.bogus_headers
        if bogus is not None:
            return self.dialect.bogus_limit_headers(bogus.mode)
        window = self.provider.window
        if window is None:
            return {}
        return self.dialect.limit_headers(window.snapshot(), self.clock.now())

    def _refuse_if_exhausted(self, prompt: Prompt) -> None:
        window = self.provider.window
        if window is None:
            return
        refusal = window.admit(prompt.input_tokens)
        if refusal is None:
            return
        wait_s = max(refusal.retry_after_s, 0.001)
        raise ProviderError(
            429,
            ErrorKind.RATE_LIMIT,
            f"Rate limit reached for {prompt.model} on {refusal.dimension} per window: "
            f"Limit {refusal.limit}, Used {refusal.used}, Requested "
            f"{1 if refusal.dimension == 'requests' else prompt.input_tokens}. "
            f"Please try again in {wait_s:.3f}s.",
            code="rate_limit_exceeded",
            limit=refusal.dimension,
            retry_after_s=wait_s,
            retry_after_ms=self.provider.config.wire is not Wire.ANTHROPIC,
        )

    async def complete(self, request: Request) -> Response:
        """Serve one completion call."""
        request_id = self.dialect.new_request_id()
        try:
            body: object = await request.json()
        except ValueError:
            body = None
        model = _model_of(body)
        try:
            key = self.dialect.credentials(request.headers)
            if not self.provider.accepts(key):
                raise self.dialect.auth_failure(key)
            prompt = self.dialect.parse(body)
            verdict = self.provider.faults.decide(self.provider.config.wire)
            if isinstance(verdict, ProviderError):
                raise verdict
            self._refuse_if_exhausted(prompt)
        except ProviderError as failure:
            self.calls.record(self.provider.name, model, str(failure.status))
            return self._failure(failure, request_id)
        if isinstance(verdict, Hang):
            self.calls.record(self.provider.name, model, "hang")
            if await wait_for_disconnect(request.receive, verdict.for_s):
                return Response(status_code=499)
        else:
            self.calls.record(self.provider.name, model, "200")
        return await self._answer(prompt, request_id)

    def _failure(self, failure: ProviderError, request_id: str) -> Response:
        bogus = self.provider.faults.bogus_headers
        headers = {
            **self.dialect.request_id_headers(request_id),
            **self._limit_headers(),
            **_retry_headers(failure, bogus.mode if bogus is not None else None),
        }
        return JSONResponse(
            self.dialect.error_body(failure, request_id),
            status_code=failure.status,
            headers=headers,
        )

    async def _answer(self, prompt: Prompt, request_id: str) -> Response:
        key = generator.prompt_key(prompt.turns)
        answer = generator.answer(key, prompt.max_tokens)
        seen = self.provider.remember(f"{prompt.model}\x00{key}")
        completion = Completion(
            prompt=prompt,
            answer=answer,
            cached_tokens=self.dialect.cached_tokens(prompt, seen),
            created=self.clock.now(),
        )
        if self.provider.window is not None:
            self.provider.window.charge(answer.output_tokens)
        delay_s = self.provider.first_byte_delay_s()
        await asyncio.sleep(delay_s)
        headers = {
            **self.dialect.request_id_headers(request_id),
            **self._limit_headers(),
        }
        if not prompt.stream:
            return JSONResponse(self.dialect.body(completion), headers=headers)
        headers["cache-control"] = "no-cache"
        return StreamingResponse(
            self._paced(self.dialect.events(completion)),
            media_type="text/event-stream",
            headers=headers,
        )

    async def _paced(self, frames: list[bytes]) -> AsyncIterator[bytes]:
        stall = self.provider.faults.stall
        gap_s = self.provider.inter_chunk_delay_s()
        for index, frame in enumerate(frames):
            if stall is not None and index == stall.after_chunks:
                # Starlette cancels this generator when the client disconnects.
                if stall.for_s is None:
                    await asyncio.Event().wait()
                await asyncio.sleep(stall.for_s or 0)
            elif index and gap_s:
                await asyncio.sleep(gap_s)
            yield frame
