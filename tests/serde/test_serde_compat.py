"""Every schema's latest version reads every earlier kept version's data, and vice versa.

Generic over schemas/: a new vN file is covered without touching this module.
Synthetic revisions prove the check itself accepts a compatible change and
rejects an incompatible one.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any, ClassVar

import avro.schema
import fastavro
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from serde_samples import BY_NAME

from semnexus_shared.events import CompletionRequested
from semnexus_shared.serde import Codec, SchemaRegistry, SchemaVersion

_REGISTRY = SchemaRegistry.load()
_PAIRS = [
    (old, _REGISTRY.latest(name)) for name in _REGISTRY.names for old in _REGISTRY.versions(name)
]


def _write(schema: SchemaVersion, datum: Any) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema.parsed, datum, disable_tuple_notation=True)
    return buffer.getvalue()


def _read(data: bytes, writer: SchemaVersion, reader: SchemaVersion) -> Any:
    return fastavro.schemaless_reader(io.BytesIO(data), writer.parsed, reader.parsed)


def _added_fields_without_default(old: SchemaVersion, new: SchemaVersion) -> list[str]:
    """Fields in either record that the other lacks and that have no default, recursively."""
    problems: list[str] = []

    def walk(a: Any, b: Any, path: str) -> None:
        if (
            isinstance(a, dict)
            and isinstance(b, dict)
            and a.get("type") == b.get("type") == "record"
        ):
            a_fields = {f["name"]: f for f in a["fields"]}
            b_fields = {f["name"]: f for f in b["fields"]}
            for name in a_fields.keys() ^ b_fields.keys():
                field = a_fields.get(name) or b_fields[name]
                if "default" not in field:
                    problems.append(f"{path}.{name}")
            for name in a_fields.keys() & b_fields.keys():
                walk(a_fields[name]["type"], b_fields[name]["type"], f"{path}.{name}")
        elif isinstance(a, list) and isinstance(b, list):
            for x, y in zip(a, b, strict=False):
                walk(x, y, path)
        elif isinstance(a, dict) and isinstance(b, dict):
            for key in ("items", "values"):
                if key in a and key in b:
                    walk(a[key], b[key], f"{path}[]")

    walk(old.raw, new.raw, old.name)
    return problems


def _apache_compatible(reader: SchemaVersion, writer: SchemaVersion) -> bool:
    result = ReaderWriterCompatibilityChecker().get_compatibility(
        avro.schema.parse(json.dumps(reader.raw)), avro.schema.parse(json.dumps(writer.raw))
    )
    return result.compatibility is SchemaCompatibilityType.compatible


def assert_compatible(old: SchemaVersion, new: SchemaVersion, new_datum: dict[str, Any]) -> None:
    """``old`` and ``new`` read each other's data, and differ only by defaulted fields."""
    assert _added_fields_without_default(old, new) == []
    assert _apache_compatible(reader=new, writer=old), "new cannot read old (backward)"
    assert _apache_compatible(reader=old, writer=new), "old cannot read new (forward)"
    # forward: data written with the newest schema, read by a consumer still on `old`
    as_old = _read(_write(new, new_datum), writer=new, reader=old)
    # backward: data written by a producer still on `old`, read with the newest schema
    old_bytes = _write(old, as_old)
    as_new = _read(old_bytes, writer=old, reader=new)
    assert _read(old_bytes, writer=old, reader=old) == as_old
    old_fields = {f["name"] for f in old.raw["fields"]}
    new_defaults = {f["name"]: f.get("default") for f in new.raw["fields"]}
    for name, value in as_new.items():
        if name in old_fields:
            assert value == as_old[name], name
        else:
            assert value == new_defaults[name], name


@pytest.mark.parametrize(
    ("old", "new"), _PAIRS, ids=[f"{old.name}-v{old.version}" for old, _ in _PAIRS]
)
def test_latest_is_backward_and_forward_compatible(old: SchemaVersion, new: SchemaVersion) -> None:
    """Each kept version and the latest read each other's real sample data."""
    sample = BY_NAME[new.name]
    assert_compatible(old, new, sample.model_dump())


def _revise(tmp_path: Path, field: dict[str, Any]) -> SchemaRegistry:
    """A copy of schemas/ where CompletionRequested has a v2 with one more field."""
    root = tmp_path / "schemas"
    shutil.copytree(_REGISTRY.root, root)
    v1 = json.loads((root / "CompletionRequested" / "v1.avsc").read_text())
    v1["fields"].append(field)
    (root / "CompletionRequested" / "v2.avsc").write_text(json.dumps(v1))
    return SchemaRegistry.load(root)


class _RequestV1(CompletionRequested):
    """A consumer whose code still pins CompletionRequested v1."""

    AVRO_VERSION: ClassVar[int | None] = 1


class _RequestV2(CompletionRequested):
    """A consumer whose code already knows the v2 field."""

    region: str | None = None


def test_an_added_defaulted_field_passes_and_codecs_on_either_side_decode(tmp_path: Path) -> None:
    """With a defaulted v2 field, a v1-pinned codec reads v2 bytes and a v2 codec reads v1 bytes."""
    registry = _revise(tmp_path, {"name": "region", "type": ["null", "string"], "default": None})
    old = registry.get("semnexus.v1.CompletionRequested", 1)
    new = registry.latest("semnexus.v1.CompletionRequested")
    assert new.version == 2
    sample = BY_NAME[new.name]
    assert isinstance(sample, CompletionRequested)
    assert_compatible(old, new, sample.model_dump() | {"region": "eu-west"})

    v2_event = _RequestV2.model_validate(sample.model_dump() | {"region": "eu-west"})
    v2_bytes = Codec(registry, [_RequestV2]).encode(v2_event)
    assert v2_bytes[2:10] == new.fingerprint
    v1_reader = Codec(registry, [_RequestV1])
    assert v1_reader.decode(v2_bytes, _RequestV1).model_dump() == sample.model_dump()

    v1_bytes = v1_reader.encode(_RequestV1.model_validate(sample.model_dump()))
    assert v1_bytes[2:10] == old.fingerprint
    assert Codec(registry, [_RequestV2]).decode(v1_bytes, _RequestV2) == _RequestV2.model_validate(
        sample.model_dump() | {"region": None}
    )


def test_an_added_field_without_default_is_caught(tmp_path: Path) -> None:
    """A v2 adding a required field fails the compatibility check."""
    registry = _revise(tmp_path, {"name": "region", "type": "string"})
    old = registry.get("semnexus.v1.CompletionRequested", 1)
    new = registry.latest("semnexus.v1.CompletionRequested")
    assert _added_fields_without_default(old, new) == ["semnexus.v1.CompletionRequested.region"]
    assert not _apache_compatible(reader=new, writer=old)
    with pytest.raises(AssertionError):
        assert_compatible(old, new, BY_NAME[new.name].model_dump() | {"region": "eu"})
