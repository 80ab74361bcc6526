"""The provider-worker's exceptions, rooted in :class:`semnexus_shared.errors.SemNexusError`.

::

    SemNexusError
    ├── WorkerError             root of this service's own errors
    │   └── CatalogError        the providers file cannot be read or is invalid,
    │                           or names a provider this process cannot serve;
    │                           raised at start-up, the process does not start
    └── InvalidEvent
        └── NotServed           a call for a provider this process has no
                                client for: dead-lettered, and the waiting app
                                gets an internal_error response

Provider failures are not exceptions: an adapter returns a classified
:class:`~semnexus_provider_worker.calls.Failed`, and the handler decides
between failover and an error response.
"""

from __future__ import annotations

from semnexus_shared.errors import InvalidEvent, SemNexusError

__all__ = ["CatalogError", "NotServed", "WorkerError"]


class WorkerError(SemNexusError):
    """Root of the provider-worker's own errors."""


class CatalogError(WorkerError):
    """The providers file is unreadable or invalid."""


class NotServed(InvalidEvent):
    """A provider call names a provider this process has no client for."""
