"""Every event schema version SemNexus knows, loaded once and indexed by fingerprint.

Contract:

- :meth:`SchemaRegistry.load` reads every ``<root>/<Record>/v<N>.avsc`` once, at
  start-up; afterwards lookups are dictionary reads and nothing is parsed again.
  ``root`` defaults to the ``schemas/`` directory of the source tree this
  package lives in; a deployment passes its own (from config).
- A file holds exactly one top-level record whose name is its directory's name
  and whose namespace is ``semnexus.v<MAJOR>``. Files of one record are its
  revisions; the highest ``N`` of a full name is its *latest* version.
- Each version's fingerprint is the CRC-64-AVRO (Rabin) of its Parsing Canonical
  Form, as 8 little-endian bytes, exactly as Avro single-object encoding puts
  it on the wire; :attr:`SchemaVersion.header` is the 10-byte prefix.
- Loading fails with :class:`~semnexus_shared.serde.errors.SchemaError` on an
  invalid file, a name/directory mismatch, two files with one fingerprint, or an
  array whose items can encode to zero bytes (a two-byte message could then
  claim 2**62 items and spin the decoder; with every item at least one byte, a
  claimed count is bounded by the bytes actually present).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastavro.schema import fingerprint as _fastavro_fingerprint
from fastavro.schema import parse_schema, to_parsing_canonical_form

from semnexus_shared.serde.errors import SchemaError, UnknownSchema

__all__ = ["MARKER", "SchemaRegistry", "SchemaVersion", "default_schemas_dir", "fingerprint_of"]

MARKER = b"\xc3\x01"
_FILE_NAME = re.compile(r"^v([1-9][0-9]*)\.avsc$")
_NAMESPACE = re.compile(r"^semnexus\.v[1-9][0-9]*$")
_PRIMITIVE_MIN_SIZE = {
    "null": 0,
    "boolean": 1,
    "int": 1,
    "long": 1,
    "float": 4,
    "double": 8,
    "bytes": 1,
    "string": 1,
}


def fingerprint_of(canonical_form: str) -> bytes:
    """CRC-64-AVRO of a Parsing Canonical Form, as the 8 little-endian wire bytes."""
    return bytes.fromhex(_fastavro_fingerprint(canonical_form, "CRC-64-AVRO"))


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One schema file: its identity, the parsed schema, and its wire header."""

    name: str
    """Full record name, e.g. ``semnexus.v1.CompletionRequested``."""
    version: int
    path: Path
    raw: Mapping[str, Any] = field(repr=False)
    """The schema exactly as written (logical types and defaults included)."""
    parsed: Any = field(repr=False)
    """fastavro's parsed form, what the codec hands to fastavro."""
    canonical_form: str = field(repr=False)
    fingerprint: bytes
    header: bytes = field(repr=False)
    """``MARKER + fingerprint``: the first 10 bytes of every message written with it."""

    @classmethod
    def from_file(cls, path: Path) -> SchemaVersion:
        """Parse one ``v<N>.avsc`` file; SchemaError when it is not a valid event schema."""
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise SchemaError(f"{path}: schema files are named v<N>.avsc")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            parsed = parse_schema(raw, named_schemas={})
            canonical = to_parsing_canonical_form(raw)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise SchemaError(f"{path}: {exc}") from exc
        if not isinstance(raw, dict) or raw.get("type") != "record":
            raise SchemaError(f"{path}: the top-level schema must be a record")
        namespace = raw.get("namespace", "")
        if raw.get("name") != path.parent.name or not _NAMESPACE.match(namespace):
            raise SchemaError(
                f"{path}: record must be named {path.parent.name!r} "
                f"in a semnexus.v<MAJOR> namespace, got {namespace}.{raw.get('name')}"
            )
        _reject_zero_width_arrays(parsed, path)
        fingerprint = fingerprint_of(canonical)
        return cls(
            name=f"{namespace}.{raw['name']}",
            version=int(match.group(1)),
            path=path,
            raw=raw,
            parsed=parsed,
            canonical_form=canonical,
            fingerprint=fingerprint,
            header=MARKER + fingerprint,
        )


class SchemaRegistry:
    """All schema versions, by fingerprint and by (name, version)."""

    def __init__(self, versions: Iterator[SchemaVersion] | list[SchemaVersion], root: Path) -> None:
        self.root = root
        self._by_fingerprint: dict[bytes, SchemaVersion] = {}
        by_name: dict[str, list[SchemaVersion]] = {}
        for version in versions:
            clash = self._by_fingerprint.get(version.fingerprint)
            if clash is not None:
                raise SchemaError(
                    f"{version.path} and {clash.path} have the same canonical form "
                    "(differ only in docs, defaults or logical types); revise one"
                )
            self._by_fingerprint[version.fingerprint] = version
            by_name.setdefault(version.name, []).append(version)
        self._by_name: dict[str, tuple[SchemaVersion, ...]] = {}
        for name, found in by_name.items():
            ordered = tuple(sorted(found, key=lambda v: v.version))
            numbers = [v.version for v in ordered]
            if len(set(numbers)) != len(numbers):
                raise SchemaError(f"{name}: two files claim one version number: {numbers}")
            self._by_name[name] = ordered

    @classmethod
    def load(cls, root: Path | None = None) -> SchemaRegistry:
        """Read and index every schema file under ``root`` (default: the repo's schemas/)."""
        root = default_schemas_dir() if root is None else root
        paths = sorted(root.glob("*/*.avsc"))
        if not paths:
            raise SchemaError(f"no schema files under {root}")
        return cls([SchemaVersion.from_file(path) for path in paths], root)

    @property
    def names(self) -> tuple[str, ...]:
        """Full names of every record, sorted."""
        return tuple(sorted(self._by_name))

    def __iter__(self) -> Iterator[SchemaVersion]:
        """Every version of every record."""
        for name in self.names:
            yield from self._by_name[name]

    def by_fingerprint(self, fingerprint: bytes) -> SchemaVersion:
        """The writer schema of a message; UnknownSchema when none has this fingerprint."""
        try:
            return self._by_fingerprint[fingerprint]
        except KeyError:
            raise UnknownSchema(fingerprint) from None

    def versions(self, name: str) -> tuple[SchemaVersion, ...]:
        """Every kept version of a record, oldest first; SchemaError for an unknown name."""
        try:
            return self._by_name[name]
        except KeyError:
            raise SchemaError(f"no schema named {name} under {self.root}") from None

    def latest(self, name: str) -> SchemaVersion:
        """The newest version of a record."""
        return self.versions(name)[-1]

    def get(self, name: str, version: int) -> SchemaVersion:
        """One particular version of a record."""
        for candidate in self.versions(name):
            if candidate.version == version:
                return candidate
        raise SchemaError(f"{name} has no version {version} under {self.root}")


def default_schemas_dir() -> Path:
    """The ``schemas/`` directory of the source tree this package was loaded from."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "schemas"
        if candidate.is_dir() and any(candidate.glob("*/v*.avsc")):
            return candidate
    raise SchemaError(
        f"no schemas/ directory above {Path(__file__).resolve()}; pass the schemas directory"
    )


def _reject_zero_width_arrays(parsed: Any, path: Path) -> None:
    """SchemaError when any array's items could encode to zero bytes (see module doc)."""
    named = parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}

    def min_size(schema: Any, seen: frozenset[str]) -> int:  # noqa: PLR0911 - one return per Avro kind
        if isinstance(schema, list):  # union: index varint + cheapest branch
            return 1 + min(min_size(branch, seen) for branch in schema)
        if isinstance(schema, str):
            if schema in _PRIMITIVE_MIN_SIZE:
                return _PRIMITIVE_MIN_SIZE[schema]
            if schema in seen:  # a recursive reference needs a union to terminate
                return 1
            return min_size(named[schema], seen | {schema})
        kind = schema["type"]
        if kind == "record":
            inner = seen | {schema["name"]}
            return sum(min_size(f["type"], inner) for f in schema["fields"])
        if kind == "array":
            if min_size(schema["items"], seen) == 0:
                raise SchemaError(f"{path}: array items can encode to zero bytes")
            return 1
        if kind in ("map", "enum"):
            min_size(schema.get("values", "null"), seen)
            return 1
        if kind == "fixed":
            return int(schema["size"])
        return min_size(kind, seen)

    min_size(parsed, frozenset())
