"""The wire format is plain Avro: Apache avro reads what we write and we read what it writes."""

from __future__ import annotations

import io
import json
from enum import Enum
from typing import Any

import avro.io
import avro.schema
import fastavro
import pytest
from serde_samples import ALL, sample_id

from semnexus_shared.events import Event
from semnexus_shared.serde import MARKER, Codec, SchemaRegistry, SchemaVersion, fingerprint_of


def _apache(schema: SchemaVersion) -> avro.schema.Schema:
    """The schema as Apache avro parses the file (logical types included)."""
    return avro.schema.parse(json.dumps(schema.raw))


def _plain(value: Any) -> Any:
    """Model dump → what Apache avro's validating writer accepts (lists, plain str)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Enum):
        return value.value
    return value


@pytest.mark.parametrize("event", ALL, ids=sample_id)
def test_apache_avro_reads_project_bytes(codec: Codec, event: Event) -> None:
    """Apache avro's DatumReader decodes our datum after a header it can verify."""
    schema = codec.schema_for(type(event))
    data = codec.encode(event)
    assert data[:2] == MARKER
    # Apache avro's own CRC-64-AVRO over the canonical form must give the header bytes.
    assert data[2:10] == avro.schema.parse(schema.canonical_form).fingerprint("CRC-64-AVRO")
    datum = avro.io.DatumReader(_apache(schema)).read(avro.io.BinaryDecoder(io.BytesIO(data[10:])))
    assert type(event).model_validate(datum) == event


@pytest.mark.parametrize("event", ALL, ids=sample_id)
def test_project_reads_apache_avro_bytes(codec: Codec, event: Event) -> None:
    """A datum written by Apache avro's DatumWriter, behind our header, decodes to the event."""
    schema = codec.schema_for(type(event))
    buffer = io.BytesIO()
    avro.io.DatumWriter(_apache(schema)).write(
        _plain(event.model_dump()), avro.io.BinaryEncoder(buffer)
    )
    data = MARKER + schema.fingerprint + buffer.getvalue()
    assert data == codec.encode(event)
    assert codec.decode(data) == event


def test_fingerprint_matches_the_spec_vector() -> None:
    """CRC-64-AVRO of the schema "null" is the spec's 0x63dd24e7cc258f8a, written little-endian."""
    assert fingerprint_of('"null"') == (0x63DD24E7CC258F8A).to_bytes(8, "little")
    assert fingerprint_of('"null"') == avro.schema.parse('"null"').fingerprint()


def test_canonical_form_strips_logical_types(registry: SchemaRegistry) -> None:
    """The canonical form drops logicalType and writes primitives bare, as the spec says.

    (Apache avro 1.12's Python canonical_form keeps ``{"type":"long"}`` for a
    logical timestamp, against the spec and Java; the fingerprint must follow the
    spec so that Java, Go and Rust writers agree with us.)
    """
    schema = registry.latest("semnexus.v1.BudgetChanged")
    assert '{"name":"created_at","type":"long"}' in schema.canonical_form
    assert "logicalType" not in schema.canonical_form
    assert "default" not in schema.canonical_form
    assert "doc" not in schema.canonical_form


def test_every_file_parses_in_both_libraries(registry: SchemaRegistry) -> None:
    """Every kept schema version is valid for Apache avro and for fastavro."""
    for schema in registry:
        _apache(schema)
        fastavro.parse_schema(dict(schema.raw), named_schemas={})
