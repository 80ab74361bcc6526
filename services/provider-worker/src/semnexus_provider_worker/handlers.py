"""The provider-worker's decisions: call a provider, then answer, fail over or give up.

Contract: :meth:`Dispatcher.dispatch` handles one ``ProviderCallRequested``
(no I/O of its own: providers come in as ``ProviderClient`` adapters, the
clock is injected) and returns the outcomes to publish:

- deadline passed → ``deadline_exceeded`` response, no call;
- the provider is cooling down or its circuit is open as far as this worker
  knows → no call, fail over at once;
- success → ``ok`` response (provider, model, attempts, usage,
  ``cost_micros`` 0: prices belong to the cost-ledger), one
  ``UsageRecorded`` (``provider_call``), and ``CacheFilled`` when cacheable
  (finish reason stop, no tool calls, cache mode not bypass, a scope known);
- 400/401/403/404/413/422 → ``invalid_request`` / ``upstream_rejected``
  response, no failover;
- 429, 408, 5xx, 529, timeouts, connect errors, stalled streams → the same
  request re-published to the next provider of its chain not yet visited
  (``attempt_number`` + 1, attempt appended, provider added to ``visited``),
  unless ``max_attempts`` is reached or the chain is exhausted: then an error
  response with a retry hint (``rate_limited_all_providers`` when every
  attempt was refused for load, else ``provider_error``).

Every call result also goes to the :class:`~semnexus_provider_worker.health.HealthTracker`,
whose ``ProviderHealthChanged`` (if any) is published too. A failed attempt
that reported usage gets its own ``UsageRecorded`` (``failed_attempt``).
Event ids derive from the input's, so a replay produces the same ids and
downstream dedupe holds. The call is bounded by the request deadline; a
cancelled handler leaves no state half-changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import timedelta

from semnexus_provider_worker.calls import Completed, Failed, ProviderCall, ProviderClient
from semnexus_provider_worker.errors import NotServed
from semnexus_provider_worker.health import Clock, HealthTracker
from semnexus_shared.events import (
    AnswerSource,
    Attempt,
    AttemptOutcome,
    CacheFilled,
    CacheMode,
    CompletionResponded,
    FinishReason,
    ProviderCallRequested,
    ResponseStatus,
    SourceKind,
    StageLatency,
    Usage,
    UsageKind,
    UsageRecorded,
    derive_event_id,
)
from semnexus_shared.metrics import meter
from semnexus_shared.replies import ReplyPolicy
from semnexus_shared.scope import prompt_of
from semnexus_shared.stream import Inbound, Reject

__all__ = ["Dispatcher"]

# Recorded in memory through the OpenTelemetry API (no I/O); the service exports it.
_FAILOVERS = meter("semnexus.provider").create_counter(
    "semnexus_failovers", unit="1", description="requests moved off a provider, by why"
)

_LOAD = frozenset({AttemptOutcome.RATE_LIMITED, AttemptOutcome.OVERLOADED})
_INVALID = frozenset({400, 413, 422})


def _split(entry: str) -> tuple[str, str]:
    provider, _, model = entry.partition(":")
    return provider, model


class Dispatcher:
    """Calls providers for provider-call events and decides what follows."""

    def __init__(
        self,
        *,
        clients: Mapping[str, ProviderClient],
        health: HealthTracker,
        replies: ReplyPolicy,
        clock: Clock,
        max_attempts: int = 3,
        exhausted_retry_ms: int = 1000,
    ) -> None:
        self._clients = dict(clients)
        self._health = health
        self._replies = replies
        self._clock = clock
        self._max_attempts = max_attempts
        self._exhausted_retry_ms = exhausted_retry_ms

    async def dispatch(self, inbound: Inbound[ProviderCallRequested]) -> Sequence[object]:
        """The ``for_each`` handler: outcomes of one provider call event."""
        return await self.handle(inbound.event)

    async def handle(  # noqa: PLR0911 - one return per documented outcome
        self, call: ProviderCallRequested
    ) -> list[object]:
        """Outcomes of one provider call event."""
        client = self._clients.get(call.provider)
        if client is None:
            reason = f"this worker serves no provider named {call.provider!r}"
            return [
                self._respond(call, ResponseStatus.INTERNAL_ERROR, reason),
                Reject(reason, NotServed.__name__),
            ]
        now = self._clock()
        if call.deadline <= now:
            return [
                self._respond(
                    call,
                    ResponseStatus.DEADLINE_EXCEEDED,
                    "deadline passed before the provider was called",
                )
            ]
        blocked = self._health.blocked_until(call.provider)
        if blocked is not None:
            failure = Failed(
                AttemptOutcome.RATE_LIMITED,
                f"not called: cooling down until {blocked.isoformat()}",
                0,
            )
            return self._failed_over(call, failure, [])
        result = await self._call(client, call)
        out: list[object] = []
        health = self._health.observe(call.provider, result)
        if health is not None:
            out.append(health.model_copy(update={"request_id": call.request_id}))
        if isinstance(result, Completed):
            return out + self._succeeded(call, result)
        if result.usage is not None and (result.usage.input_tokens or result.usage.output_tokens):
            out.append(self._usage(call, result.usage, UsageKind.FAILED_ATTEMPT, call.model))
        if result.outcome is AttemptOutcome.REJECTED:
            status = (
                ResponseStatus.INVALID_REQUEST
                if result.status_code in _INVALID
                else ResponseStatus.UPSTREAM_REJECTED
            )
            return [
                *out,
                self._respond(call, status, result.reason, attempt=self._attempt(call, result)),
            ]
        if not result.fails_over:
            return [
                *out,
                self._respond(
                    call,
                    ResponseStatus.PROVIDER_ERROR,
                    result.reason,
                    attempt=self._attempt(call, result),
                ),
            ]
        return self._failed_over(call, result, out)

    async def _call(
        self, client: ProviderClient, call: ProviderCallRequested
    ) -> Completed | Failed:
        request = call.request
        spec = ProviderCall(
            model=call.model,
            messages=request.messages,
            deadline=call.deadline,
            sampling=request.sampling,
            max_tokens=request.max_tokens,
            tools=request.tools,
            response_format=request.response_format,
        )
        left_s = (call.deadline - self._clock()).total_seconds()
        try:
            # The adapter bounds itself too; this bound holds whatever it does.
            async with asyncio.timeout(max(left_s, 0.0)):
                return await client.complete(spec)
        except TimeoutError:
            return Failed(
                AttemptOutcome.TIMEOUT, "deadline reached during the call", round(left_s * 1000)
            )

    def _attempt(self, call: ProviderCallRequested, result: Completed | Failed) -> Attempt:
        if isinstance(result, Completed):
            return Attempt(
                provider=call.provider,
                model=call.model,
                outcome=AttemptOutcome.OK,
                status_code=result.status_code,
                latency_ms=result.latency_ms,
            )
        return Attempt(
            provider=call.provider,
            model=call.model,
            outcome=result.outcome,
            status_code=result.status_code,
            latency_ms=max(result.latency_ms, 0),
            reason=result.reason[:300],
        )

    def _succeeded(self, call: ProviderCallRequested, done: Completed) -> list[object]:
        answer = done.answer
        model = answer.model or call.model
        response = CompletionResponded(
            event_id=derive_event_id(call.event_id, "response"),
            request_id=call.request_id,
            tenant_id=call.tenant_id,
            status=ResponseStatus.OK,
            text=answer.text,
            finish_reason=answer.finish_reason,
            tool_calls=answer.tool_calls,
            source=AnswerSource(kind=SourceKind.PROVIDER, provider=call.provider, model=model),
            attempts=(*call.attempts, self._attempt(call, done)),
            usage=answer.usage,
            cost_micros=0,
            latency=(StageLatency(stage=f"provider.{call.provider}", duration_ms=done.latency_ms),),
        )
        out: list[object] = [self._replies.reply(call.request, response)]
        if answer.usage.input_tokens or answer.usage.output_tokens:
            out.append(self._usage(call, answer.usage, UsageKind.PROVIDER_CALL, model))
        fill = self._cache_fill(call, done, model)
        if fill is not None:
            out.append(fill)
        return out

    def _cache_fill(
        self, call: ProviderCallRequested, done: Completed, model: str
    ) -> CacheFilled | None:
        answer, request = done.answer, call.request
        if (
            call.scope is None
            or answer.finish_reason is not FinishReason.STOP
            or answer.tool_calls
            or request.cache.mode is CacheMode.BYPASS
        ):
            return None
        return CacheFilled(
            event_id=derive_event_id(call.event_id, "cache-fill"),
            request_id=call.request_id,
            tenant_id=call.tenant_id,
            scope=call.scope,
            prompt=prompt_of(request),
            embedding=call.embedding,
            answer=answer.text,
            finish_reason=answer.finish_reason,
            usage=answer.usage,
            provider=call.provider,
            model=model,
            ttl_seconds=request.cache.ttl_seconds,
        )

    def _usage(
        self, call: ProviderCallRequested, usage: Usage, kind: UsageKind, model: str
    ) -> UsageRecorded:
        return UsageRecorded(
            event_id=derive_event_id(call.event_id, "usage"),
            request_id=call.request_id,
            tenant_id=call.tenant_id,
            kind=kind,
            model_alias=call.request.model_alias,
            provider=call.provider,
            model=model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            cost_micros=None,
            attempt_number=call.attempt_number,
        )

    def _failed_over(
        self, call: ProviderCallRequested, failure: Failed, out: list[object]
    ) -> list[object]:
        _FAILOVERS.add(1, {"provider": call.provider, "outcome": failure.outcome.value})
        attempt = self._attempt(call, failure)
        visited = (*call.visited, call.provider)
        attempts = (*call.attempts, attempt)
        now = self._clock()
        if call.deadline <= now:
            return [
                *out,
                self._respond(
                    call,
                    ResponseStatus.DEADLINE_EXCEEDED,
                    f"deadline passed after {failure.reason}",
                    attempt=attempt,
                ),
            ]
        rest = list(call.chain)
        while rest and _split(rest[0])[0] in visited:
            rest.pop(0)
        if rest and call.attempt_number < self._max_attempts:
            provider, model = _split(rest.pop(0))
            return [
                *out,
                ProviderCallRequested(
                    event_id=derive_event_id(call.event_id, "failover"),
                    request_id=call.request_id,
                    tenant_id=call.tenant_id,
                    request=call.request,
                    provider=provider,
                    model=model,
                    chain=tuple(rest),
                    attempts=attempts,
                    visited=visited,
                    attempt_number=call.attempt_number + 1,
                    deadline=call.deadline,
                    scope=call.scope,
                    embedding=call.embedding,
                ),
            ]
        return [*out, self._exhausted(call, attempts, visited)]

    def _exhausted(
        self, call: ProviderCallRequested, attempts: tuple[Attempt, ...], visited: tuple[str, ...]
    ) -> object:
        now = self._clock()
        ends = [u for p in visited if (u := self._health.blocked_until(p)) is not None]
        retry_ms = (
            max(round((min(ends) - now) / timedelta(milliseconds=1)), 1)
            if ends
            else self._exhausted_retry_ms
        )
        all_load = all(a.outcome in _LOAD for a in attempts)
        status = (
            ResponseStatus.RATE_LIMITED_ALL_PROVIDERS if all_load else ResponseStatus.PROVIDER_ERROR
        )
        summary = "; ".join(f"{a.provider}: {a.outcome.value}" for a in attempts)
        return self._replies.error(
            call.request,
            caused_by=call.event_id,
            status=status,
            message=f"no provider answered ({summary})",
            retry_after_ms=retry_ms,
            attempts=attempts,
        )

    def _respond(
        self,
        call: ProviderCallRequested,
        status: ResponseStatus,
        message: str,
        *,
        attempt: Attempt | None = None,
    ) -> object:
        attempts = (*call.attempts, attempt) if attempt is not None else call.attempts
        return self._replies.error(
            call.request,
            caused_by=call.event_id,
            status=status,
            message=message,
            attempts=attempts,
        )
