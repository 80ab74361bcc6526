"""Events ⇄ Avro single-object encoded bytes.

Contract:

- Wire format (Avro spec, "Single-object encoding"): ``C3 01``, the writer
  schema's 8-byte little-endian CRC-64-AVRO fingerprint, then the Avro binary
  datum and nothing after it. Any Avro library reads it given the schema.
- :meth:`Codec.encode` writes with the schema its model is bound to (the latest
  version of ``AVRO_NAME``, or ``AVRO_VERSION`` when the model pins one).
- :meth:`Codec.decode` finds the writer schema by fingerprint among every
  version kept in ``schemas/``, resolves it to the reader schema of the model
  bound to that record (Avro schema resolution: added fields take their
  defaults, removed ones are skipped) and returns the validated model.
- Untrusted bytes only ever raise :class:`~semnexus_shared.errors.InvalidEvent`
  subclasses (see :mod:`semnexus_shared.serde.errors`). The size limit is
  checked before anything else is read. Declared string/bytes lengths and
  array/map counts cannot allocate past the message: the datum is read from an
  in-memory buffer that returns at most what is present (a short read is a
  MalformedDatum), and the registry refuses arrays of zero-width items, so a
  claimed count is bounded by the bytes that follow.
- Schemas are parsed once, when the registry loads; encoding and decoding do no
  parsing and no file I/O.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from fastavro import schemaless_reader, schemaless_writer
from pydantic import ValidationError

from semnexus_shared.events import EVENT_TYPES, Event
from semnexus_shared.serde.errors import (
    EventTooLarge,
    MalformedDatum,
    NotSingleObjectEncoded,
    SchemaError,
    WrongEventType,
)
from semnexus_shared.serde.registry import MARKER, SchemaRegistry, SchemaVersion

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "HEADER_SIZE", "Codec"]

HEADER_SIZE = 10
# Kafka's default max.message.bytes; a larger event would be refused by the broker anyway.
DEFAULT_MAX_MESSAGE_BYTES = 1_048_576

E = TypeVar("E", bound=Event)

# What fastavro raises on bytes that do not match the writer schema (short reads,
# out-of-range enum/union indexes, invalid UTF-8, absurd varints). Found by the
# fuzz test in tests/serde; anything else is a bug and is left to crash.
_DATUM_ERRORS = (EOFError, ValueError, IndexError, KeyError, TypeError, OverflowError)


@dataclass(frozen=True, slots=True)
class _Binding:
    """A model class and the schema version it reads and writes."""

    model: type[Event]
    schema: SchemaVersion


class Codec:
    """Encodes and decodes :class:`~semnexus_shared.events.Event` models.

    Build one per process at start-up with the registry; it is immutable and
    safe to share between tasks and threads.
    """

    def __init__(
        self,
        registry: SchemaRegistry,
        event_types: Iterable[type[Event]] = EVENT_TYPES,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        if max_message_bytes <= HEADER_SIZE:
            raise ValueError("max_message_bytes must leave room for a datum")
        self.registry = registry
        self.max_message_bytes = max_message_bytes
        self._by_type: dict[type[Event], _Binding] = {}
        self._by_name: dict[str, _Binding] = {}
        for event_type in event_types:
            binding = self._bind(event_type)
            if binding.schema.name in self._by_name:
                raise SchemaError(f"two event types are bound to {binding.schema.name}")
            self._by_name[binding.schema.name] = binding

    def schema_for(self, event_type: type[Event]) -> SchemaVersion:
        """The schema version ``event_type`` is written with."""
        return self._binding(event_type).schema

    def encode(self, event: Event) -> bytes:
        """Single-object encode ``event``; EventTooLarge past the message limit."""
        schema = self._binding(type(event)).schema
        buffer = io.BytesIO()
        buffer.write(schema.header)
        schemaless_writer(buffer, schema.parsed, event.model_dump(), disable_tuple_notation=True)
        data = buffer.getvalue()
        if len(data) > self.max_message_bytes:
            raise EventTooLarge(len(data), self.max_message_bytes)
        return data

    @overload
    def decode(self, data: bytes) -> Event: ...

    @overload
    def decode(self, data: bytes, expected: type[E]) -> E: ...

    def decode(self, data: bytes, expected: type[Event] | None = None) -> Event:
        """Decode a single-object encoded event, as ``expected`` when given.

        Raises an InvalidEvent subclass for anything wrong with ``data``.
        """
        size = len(data)
        if size > self.max_message_bytes:
            raise EventTooLarge(size, self.max_message_bytes)
        if size < HEADER_SIZE or data[:2] != MARKER:
            raise NotSingleObjectEncoded(
                f"expected C3 01 and an 8-byte fingerprint, got {bytes(data[:HEADER_SIZE]).hex()}"
            )
        writer = self.registry.by_fingerprint(bytes(data[2:HEADER_SIZE]))
        if expected is None:
            binding = self._by_name.get(writer.name)
            if binding is None:
                raise WrongEventType(f"{writer.name} is not an event type this codec handles")
        else:
            binding = self._binding(expected)
            if binding.schema.name != writer.name:
                raise WrongEventType(f"expected {binding.schema.name}, got {writer.name}")
        record = self._read(data, writer, binding.schema)
        try:
            return binding.model.model_validate(record)
        except ValidationError as exc:
            raise MalformedDatum(
                f"{writer.name} v{writer.version} fails validation: {exc}"
            ) from exc

    def _read(self, data: bytes, writer: SchemaVersion, reader: SchemaVersion) -> Any:
        """The datum after the header, resolved from the writer to the reader schema."""
        buffer = io.BytesIO(data)
        buffer.seek(HEADER_SIZE)
        try:
            record = schemaless_reader(
                buffer, writer.parsed, None if reader is writer else reader.parsed
            )
        except _DATUM_ERRORS as exc:
            raise MalformedDatum(
                f"{writer.name} v{writer.version}: {type(exc).__name__}: {exc}"
            ) from exc
        if buffer.tell() != len(data):
            extra = len(data) - buffer.tell()
            raise MalformedDatum(f"{writer.name} v{writer.version}: {extra} bytes after the datum")
        return record

    def _binding(self, event_type: type[Event]) -> _Binding:
        binding = self._by_type.get(event_type)
        return binding if binding is not None else self._bind(event_type)

    def _bind(self, event_type: type[Event]) -> _Binding:
        name = getattr(event_type, "AVRO_NAME", None)
        if name is None:
            raise SchemaError(f"{event_type.__qualname__} has no AVRO_NAME")
        version = event_type.AVRO_VERSION
        schema = self.registry.latest(name) if version is None else self.registry.get(name, version)
        binding = _Binding(event_type, schema)
        self._by_type[event_type] = binding
        return binding
