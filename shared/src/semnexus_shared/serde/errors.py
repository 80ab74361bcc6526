"""Errors of the serde layer.

Everything raised while decoding untrusted bytes is an
:class:`~semnexus_shared.errors.InvalidEvent` (dead-letter, never retry)::

    SemNexusError
    ├── InvalidEvent
    │   ├── NotSingleObjectEncoded   shorter than the 10-byte header, or no C3 01 marker
    │   ├── UnknownSchema            the fingerprint matches no schema under schemas/
    │   ├── MalformedDatum           truncated, trailing bytes, bad varint/enum/union
    │   │                            index, a length past the end, or a model rejects it
    │   ├── EventTooLarge            over the codec's max message size (checked first)
    │   └── WrongEventType           decodes fine but is not the record asked for
    └── SchemaError                  schemas/ or a model binding is wrong: raised at
                                     start-up, never while handling an event
"""

from __future__ import annotations

from semnexus_shared.errors import InvalidEvent, SemNexusError

__all__ = [
    "EventTooLarge",
    "MalformedDatum",
    "NotSingleObjectEncoded",
    "SchemaError",
    "UnknownSchema",
    "WrongEventType",
]


class NotSingleObjectEncoded(InvalidEvent):
    """The bytes do not start with an Avro single-object header (C3 01 + fingerprint)."""


class UnknownSchema(InvalidEvent):
    """The writer fingerprint matches none of the schema versions kept in schemas/."""

    def __init__(self, fingerprint: bytes) -> None:
        super().__init__(f"no schema with fingerprint {fingerprint.hex()}")
        self.fingerprint = fingerprint


class MalformedDatum(InvalidEvent):
    """The datum after the header does not decode with its writer schema, or fails validation."""


class EventTooLarge(InvalidEvent):
    """The message is larger than the codec's limit."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message of {size} bytes exceeds the {limit}-byte limit")
        self.size = size
        self.limit = limit


class WrongEventType(InvalidEvent):
    """A well-formed event of another record than the one the caller expects."""


class SchemaError(SemNexusError):
    """A schema file or a model's schema binding is invalid; fatal at start-up."""
