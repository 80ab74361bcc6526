"""The pydantic models and the .avsc files describe the same events, so they cannot drift."""

from __future__ import annotations

import types
from datetime import datetime
from enum import Enum, StrEnum
from typing import Annotated, Any, Union, get_args, get_origin

import pytest
from pydantic import AwareDatetime, BaseModel

from semnexus_shared.events import EVENT_TYPES, Event, Record
from semnexus_shared.serde import Codec, SchemaRegistry

_PRIMITIVES: dict[str, type] = {
    "string": str,
    "bytes": bytes,
    "int": int,
    "long": int,
    "double": float,
    "float": float,
    "boolean": bool,
}
# Fresh per event by design; the schema has no default for them.
_FACTORY_FIELDS = {"event_id", "created_at"}


def _unwrap(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _wire(value: Any) -> Any:
    """A Python default as it would appear in an .avsc default."""
    if isinstance(value, BaseModel):
        return _wire(value.model_dump())
    if isinstance(value, dict):
        return {key: _wire(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_wire(item) for item in value]
    if isinstance(value, Enum):
        return value.value
    return value


def _check_type(annotation: Any, schema: Any, named: dict[str, Any], path: str) -> None:
    annotation = _unwrap(annotation)
    if isinstance(schema, list):
        assert len(schema) == 2, f"{path}: unions are [null, T]"
        assert schema[0] == "null", f"{path}: unions are [null, T]"
        assert get_origin(annotation) in (Union, types.UnionType), f"{path}: model must be Optional"
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        assert len(args) == 1, path
        assert len(get_args(annotation)) == 2, path
        _check_type(args[0], schema[1], named, path)
        return
    assert get_origin(annotation) not in (Union, types.UnionType), (
        f"{path}: model is Optional, schema is not"
    )
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            assert annotation is _PRIMITIVES[schema], f"{path}: {annotation} vs {schema}"
        else:
            _check_type(annotation, named[schema], named, path)
        return
    if schema.get("logicalType") == "timestamp-millis":
        assert annotation in (datetime, AwareDatetime), (
            f"{path}: timestamp-millis must be a datetime"
        )
        return
    kind = schema["type"]
    if kind == "record":
        assert isinstance(annotation, type), path
        assert issubclass(annotation, Record), path
        _check_record(annotation, schema, named, path)
    elif kind == "enum":
        assert isinstance(annotation, type), path
        assert issubclass(annotation, StrEnum), path
        assert [member.value for member in annotation] == schema["symbols"], path
    elif kind == "array":
        assert get_origin(annotation) is tuple, f"{path}: arrays are tuples (immutable)"
        item, ellipsis = get_args(annotation)
        assert ellipsis is Ellipsis, path
        _check_type(item, schema["items"], named, f"{path}[]")
    elif kind == "map":
        assert get_origin(annotation) is dict, path
        key, value = get_args(annotation)
        assert key is str, path
        _check_type(value, schema["values"], named, f"{path}{{}}")
    else:
        _check_type(annotation, kind, named, path)


def _check_record(
    model: type[Record], schema: dict[str, Any], named: dict[str, Any], path: str
) -> None:
    fields = {field["name"]: field for field in schema["fields"]}
    assert set(model.model_fields) == set(fields), f"{path}: field names differ"
    for name, info in model.model_fields.items():
        field = fields[name]
        _check_type(info.annotation, field["type"], named, f"{path}.{name}")
        if "default" in field:
            assert not info.is_required(), f"{path}.{name}: schema has a default, model does not"
            assert _wire(info.get_default(call_default_factory=True)) == field["default"], (
                f"{path}.{name}: defaults differ"
            )
        elif not (issubclass(model, Event) and name in _FACTORY_FIELDS):
            assert info.is_required(), f"{path}.{name}: model has a default, schema does not"


@pytest.mark.parametrize("model", EVENT_TYPES, ids=lambda model: model.__name__)
def test_model_matches_its_schema(codec: Codec, model: type[Event]) -> None:
    """Field names, types, optionality, enum symbols and defaults equal the bound .avsc."""
    schema = codec.schema_for(model)
    named = schema.parsed["__named_schemas"]
    _check_record(model, schema.parsed, named, model.__name__)


def test_every_schema_has_an_event_type(registry: SchemaRegistry) -> None:
    """Each record in schemas/ has exactly one event model, and each model a record."""
    assert sorted(model.AVRO_NAME for model in EVENT_TYPES) == list(registry.names)


def test_shared_named_types_are_identical_across_files(registry: SchemaRegistry) -> None:
    """A nested type (Message, CacheScope …) defined in several files has one shape everywhere."""

    def strip_docs(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: strip_docs(v) for k, v in value.items() if k != "doc" and not k.startswith("__")
            }
        if isinstance(value, list):
            return [strip_docs(item) for item in value]
        return value

    seen: dict[str, tuple[str, Any]] = {}
    for name in registry.names:
        schema = registry.latest(name)
        for type_name, definition in schema.parsed["__named_schemas"].items():
            shape = strip_docs(definition)
            first = seen.setdefault(type_name, (str(schema.path), shape))
            assert first[1] == shape, f"{type_name} differs between {first[0]} and {schema.path}"
    assert "semnexus.v1.Message" in seen


def test_drift_is_detected(codec: Codec) -> None:
    """The check fails for a model with a field the schema lacks (it is not vacuous)."""
    schema = codec.schema_for(EVENT_TYPES[0])

    class Drifted(EVENT_TYPES[0]):  # type: ignore[misc,valid-type]
        extra: str = ""

    with pytest.raises(AssertionError, match="field names differ"):
        _check_record(Drifted, schema.parsed, schema.parsed["__named_schemas"], "Drifted")
