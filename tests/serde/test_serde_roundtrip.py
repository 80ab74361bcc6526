"""Every event type survives encode → decode unchanged, in the single-object format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError
from serde_samples import ALL, REQUEST, sample_id

from semnexus_shared.events import (
    EVENT_TYPES,
    CompletionRequested,
    Event,
    derive_event_id,
    new_event_id,
    pack_embedding,
    unpack_embedding,
    utc_now,
)
from semnexus_shared.serde import MARKER, Codec


@pytest.mark.parametrize("event", ALL, ids=sample_id)
def test_round_trip_returns_an_equal_event(codec: Codec, event: Event) -> None:
    """decode(encode(e)) == e for every event type, fully populated and minimal."""
    decoded = codec.decode(codec.encode(event))
    assert type(decoded) is type(event)
    assert decoded == event


@pytest.mark.parametrize("event", ALL, ids=sample_id)
def test_round_trip_with_expected_type(codec: Codec, event: Event) -> None:
    """Asking for the event's own type returns it typed."""
    assert codec.decode(codec.encode(event), type(event)) == event


@pytest.mark.parametrize("event", ALL, ids=sample_id)
def test_header_is_marker_and_writer_fingerprint(codec: Codec, event: Event) -> None:
    """Bytes start with C3 01 and the 8-byte fingerprint of the latest schema version."""
    data = codec.encode(event)
    schema = codec.schema_for(type(event))
    assert schema == codec.registry.latest(type(event).AVRO_NAME)
    assert data[:2] == MARKER == b"\xc3\x01"
    assert data[2:10] == schema.fingerprint


def test_every_event_type_is_sampled() -> None:
    """The samples cover every event type, so no type escapes the round trip."""
    assert {type(event) for event in ALL} == set(EVENT_TYPES)


def test_timestamps_are_utc_millis() -> None:
    """Aware datetimes in any zone become UTC, truncated to the wire's milliseconds."""
    paris = timezone(timedelta(hours=2))
    event = CompletionRequested.model_validate(
        REQUEST.model_dump() | {"deadline": datetime(2025, 6, 1, 14, 0, 0, 123456, tzinfo=paris)}
    )
    assert event.deadline == datetime(2025, 6, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert event.deadline is not None
    assert event.deadline.utcoffset() == timedelta(0)
    assert utc_now().microsecond % 1000 == 0


def test_naive_datetime_is_rejected() -> None:
    """A naive timestamp is refused instead of being guessed at."""
    naive = datetime(2025, 6, 1)  # noqa: DTZ001 - naive on purpose
    with pytest.raises(ValidationError):
        CompletionRequested.model_validate(REQUEST.model_dump() | {"deadline": naive})


def test_events_are_frozen() -> None:
    """Models are immutable: a handler cannot edit the event it was given."""
    with pytest.raises(ValidationError):
        REQUEST.tenant_id = "other"  # type: ignore[misc]


def test_event_id_factories() -> None:
    """Fresh ids are unique; derived ids are stable per input and differ across inputs."""
    assert new_event_id() != new_event_id()
    assert derive_event_id("req-1", "openai", "1") == derive_event_id("req-1", "openai", "1")
    assert derive_event_id("req-1", "openai", "1") != derive_event_id("req-1", "openai", "2")
    assert derive_event_id("a\x1fb") == derive_event_id("a", "b")  # separator is reserved


def test_embedding_is_float32_little_endian() -> None:
    """Embeddings pack to 4 LE bytes per float and unpack back."""
    packed = pack_embedding([1.0, -0.5])
    assert packed == b"\x00\x00\x80\x3f\x00\x00\x00\xbf"
    assert unpack_embedding(packed) == [1.0, -0.5]
    with pytest.raises(ValueError, match="float32"):
        unpack_embedding(b"\x00\x00\x80")
