"""Typed, frozen models of every SemNexus event, one per Avro record in ``schemas/``.

Contract:

- Each event model names the Avro record it is encoded with: ``AVRO_NAME`` is
  the record's full name (namespace ``semnexus.v1`` carries the major version)
  and ``AVRO_VERSION`` pins a ``schemas/<Record>/v<N>.avsc`` revision, or is
  ``None`` for the latest one. ``tests/serde`` proves that every model's fields
  (names, types, optionality, defaults) match its schema, so the two cannot
  drift; changing one without the other fails the suite.
- Nested records (``Message``, ``CacheScope``, ``Attempt`` …) are plain
  :class:`Record` models; only :class:`Event` subclasses travel on a topic.
- Timestamps are timezone-aware UTC datetimes truncated to milliseconds (the
  wire precision), so a decoded event equals the one that was encoded. A naive
  datetime is rejected.
- Money is integer micro-USD; counters are range-checked to the Avro ``int`` /
  ``long`` they travel as.
- ``event_id`` defaults to a random UUID and ``created_at`` to now; use
  :func:`derive_event_id` where a replayed input must produce the same id (so a
  consumer deduplicating on ``event_id`` drops the replay).
- Embeddings travel as float32 little-endian bytes: :func:`pack_embedding` and
  :func:`unpack_embedding` are the only conversions on the wire. (cache-lookup's
  vector store keeps the same layout as base64 text, read with numpy without a
  Python list: ``vectorstore.vector_text``.)
"""

from __future__ import annotations

import sys
import uuid
from array import array
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

__all__ = [
    "EVENT_TYPES",
    "AnswerSource",
    "Attempt",
    "AttemptOutcome",
    "BudgetAction",
    "BudgetChanged",
    "BudgetState",
    "CacheFilled",
    "CacheInvalidated",
    "CacheMissed",
    "CacheMode",
    "CachePolicy",
    "CacheScope",
    "CompletionRequested",
    "CompletionResponded",
    "DeadLettered",
    "Event",
    "FinishReason",
    "HealthState",
    "InvalidationTarget",
    "Message",
    "Priority",
    "ProviderCallRequested",
    "ProviderHealthChanged",
    "Record",
    "ResponseStatus",
    "Role",
    "Sampling",
    "SourceKind",
    "StageLatency",
    "ToolCall",
    "Usage",
    "UsageKind",
    "UsageRecorded",
    "derive_event_id",
    "new_event_id",
    "pack_embedding",
    "unpack_embedding",
    "utc_now",
]

NAMESPACE = "semnexus.v1"

# uuid5 namespace for derived event ids; fixed forever, changing it breaks dedupe.
_EVENT_ID_NAMESPACE = uuid.UUID("6f1b7c1e-6a43-5b9e-9a39-5e6d2c0e4a11")


def _as_utc_millis(value: datetime) -> datetime:
    """Normalise to UTC and drop sub-millisecond digits (the wire keeps millis)."""
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_as_utc_millis)]
Int32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
Count = Annotated[int, Field(ge=0, le=2**31 - 1)]
Long = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
Micros = Annotated[int, Field(ge=0, le=2**63 - 1)]
Millis = Annotated[int, Field(ge=0, le=2**63 - 1)]


def new_event_id() -> str:
    """A fresh random event id (UUID4 text)."""
    return str(uuid.uuid4())


def derive_event_id(*parts: str) -> str:
    """A stable event id (UUID5) for an event derived from ``parts``.

    The same inputs give the same id, so an event re-produced on replay (after a
    crash before the offset commit) is deduplicated by its consumer.
    """
    return str(uuid.uuid5(_EVENT_ID_NAMESPACE, "\x1f".join(parts)))


def utc_now() -> datetime:
    """Now, timezone-aware UTC, truncated to milliseconds."""
    return _as_utc_millis(datetime.now(UTC))


def pack_embedding(vector: Sequence[float]) -> bytes:
    """Encode a vector as float32 little-endian bytes (the wire form)."""
    packed = array("f", vector)
    if sys.byteorder == "big":  # pragma: no cover - no big-endian CI machine
        packed.byteswap()
    return packed.tobytes()


def unpack_embedding(data: bytes) -> list[float]:
    """Decode float32 little-endian bytes into a vector."""
    if len(data) % 4:
        raise ValueError(f"embedding of {len(data)} bytes is not a whole number of float32")
    unpacked = array("f")
    unpacked.frombytes(data)
    if sys.byteorder == "big":  # pragma: no cover - no big-endian CI machine
        unpacked.byteswap()
    return unpacked.tolist()


class Record(BaseModel):
    """Base of every model: immutable, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Event(Record):
    """A record that travels on a topic; the codec encodes it with ``AVRO_NAME``."""

    AVRO_NAME: ClassVar[str]
    AVRO_VERSION: ClassVar[int | None] = None

    event_id: str = Field(default_factory=new_event_id, min_length=1)
    created_at: UtcDatetime = Field(default_factory=utc_now)


# ── enums (values are the Avro symbols) ───────────────────────────────────────


class Role(StrEnum):
    """Author of a message."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class CacheMode(StrEnum):
    """use: read and fill; bypass: neither; refresh: fill only; only_exact: exact hits only."""

    USE = "use"
    BYPASS = "bypass"
    REFRESH = "refresh"
    ONLY_EXACT = "only_exact"


class Priority(StrEnum):
    """interactive: a user waits; background: may wait or take a cheaper chain."""

    INTERACTIVE = "interactive"
    BACKGROUND = "background"


class AttemptOutcome(StrEnum):
    """How one provider attempt ended; all but ok and rejected fail over."""

    OK = "ok"
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CONNECT_ERROR = "connect_error"
    STALLED_STREAM = "stalled_stream"
    REJECTED = "rejected"
    INTERNAL_ERROR = "internal_error"


class ResponseStatus(StrEnum):
    """ok, or an error an app can act on."""

    OK = "ok"
    INVALID_REQUEST = "invalid_request"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    RATE_LIMITED_ALL_PROVIDERS = "rate_limited_all_providers"
    PROVIDER_ERROR = "provider_error"
    BUDGET_EXCEEDED = "budget_exceeded"
    UPSTREAM_REJECTED = "upstream_rejected"
    INTERNAL_ERROR = "internal_error"


class FinishReason(StrEnum):
    """Why generation stopped."""

    STOP = "stop"
    LENGTH = "length"
    TOOL_CALLS = "tool_calls"
    CONTENT_FILTER = "content_filter"
    OTHER = "other"


class SourceKind(StrEnum):
    """Who answered: the cache or a provider."""

    CACHE = "cache"
    PROVIDER = "provider"


class InvalidationTarget(StrEnum):
    """What a cache invalidation drops."""

    TENANT = "tenant"
    SCOPE = "scope"
    ENTRY = "entry"


class UsageKind(StrEnum):
    """What a usage event's tokens are: spent, spent on a failure, or avoided."""

    PROVIDER_CALL = "provider_call"
    CACHE_HIT = "cache_hit"
    FAILED_ATTEMPT = "failed_attempt"


class HealthState(StrEnum):
    """A provider's routing state."""

    HEALTHY = "healthy"
    COOLING_DOWN = "cooling_down"
    CIRCUIT_OPEN = "circuit_open"


class BudgetState(StrEnum):
    """Where a tenant's spend stands against its budget."""

    OK = "ok"
    WARNING = "warning"
    EXCEEDED = "exceeded"


class BudgetAction(StrEnum):
    """What the router does about a tenant's budget."""

    NONE = "none"
    DOWNGRADE = "downgrade"
    REJECT = "reject"


# ── nested records ────────────────────────────────────────────────────────────


class ToolCall(Record):
    """A function call the assistant asked for; ``arguments`` is JSON text."""

    id: str
    name: str
    arguments: str


class Message(Record):
    """One turn of the conversation."""

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] | None = None
    tool_call_id: str | None = None
    name: str | None = None


class Sampling(Record):
    """Sampling parameters; ``None`` means the provider's default."""

    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()


class CachePolicy(Record):
    """How the semantic cache may serve and store a request."""

    mode: CacheMode = CacheMode.USE
    ttl_seconds: Count | None = None
    min_similarity: float | None = None


class CacheScope(Record):
    """Everything a cache entry must match exactly before similarity counts."""

    tenant_id: str
    model_alias: str
    system_hash: str
    history_hash: str
    tools_format_hash: str
    sampling_bucket: str


class Attempt(Record):
    """One call to one provider."""

    provider: str
    model: str
    outcome: AttemptOutcome
    status_code: Int32 | None = None
    latency_ms: Millis
    reason: str | None = None


class Usage(Record):
    """Token counts."""

    input_tokens: Count
    output_tokens: Count
    cached_input_tokens: Count = 0


class AnswerSource(Record):
    """Who answered: a provider, or the cache (with similarity and entry age)."""

    kind: SourceKind
    provider: str
    model: str
    similarity: float | None = None
    cache_entry_age_ms: Millis | None = None


class StageLatency(Record):
    """Time spent in one pipeline stage."""

    stage: str
    duration_ms: Millis


# ── events ────────────────────────────────────────────────────────────────────


class CompletionRequested(Event):
    """An app asks for a completion (topic ``requests``)."""

    AVRO_NAME: ClassVar[str] = f"{NAMESPACE}.CompletionRequested"

    request_id: str = Field(min_length=1)
    tenant_id: str = Field(min_length=1)
    messages: tuple[Message, ...]
    model_alias: str
    sampling: Sampling = Sampling()
    max_tokens: Count | None = None
    deadline: UtcDatetime | None = None
    priority: Priority = Priority.INTERACTIVE
    cache: CachePolicy = CachePolicy()
    tools: str | None = None
    response_format: str | None = None
    reply_topic: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class CacheMissed(Event):
    """The cache had no answer; carries the request, scope and embedding (``cache.missed``)."""

    AVRO_NAME: ClassVar[str] = f"{NAMESPACE}.CacheMissed"

    request_id: str = Field(min_length=1)
    tenant_id: str = Field(min_length=1)
    request: CompletionRequested
    scope: CacheScope
    embedding: bytes | None = None


class ProviderCallRequested(Event):
    """Call one provider for a request, with the routing so far (``provider.<name>``)."""

    AVRO_NAME: ClassVar[str] = f"{NAMESPACE}.ProviderCallRequested"

    request_id: str = Field(min_length=1)
    tenant_id: str = Field(min_length=1)
    request: CompletionRequested
    provider: str
    model: str
    chain: tuple[str, ...] = ()
    attempts: tuple[Attempt, ...] = ()
    visited: tuple[str, ...] = ()
    attempt_number: Annotated[int, Field(ge=1, le=2**31 - 1)]
    deadline: UtcDatetime
    scope: CacheScope | None = None
    embedding: bytes | None = None


class CompletionResponded(Event):
    """The answer or an actionable error (the request's reply topic, or ``responses``)."""

    AVRO_NAME: ClassVar[str] = f"{NAMESPACE}.CompletionResponded"

    request_id: str = Field(min_length=1)
    tenant_id: str = Field(min_length=1)
    status: ResponseStatus
    retry_after_ms: Millis | None = None
    error_message: str | None = None
    text: str = ""
    finish_reason: FinishReason | None = None
    tool_calls: tuple[ToolCall, ...] | None = None
    source: AnswerSource | None = None
    attempts: tuple[Attempt, ...] = ()
    usage: Usage
    cost_micros: Micros = 0
    latency: tuple[StageLatency, ...] = ()


class CacheFilled(Event):
    """A cacheable answer to store in its scope (``cache.fill``)."""

    AVRO_NAME: ClassVar[str] = f"{NAMESPACE}.CacheFilled"

    request_id: str = Field(min_length=1)
    tenant_id: str = Field(min_length=1)
    scope: CacheScope
    prompt: str
    embedding: bytes | None = None
    answer: str
    finish_reason: FinishReason
    usage: Usage
    provider: str
    model: str
    ttl_seconds: Count | None = None


class CacheInvalidated(Event):
    """Drop a tenant's entries, a scope's, or one entry (``cache.invalidate``)."""

    AVRO_NAME: ClassVar[str] = f"{NAMESPACE}.CacheInvalidated"

    request_id: str | None = None
    tenant_id: str = Field(min_length=1)
    target: InvalidationTarget
    scope: CacheScope | None = None
    entry_id: str | None = None
    reason: str = ""


class UsageRecorded(Event):
    """Tokens of one provider attempt, or avoided by one cache hit (``usage``)."""

    AVRO_NAME: ClassVar[str] = f"{NAMESPACE}.UsageRecorded"

    request_id: str = Field(min_length=1)
    tenant_id: str = Field(min_length=1)
    kind: UsageKind
    model_alias: str
    provider: str
    model: str
    input_tokens: Count
    output_tokens: Count
    cached_input_tokens: Count = 0
    cost_micros: Micros | None = None
    attempt_number: Count | None = None


class ProviderHealthChanged(Event):
    """A provider's rate-limit, cooldown or circuit state (``provider.health``)."""

    AVRO_NAME: ClassVar[str] = f"{NAMESPACE}.ProviderHealthChanged"

    request_id: str | None = None
    tenant_id: str | None = None
    provider: str
    state: HealthState
    cooldown_until: UtcDatetime | None = None
    remaining_requests: Long | None = None
    remaining_tokens: Long | None = None
    reason: str = ""


class BudgetChanged(Event):
    """A tenant's spend against its budget, and what the router should do (``budget``)."""

    AVRO_NAME: ClassVar[str] = f"{NAMESPACE}.BudgetChanged"

    request_id: str | None = None
    tenant_id: str = Field(min_length=1)
    period: str
    spent_micros: Micros
    budget_micros: Micros
    state: BudgetState
    action: BudgetAction
    downgrade_alias: str | None = None


class DeadLettered(Event):
    """A message nobody could handle, byte for byte, with the reason (``deadletter``)."""

    AVRO_NAME: ClassVar[str] = f"{NAMESPACE}.DeadLettered"

    request_id: str | None = None
    tenant_id: str | None = None
    payload: bytes
    key: bytes | None = None
    headers: dict[str, bytes] = Field(default_factory=dict)
    source_topic: str
    source_partition: Int32
    source_offset: Long
    service: str
    error_class: str
    reason: str


EVENT_TYPES: tuple[type[Event], ...] = (
    CompletionRequested,
    CacheMissed,
    ProviderCallRequested,
    CompletionResponded,
    CacheFilled,
    CacheInvalidated,
    UsageRecorded,
    ProviderHealthChanged,
    BudgetChanged,
    DeadLettered,
)
