"""Realistic sample events: one fully populated and one minimal per event type."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from semnexus_shared.events import (
    AnswerSource,
    Attempt,
    AttemptOutcome,
    BudgetAction,
    BudgetChanged,
    BudgetState,
    CacheFilled,
    CacheInvalidated,
    CacheMissed,
    CacheMode,
    CachePolicy,
    CacheScope,
    CompletionRequested,
    CompletionResponded,
    DeadLettered,
    Event,
    FinishReason,
    HealthState,
    InvalidationTarget,
    Message,
    Priority,
    ProviderCallRequested,
    ProviderHealthChanged,
    ResponseStatus,
    Role,
    Sampling,
    SourceKind,
    StageLatency,
    ToolCall,
    Usage,
    UsageKind,
    UsageRecorded,
    pack_embedding,
)

NOW = datetime(2025, 6, 1, 12, 30, 15, 123000, tzinfo=UTC)
EMBEDDING = pack_embedding([i / 384 for i in range(384)])
SCOPE = CacheScope(
    tenant_id="acme",
    model_alias="chat-fast",
    system_hash="5f2b" * 16,
    history_hash="e3b0" * 16,
    tools_format_hash="0000" * 16,
    sampling_bucket="t<=0.3",
)
TOOLS_JSON = '[{"type":"function","function":{"name":"get_weather","parameters":{}}}]'

REQUEST = CompletionRequested(
    event_id="0d9f7f0e-2b7e-4c64-9d4f-1c1f3b7e9a01",
    created_at=NOW,
    request_id="req-42",
    tenant_id="acme",
    messages=(
        Message(role=Role.SYSTEM, content="You are a terse assistant."),
        Message(role=Role.USER, content="Weather in Paris?"),
        Message(
            role=Role.ASSISTANT,
            content="",
            tool_calls=(ToolCall(id="call_1", name="get_weather", arguments='{"city":"Paris"}'),),
        ),
        Message(role=Role.TOOL, content='{"temp_c":21}', tool_call_id="call_1", name="get_weather"),
        Message(role=Role.USER, content="And in Lyon — tomorrow? ☀️"),
    ),
    model_alias="chat-fast",
    sampling=Sampling(temperature=0.2, top_p=0.9, stop=("\n\n", "END")),
    max_tokens=256,
    deadline=NOW + timedelta(seconds=30),
    priority=Priority.BACKGROUND,
    cache=CachePolicy(mode=CacheMode.ONLY_EXACT, ttl_seconds=3600, min_similarity=0.93),
    tools=TOOLS_JSON,
    response_format='{"type":"json_object"}',
    reply_topic="responses.acme",
    metadata={"app": "demo", "user": "u-1"},
)
ATTEMPTS = (
    Attempt(
        provider="openai",
        model="gpt-4o-mini",
        outcome=AttemptOutcome.RATE_LIMITED,
        status_code=429,
        latency_ms=84,
        reason="retry-after 2s",
    ),
    Attempt(
        provider="anthropic", model="claude-3-5-haiku", outcome=AttemptOutcome.OK, latency_ms=912
    ),
)

FULL: tuple[Event, ...] = (
    REQUEST,
    CacheMissed(
        request_id="req-42", tenant_id="acme", request=REQUEST, scope=SCOPE, embedding=EMBEDDING
    ),
    ProviderCallRequested(
        request_id="req-42",
        tenant_id="acme",
        request=REQUEST,
        provider="anthropic",
        model="claude-3-5-haiku",
        chain=("llama-local",),
        attempts=ATTEMPTS[:1],
        visited=("openai",),
        attempt_number=2,
        deadline=NOW + timedelta(seconds=30),
        scope=SCOPE,
        embedding=EMBEDDING,
    ),
    CompletionResponded(
        request_id="req-42",
        tenant_id="acme",
        status=ResponseStatus.OK,
        text="Lyon tomorrow: sunny, 24 °C.",
        finish_reason=FinishReason.TOOL_CALLS,
        tool_calls=(ToolCall(id="call_2", name="get_weather", arguments='{"city":"Lyon"}'),),
        source=AnswerSource(
            kind=SourceKind.CACHE,
            provider="anthropic",
            model="claude-3-5-haiku",
            similarity=0.97,
            cache_entry_age_ms=65_000,
        ),
        attempts=ATTEMPTS,
        usage=Usage(input_tokens=412, output_tokens=37, cached_input_tokens=128),
        cost_micros=1_234,
        latency=(
            StageLatency(stage="cache_lookup", duration_ms=6),
            StageLatency(stage="provider", duration_ms=996),
        ),
    ),
    CacheFilled(
        request_id="req-42",
        tenant_id="acme",
        scope=SCOPE,
        prompt="And in Lyon — tomorrow? ☀️",
        embedding=EMBEDDING,
        answer="Lyon tomorrow: sunny, 24 °C.",
        finish_reason=FinishReason.STOP,
        usage=Usage(input_tokens=412, output_tokens=37),
        provider="anthropic",
        model="claude-3-5-haiku",
        ttl_seconds=3600,
    ),
    CacheInvalidated(
        request_id="req-43",
        tenant_id="acme",
        target=InvalidationTarget.ENTRY,
        scope=SCOPE,
        entry_id="entry-9",
        reason="answer reported wrong",
    ),
    UsageRecorded(
        request_id="req-42",
        tenant_id="acme",
        kind=UsageKind.PROVIDER_CALL,
        model_alias="chat-fast",
        provider="anthropic",
        model="claude-3-5-haiku",
        input_tokens=412,
        output_tokens=37,
        cached_input_tokens=128,
        cost_micros=1_234,
        attempt_number=2,
    ),
    ProviderHealthChanged(
        request_id="req-42",
        tenant_id="acme",
        provider="openai",
        state=HealthState.COOLING_DOWN,
        cooldown_until=NOW + timedelta(seconds=2),
        remaining_requests=0,
        remaining_tokens=150_000,
        reason="429 retry-after 2",
    ),
    BudgetChanged(
        request_id="req-42",
        tenant_id="acme",
        period="2025-06",
        spent_micros=9_000_000_000,
        budget_micros=10_000_000_000,
        state=BudgetState.WARNING,
        action=BudgetAction.DOWNGRADE,
        downgrade_alias="chat-cheap",
    ),
    DeadLettered(
        request_id="req-42",
        tenant_id="acme",
        payload=b"\xc3\x01garbage\x00\xff",
        key=b"req-42",
        headers={"traceparent": b"00-abc-def-01", "empty": b""},
        source_topic="requests",
        source_partition=3,
        source_offset=2**40,
        service="cache-lookup",
        error_class="UnknownSchema",
        reason="no schema with fingerprint 0011223344556677",
    ),
)

MINIMAL: tuple[Event, ...] = (
    CompletionRequested(
        request_id="r",
        tenant_id="t",
        model_alias="a",
        messages=(Message(role=Role.USER, content="hi"),),
    ),
    CompletionResponded(
        request_id="r",
        tenant_id="t",
        status=ResponseStatus.RATE_LIMITED_ALL_PROVIDERS,
        retry_after_ms=2_000,
        error_message="all providers cooling down",
        usage=Usage(input_tokens=0, output_tokens=0),
    ),
    CacheInvalidated(tenant_id="t", target=InvalidationTarget.TENANT),
    UsageRecorded(
        request_id="r",
        tenant_id="t",
        kind=UsageKind.CACHE_HIT,
        model_alias="a",
        provider="p",
        model="m",
        input_tokens=10,
        output_tokens=5,
    ),
    ProviderHealthChanged(provider="openai", state=HealthState.HEALTHY),
    BudgetChanged(
        tenant_id="t",
        period="2025-06-01",
        spent_micros=0,
        budget_micros=1,
        state=BudgetState.OK,
        action=BudgetAction.NONE,
    ),
    DeadLettered(
        payload=b"",
        source_topic="requests",
        source_partition=0,
        source_offset=0,
        service="cache-lookup",
        error_class="NotSingleObjectEncoded",
        reason="empty",
    ),
)

ALL: tuple[Event, ...] = FULL + MINIMAL
BY_NAME: dict[str, Event] = {type(event).AVRO_NAME: event for event in FULL}


def sample_id(event: Event) -> str:
    """A readable pytest id for a sample."""
    return f"{type(event).__name__}-{'full' if event in FULL else 'minimal'}"
