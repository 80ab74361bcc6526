"""The worker's decisions with scripted providers: answer, fail over, give up."""

from __future__ import annotations

from datetime import timedelta

from semnexus_provider_worker.calls import Answer, Completed, Failed, ProviderCall, RateLimits
from semnexus_provider_worker.config import HealthSettings
from semnexus_provider_worker.handlers import Dispatcher
from semnexus_provider_worker.health import HealthTracker
from semnexus_shared.events import (
    AttemptOutcome,
    CacheFilled,
    CacheMode,
    CachePolicy,
    CacheScope,
    CompletionRequested,
    CompletionResponded,
    FinishReason,
    HealthState,
    Message,
    ProviderCallRequested,
    ProviderHealthChanged,
    ResponseStatus,
    Role,
    Usage,
    UsageKind,
    UsageRecorded,
)
from semnexus_shared.replies import ReplyPolicy
from semnexus_shared.stream import Emit

from .conftest import ManualClock

SCOPE = CacheScope(
    tenant_id="acme",
    model_alias="chat",
    system_hash="s",
    history_hash="h",
    tools_format_hash="t",
    sampling_bucket="b",
)


class Scripted:
    """A provider that answers from a script and counts its calls."""

    def __init__(self, *results: Completed | Failed) -> None:
        self.results = list(results)
        self.calls: list[ProviderCall] = []

    async def complete(self, call: ProviderCall) -> Completed | Failed:
        self.calls.append(call)
        return self.results.pop(0)


def ok(finish: FinishReason = FinishReason.STOP) -> Completed:
    """A successful answer."""
    return Completed(
        Answer("Paris.", finish, Usage(input_tokens=20, output_tokens=3), "m-1"), 200, 12
    )


def limited(seconds: float = 30) -> Failed:
    """A 429 with retry-after."""
    return Failed(
        AttemptOutcome.RATE_LIMITED, "HTTP 429", 4, 429, RateLimits(retry_after_s=seconds)
    )


def call_event(clock: ManualClock, **changes: object) -> ProviderCallRequested:
    """A first-attempt call to openai with anthropic and llama behind it."""
    request = CompletionRequested(
        request_id="r1",
        tenant_id="acme",
        model_alias="chat",
        messages=(Message(role=Role.USER, content="capital of France?"),),
        reply_topic=changes.pop("reply_topic", None),  # type: ignore[arg-type]
        cache=changes.pop("cache", CachePolicy()),  # type: ignore[arg-type]
    )
    base: dict[str, object] = {
        "request_id": "r1",
        "tenant_id": "acme",
        "request": request,
        "provider": "openai",
        "model": "gpt-4o-mini",
        "chain": ("anthropic:claude", "llama:llama-8b"),
        "attempt_number": 1,
        "deadline": clock() + timedelta(seconds=30),
        "scope": SCOPE,
        "embedding": b"\x00\x00\x80?",
    }
    return ProviderCallRequested.model_validate({**base, **changes})


def dispatcher(clock: ManualClock, max_attempts: int = 3, **clients: Scripted) -> Dispatcher:
    """A dispatcher over scripted providers."""
    return Dispatcher(
        clients=clients,
        health=HealthTracker(HealthSettings(), clock),
        replies=ReplyPolicy("responses", frozenset({"app.replies"})),
        clock=clock,
        max_attempts=max_attempts,
    )


def of(out: list[object], kind: type) -> list:
    """Outcomes of one event type (responses unwrapped from their Emit)."""
    events = [o.event if isinstance(o, Emit) else o for o in out]
    return [e for e in events if isinstance(e, kind)]


async def test_success_answers_records_usage_and_fills_cache() -> None:
    """A success: ok response, one provider_call usage, a cache fill with scope and embedding."""
    clock = ManualClock()
    out = await dispatcher(clock, openai=Scripted(ok())).handle(call_event(clock))
    [response] = of(out, CompletionResponded)
    assert response.status is ResponseStatus.OK
    assert response.source.provider == "openai"
    assert response.source.model == "m-1"
    assert [a.outcome for a in response.attempts] == [AttemptOutcome.OK]
    assert response.cost_micros == 0
    [usage] = of(out, UsageRecorded)
    assert (usage.kind, usage.input_tokens, usage.output_tokens) == (UsageKind.PROVIDER_CALL, 20, 3)
    [fill] = of(out, CacheFilled)
    assert fill.scope == SCOPE
    assert fill.embedding == b"\x00\x00\x80?"
    assert fill.prompt == "capital of France?"
    assert fill.answer == "Paris."
    assert [o.topic for o in out if isinstance(o, Emit)] == ["responses"]


async def test_uncacheable_answers_are_not_filled() -> None:
    """Truncated answers and bypass requests produce no cache fill."""
    clock = ManualClock()
    truncated = await dispatcher(clock, openai=Scripted(ok(FinishReason.LENGTH))).handle(
        call_event(clock)
    )
    bypass = await dispatcher(clock, openai=Scripted(ok())).handle(
        call_event(clock, cache=CachePolicy(mode=CacheMode.BYPASS))
    )
    assert of(truncated, CacheFilled) == []
    assert of(bypass, CacheFilled) == []


async def test_429_fails_over_and_publishes_health() -> None:
    """A 429 re-publishes the call to the next provider and reports the cooldown."""
    clock = ManualClock()
    out = await dispatcher(clock, openai=Scripted(limited(30))).handle(call_event(clock))
    [nxt] = of(out, ProviderCallRequested)
    assert (nxt.provider, nxt.model, nxt.chain) == ("anthropic", "claude", ("llama:llama-8b",))
    assert (nxt.attempt_number, nxt.visited, nxt.request_id) == (2, ("openai",), "r1")
    assert [(a.provider, a.outcome, a.status_code) for a in nxt.attempts] == [
        ("openai", AttemptOutcome.RATE_LIMITED, 429)
    ]
    [health] = of(out, ProviderHealthChanged)
    assert health.state is HealthState.COOLING_DOWN
    assert health.cooldown_until == clock() + timedelta(seconds=30)
    assert of(out, CompletionResponded) == []


async def test_cooling_provider_is_not_called() -> None:
    """Once a provider is cooling down, later calls to it fail over without calling it."""
    clock = ManualClock()
    primary = Scripted(limited(30), ok())
    worker = dispatcher(clock, openai=primary)
    await worker.handle(call_event(clock))
    out = await worker.handle(call_event(clock, event_id="e2"))
    assert len(primary.calls) == 1
    assert of(out, ProviderCallRequested)[0].provider == "anthropic"
    clock.advance(31)
    out = await worker.handle(call_event(clock, event_id="e3"))
    assert len(primary.calls) == 2
    assert of(out, CompletionResponded)[0].status is ResponseStatus.OK


async def test_rejection_answers_without_failover() -> None:
    """A 400 is an invalid_request response; 401 upstream_rejected; neither fails over."""
    clock = ManualClock()
    for status, expected in [
        (400, ResponseStatus.INVALID_REQUEST),
        (401, ResponseStatus.UPSTREAM_REJECTED),
    ]:
        failure = Failed(AttemptOutcome.REJECTED, f"HTTP {status}", 3, status)
        out = await dispatcher(clock, openai=Scripted(failure)).handle(call_event(clock))
        assert of(out, ProviderCallRequested) == []
        [response] = of(out, CompletionResponded)
        assert response.status is expected


async def test_exhausted_chain_answers_with_retry_hint() -> None:
    """The last provider failing too: rate_limited_all_providers with when to retry."""
    clock = ManualClock()
    last = call_event(
        clock,
        provider="llama",
        model="llama-8b",
        chain=(),
        attempt_number=3,
        visited=("openai", "anthropic"),
    )
    out = await dispatcher(clock, llama=Scripted(limited(12))).handle(last)
    [response] = of(out, CompletionResponded)
    assert response.status is ResponseStatus.RATE_LIMITED_ALL_PROVIDERS
    assert response.retry_after_ms == 12000


async def test_attempts_are_bounded_and_providers_visited_once() -> None:
    """max_attempts stops failover; a visited provider in the chain is never called again."""
    clock = ManualClock()
    revisit = call_event(
        clock,
        chain=("openai:gpt", "anthropic:claude"),
        visited=("openai",),
        provider="llama",
        model="x",
        attempt_number=2,
    )
    failure = Failed(AttemptOutcome.SERVER_ERROR, "HTTP 500", 3, 500)
    out = await dispatcher(clock, llama=Scripted(failure)).handle(revisit)
    assert [c.provider for c in of(out, ProviderCallRequested)] == ["anthropic"]
    bounded = await dispatcher(clock, max_attempts=2, llama=Scripted(failure)).handle(revisit)
    [response] = of(bounded, CompletionResponded)
    assert response.status is ResponseStatus.PROVIDER_ERROR
    assert response.retry_after_ms is not None


async def test_past_deadline_is_not_called() -> None:
    """A call whose deadline passed is answered deadline_exceeded without a provider call."""
    clock = ManualClock()
    primary = Scripted(ok())
    event = call_event(clock, deadline=clock() - timedelta(seconds=1))
    out = await dispatcher(clock, openai=primary).handle(event)
    assert primary.calls == []
    assert of(out, CompletionResponded)[0].status is ResponseStatus.DEADLINE_EXCEEDED


async def test_failed_attempt_usage_is_recorded() -> None:
    """A failed attempt that reported usage is charged as a failed_attempt."""
    clock = ManualClock()
    failure = Failed(
        AttemptOutcome.STALLED_STREAM,
        "stalled",
        9,
        200,
        usage=Usage(input_tokens=30, output_tokens=2),
    )
    out = await dispatcher(clock, openai=Scripted(failure)).handle(call_event(clock))
    [usage] = of(out, UsageRecorded)
    assert usage.kind is UsageKind.FAILED_ATTEMPT
    assert usage.attempt_number == 1


async def test_allowed_reply_topic_is_used() -> None:
    """A request naming an allowed reply topic is answered there, any other on responses."""
    clock = ManualClock()
    allowed = await dispatcher(clock, openai=Scripted(ok())).handle(
        call_event(clock, reply_topic="app.replies")
    )
    other = await dispatcher(clock, openai=Scripted(ok())).handle(
        call_event(clock, reply_topic="somebody.else")
    )
    assert [o.topic for o in allowed if isinstance(o, Emit)] == ["app.replies"]
    assert [o.topic for o in other if isinstance(o, Emit)] == ["responses"]
