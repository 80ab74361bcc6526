"""The cache-lookup service's exceptions, rooted in :class:`SemNexusError`::

    SemNexusError
    ├── TransientError
    │   └── VectorStoreUnavailable   Milvus did not answer: the runner retries the
    │                                batch with back-off, then crashes uncommitted
    └── CacheLookupError             the service's own root
        └── CacheLookupMisconfigured bad settings at start-up (wrong dimensions,
                                     unknown decision kind): the process refuses to start

Invalid requests raise nothing: the lookup handler returns a ``Reject`` (the
runner dead-letters the bytes) beside an ``invalid_request`` response.
"""

from __future__ import annotations

from semnexus_shared.errors import SemNexusError, TransientError

__all__ = ["CacheLookupError", "CacheLookupMisconfigured", "VectorStoreUnavailable"]


class CacheLookupError(SemNexusError):
    """Root of the cache-lookup service's own errors."""


class CacheLookupMisconfigured(CacheLookupError):
    """The settings cannot work (found at start-up, never per event)."""


class VectorStoreUnavailable(TransientError):
    """The vector store failed a call; retrying the batch may succeed."""
