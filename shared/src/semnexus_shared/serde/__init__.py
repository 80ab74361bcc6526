"""Avro single-object encoding of SemNexus events.

Public API::

    registry = SchemaRegistry.load()          # once, at start-up (or .load(path))
    codec = Codec(registry)                   # binds every events.EVENT_TYPES model
    data = codec.encode(event)                # C3 01 | fingerprint (8, LE) | datum
    event = codec.decode(data)                # typed model, from any kept version
    request = codec.decode(data, CompletionRequested)   # or WrongEventType

Errors (all decode errors are InvalidEvent: dead-letter, never retry)::

    SemNexusError
    ├── InvalidEvent
    │   ├── NotSingleObjectEncoded   no C3 01 marker, or shorter than the header
    │   ├── UnknownSchema            fingerprint of no schema kept in schemas/
    │   ├── MalformedDatum           datum does not decode, has trailing bytes,
    │   │                            claims more bytes than present, or fails validation
    │   ├── EventTooLarge            over max_message_bytes (checked before reading)
    │   └── WrongEventType           a valid event of another record than expected
    └── SchemaError                  bad schema file or model binding (start-up only)
"""

from semnexus_shared.serde.codec import DEFAULT_MAX_MESSAGE_BYTES, HEADER_SIZE, Codec
from semnexus_shared.serde.errors import (
    EventTooLarge,
    MalformedDatum,
    NotSingleObjectEncoded,
    SchemaError,
    UnknownSchema,
    WrongEventType,
)
from semnexus_shared.serde.registry import (
    MARKER,
    SchemaRegistry,
    SchemaVersion,
    default_schemas_dir,
    fingerprint_of,
)

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "HEADER_SIZE",
    "MARKER",
    "Codec",
    "EventTooLarge",
    "MalformedDatum",
    "NotSingleObjectEncoded",
    "SchemaError",
    "SchemaRegistry",
    "SchemaVersion",
    "UnknownSchema",
    "WrongEventType",
    "default_schemas_dir",
    "fingerprint_of",
]
