"""The router's exceptions, rooted in :class:`semnexus_shared.errors.SemNexusError`.

::

    SemNexusError
    ├── RouterError             root of this service's own errors
    │   └── CatalogError        the providers file is unreadable or invalid (an
    │                           alias chain names an unknown provider or alias);
    │                           raised at start-up, the process does not start
    └── InvalidEvent
        └── UnknownAlias        a request names a model alias the catalog does
                                not have: dead-lettered, and the waiting app gets
                                an invalid_request response

Routing refusals (deadline passed, budget exceeded, every provider cooling
down) are not exceptions: they are error responses the app can act on.
"""

from __future__ import annotations

from semnexus_shared.errors import InvalidEvent, SemNexusError

__all__ = ["CatalogError", "RouterError", "UnknownAlias"]


class RouterError(SemNexusError):
    """Root of the router's own errors."""


class CatalogError(RouterError):
    """The providers file is unreadable or invalid."""


class UnknownAlias(InvalidEvent):
    """A request names a model alias that is not configured."""
