"""Bad bytes raise the right typed InvalidEvent, fast and without large allocations."""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import tracemalloc
from pathlib import Path

import pytest
from serde_samples import ALL, FULL, REQUEST, SCOPE, sample_id

from semnexus_shared.errors import InvalidEvent, SemNexusError
from semnexus_shared.events import (
    CacheMissed,
    CompletionRequested,
    CompletionResponded,
    DeadLettered,
    Event,
    ResponseStatus,
    Usage,
)
from semnexus_shared.serde import (
    Codec,
    EventTooLarge,
    MalformedDatum,
    NotSingleObjectEncoded,
    SchemaError,
    SchemaRegistry,
    UnknownSchema,
    WrongEventType,
)

HUGE = 2**62


def _zigzag_varint(value: int) -> bytes:
    """Avro's long encoding, to hand-craft lying length prefixes."""
    n = (value << 1) ^ (value >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def test_error_tree_roots_in_invalid_event() -> None:
    """Decode errors are InvalidEvent (dead-letter) under SemNexusError; SchemaError is not."""
    for error in (
        NotSingleObjectEncoded,
        UnknownSchema,
        MalformedDatum,
        EventTooLarge,
        WrongEventType,
    ):
        assert issubclass(error, InvalidEvent)
    assert issubclass(InvalidEvent, SemNexusError)
    assert not issubclass(SchemaError, InvalidEvent)
    assert issubclass(SchemaError, SemNexusError)


@pytest.mark.parametrize("data", [b"", b"\xc3", b"\xc3\x01\x00", b"\x00\x01" + bytes(20), b"{}"])
def test_missing_marker_or_short_header(codec: Codec, data: bytes) -> None:
    """Bytes without C3 01 + 8 fingerprint bytes are NotSingleObjectEncoded."""
    with pytest.raises(NotSingleObjectEncoded):
        codec.decode(data)


def test_plain_avro_without_header_is_rejected(codec: Codec) -> None:
    """A bare datum (no single-object header) is NotSingleObjectEncoded, not misread."""
    with pytest.raises(NotSingleObjectEncoded):
        codec.decode(codec.encode(REQUEST)[10:])


def test_unknown_fingerprint(codec: Codec) -> None:
    """A header naming no kept schema is UnknownSchema, carrying the fingerprint."""
    data = b"\xc3\x01" + bytes.fromhex("0011223344556677") + codec.encode(REQUEST)[10:]
    with pytest.raises(UnknownSchema) as caught:
        codec.decode(data)
    assert caught.value.fingerprint == bytes.fromhex("0011223344556677")


@pytest.mark.parametrize("event", FULL, ids=sample_id)
def test_truncated_datum(codec: Codec, event: Event) -> None:
    """Any truncation of a valid message is MalformedDatum."""
    data = codec.encode(event)
    for end in range(10, len(data), max(1, len(data) // 97)):
        with pytest.raises(MalformedDatum):
            codec.decode(data[:end])


def test_trailing_bytes(codec: Codec) -> None:
    """Bytes after the datum make it MalformedDatum (corruption, not a newer schema)."""
    with pytest.raises(MalformedDatum, match="after the datum"):
        codec.decode(codec.encode(REQUEST) + b"\x00")


def test_out_of_range_enum_index(codec: Codec) -> None:
    """An enum index past the symbols is MalformedDatum."""
    event = CompletionResponded(
        request_id="r",
        tenant_id="t",
        status=ResponseStatus.OK,
        usage=Usage(input_tokens=0, output_tokens=0),
    )
    data = bytearray(codec.encode(event))
    header_len = 10 + sum(len(_zigzag_varint(len(s))) + len(s) for s in (event.event_id, "r", "t"))
    header_len += len(_zigzag_varint(int(event.created_at.timestamp() * 1000)))
    assert data[header_len] == 0  # status index of "ok"
    data[header_len] = 0x7E  # index 63
    with pytest.raises(MalformedDatum):
        codec.decode(bytes(data))


def test_model_validation_failure_is_malformed(codec: Codec) -> None:
    """A datum that decodes but breaks a model rule (empty tenant) is MalformedDatum."""
    schema = codec.schema_for(CompletionRequested)
    good = codec.encode(REQUEST)
    bad = REQUEST.model_construct(**(dict(REQUEST) | {"tenant_id": ""}))
    data = codec.encode(bad)
    assert data[:10] == good[:10] == schema.header
    with pytest.raises(MalformedDatum, match="validation"):
        codec.decode(data)


def test_wrong_event_type(codec: Codec) -> None:
    """A valid event of another record is WrongEventType when a type is expected."""
    with pytest.raises(WrongEventType):
        codec.decode(codec.encode(REQUEST), CompletionResponded)


def test_record_without_bound_model_is_wrong_type(registry: SchemaRegistry) -> None:
    """A codec that handles only some events refuses the others as WrongEventType."""
    narrow = Codec(registry, [CompletionResponded])
    with pytest.raises(WrongEventType):
        narrow.decode(Codec(registry).encode(REQUEST))


def test_oversized_message_is_refused_before_reading(registry: SchemaRegistry) -> None:
    """Past max_message_bytes, decode raises EventTooLarge even for garbage."""
    codec = Codec(registry, max_message_bytes=4096)
    with pytest.raises(EventTooLarge) as caught:
        codec.decode(b"\x00" * 4097)
    assert (caught.value.size, caught.value.limit) == (4097, 4096)


def test_oversized_event_is_refused_on_encode(registry: SchemaRegistry) -> None:
    """Encoding an event over the limit raises EventTooLarge instead of producing it."""
    codec = Codec(registry, max_message_bytes=4096)
    big = DeadLettered(
        payload=b"x" * 5000,
        source_topic="requests",
        source_partition=0,
        source_offset=0,
        service="s",
        error_class="E",
        reason="r",
    )
    with pytest.raises(EventTooLarge):
        codec.encode(big)


def _bombs(codec: Codec) -> dict[str, bytes]:
    """Small messages whose length prefixes claim about 2**62 bytes or items."""
    prefix = codec.schema_for(CompletionRequested).header
    # event_id is every record's first field: a string claiming 2**62 bytes
    string_bomb = prefix + _zigzag_varint(HUGE) + b"abc"
    # metadata (map, last field) empty → last byte 0x00; claim 2**62 entries instead
    request = codec.encode(REQUEST.model_copy(update={"metadata": {}}))
    assert request[-1] == 0
    map_bomb = request[:-1] + _zigzag_varint(HUGE) + b"\x02k\x02v"
    # latency (array, last field) empty; claim 2**62 stage records
    response = codec.encode(
        CompletionResponded(
            request_id="r",
            tenant_id="t",
            status=ResponseStatus.OK,
            usage=Usage(input_tokens=0, output_tokens=0),
        )
    )
    assert response[-1] == 0
    array_bomb = response[:-1] + _zigzag_varint(HUGE) + b"\x02s\x02"
    negative_block = response[:-1] + _zigzag_varint(-HUGE) + _zigzag_varint(HUGE) + b"\x02s"
    # embedding (nullable bytes, last field) null → branch 1 with 2**62 bytes
    missed = codec.encode(CacheMissed(request_id="r", tenant_id="t", request=REQUEST, scope=SCOPE))
    assert missed[-1] == 0
    bytes_bomb = missed[:-1] + b"\x02" + _zigzag_varint(HUGE) + b"abc"
    negative_len = prefix + _zigzag_varint(-5) + b"abcdefgh"
    return {
        "string": string_bomb,
        "map": map_bomb,
        "array": array_bomb,
        "negative-block": negative_block,
        "bytes": bytes_bomb,
        "negative-length": negative_len,
    }


@pytest.mark.parametrize(
    "kind", ["string", "map", "array", "negative-block", "bytes", "negative-length"]
)
def test_length_bomb_fails_fast_without_allocating(codec: Codec, kind: str) -> None:
    """A tiny message claiming a 2**62 length is MalformedDatum with under 256 KiB allocated."""
    data = _bombs(codec)[kind]
    assert len(data) < 4096
    tracemalloc.start()
    try:
        with pytest.raises(MalformedDatum):
            codec.decode(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024


def test_registry_refuses_arrays_of_zero_width_items(tmp_path: Path) -> None:
    """A schema whose array items can encode to no bytes (an endless-count bomb) fails to load."""
    root = tmp_path / "schemas" / "Bomb"
    root.mkdir(parents=True)
    schema = {
        "type": "record",
        "name": "Bomb",
        "namespace": "semnexus.v1",
        "fields": [
            {
                "name": "items",
                "type": {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "Empty",
                        "fields": [{"name": "n", "type": "null"}],
                    },
                },
            },
        ],
    }
    (root / "v1.avsc").write_text(json.dumps(schema))
    with pytest.raises(SchemaError, match="zero bytes"):
        SchemaRegistry.load(tmp_path / "schemas")


@pytest.mark.parametrize(
    ("file_name", "schema", "message"),
    [
        (
            "v1.avsc",
            {"type": "record", "name": "Other", "namespace": "semnexus.v1", "fields": []},
            "must be named",
        ),
        (
            "v1.avsc",
            {"type": "record", "name": "Thing", "namespace": "acme", "fields": []},
            "semnexus.v<MAJOR>",
        ),
        ("v1.avsc", {"type": "enum", "name": "Thing", "symbols": ["a"]}, "must be a record"),
        (
            "one.avsc",
            {"type": "record", "name": "Thing", "namespace": "semnexus.v1", "fields": []},
            "v<N>.avsc",
        ),
        (
            "v1.avsc",
            {"type": "record", "name": "Thing", "fields": [{"name": "x", "type": "nope"}]},
            "Thing",
        ),
    ],
)
def test_registry_refuses_bad_schema_files(
    tmp_path: Path, file_name: str, schema: dict[str, object], message: str
) -> None:
    """Misnamed, non-record or invalid schema files fail at load with SchemaError."""
    (tmp_path / "Thing").mkdir()
    (tmp_path / "Thing" / file_name).write_text(json.dumps(schema))
    with pytest.raises(SchemaError, match=message.replace("<", ".").replace(">", ".")):
        SchemaRegistry.load(tmp_path)


def test_registry_refuses_two_versions_with_one_fingerprint(
    tmp_path: Path, registry: SchemaRegistry
) -> None:
    """A v2 differing only in docs or defaults collides with v1's fingerprint and fails to load."""
    root = tmp_path / "schemas"
    shutil.copytree(registry.root, root)
    raw = json.loads((root / "BudgetChanged" / "v1.avsc").read_text())
    raw["doc"] = "reworded"
    (root / "BudgetChanged" / "v2.avsc").write_text(json.dumps(raw))
    with pytest.raises(SchemaError, match="same canonical form"):
        SchemaRegistry.load(root)


@pytest.mark.parametrize("event", ALL, ids=sample_id)
def test_fuzzed_bytes_only_raise_invalid_event(codec: Codec, event: Event) -> None:
    """Random corruption of a valid message decodes or raises InvalidEvent, nothing else."""
    rng = random.Random(f"{type(event).__name__}{len(codec.encode(event))}")
    data = codec.encode(event)
    for _ in range(300):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(10, len(mutated))] = rng.randrange(256)
        if rng.random() < 0.3:
            cut = rng.randrange(10, len(mutated))
            mutated[cut:cut] = b"\xff" * rng.randint(1, 12)
        with contextlib.suppress(InvalidEvent):
            codec.decode(bytes(mutated))
