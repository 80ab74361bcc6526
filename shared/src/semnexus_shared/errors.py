"""The root of every exception SemNexus raises on purpose.

The class an error belongs to says what the stream runner does with the event
that caused it::

    SemNexusError                 root; anything else derived from it and not
    │                             listed here crashes the consumer with the
    │                             offset uncommitted (the supervisor restarts it)
    ├── TransientError            a dependency is briefly unavailable: the
    │                             runner retries with bounded back-off, then
    │                             crashes as below
    ├── PipelineCrashed           the runner gives up on a batch: the process
    │                             exits with the batch's offsets uncommitted
    ├── serde.SchemaError         a bad schema file or model binding, at start-up
    └── InvalidEvent              bad input: dead-lettered, never retried
        ├── serde.NotSingleObjectEncoded   no C3 01 marker / shorter than a header
        ├── serde.UnknownSchema            fingerprint of no schema in schemas/
        ├── serde.MalformedDatum           datum does not decode or validate
        ├── serde.EventTooLarge            over the configured message size
        └── serde.WrongEventType           a valid event, not the type expected

Subpackages root their own errors here and document them in their own module
(``semnexus_shared.serde.errors`` for the codec).
"""

from __future__ import annotations

__all__ = ["InvalidEvent", "PipelineCrashed", "SemNexusError", "TransientError"]


class SemNexusError(Exception):
    """Root of every SemNexus exception."""


class InvalidEvent(SemNexusError):
    """The input itself is wrong: dead-letter it with the reason, never retry it."""


class TransientError(SemNexusError):
    """A dependency failed in a way that may pass: retry with back-off, then crash."""


class PipelineCrashed(SemNexusError):
    """The runner cannot finish a batch; the process must stop without committing it."""
