"""The simulator's exceptions, all rooted in ``SimulatorError``.

::

    SimulatorError
    ├── ConfigError     the configuration file cannot be read, parsed or validated;
    │                   main() prints it and exits with status 2
    └── ProviderError   a simulated provider answers with an error; carries the
                        HTTP status, the error kind and the message, and is
                        rendered in that provider's own error format (it never
                        escapes as a 500 of the simulator itself)
"""

from __future__ import annotations

from enum import StrEnum


class SimulatorError(Exception):
    """Base class of every error the simulator raises on purpose."""


class ConfigError(SimulatorError):
    """The configuration cannot be loaded."""


class ErrorKind(StrEnum):
    """What went wrong, independent of any provider's wording."""

    INVALID_REQUEST = "invalid_request"
    AUTHENTICATION = "authentication"
    PERMISSION = "permission"
    NOT_FOUND = "not_found"
    TOO_LARGE = "too_large"
    RATE_LIMIT = "rate_limit"
    SERVER = "server"
    OVERLOADED = "overloaded"

    @classmethod
    def for_status(cls, status: int) -> ErrorKind:
        """The kind a provider reports for an HTTP status."""
        return _KIND_BY_STATUS.get(status, cls.SERVER if status >= 500 else cls.INVALID_REQUEST)


_KIND_BY_STATUS = {
    400: ErrorKind.INVALID_REQUEST,
    401: ErrorKind.AUTHENTICATION,
    403: ErrorKind.PERMISSION,
    404: ErrorKind.NOT_FOUND,
    413: ErrorKind.TOO_LARGE,
    429: ErrorKind.RATE_LIMIT,
    529: ErrorKind.OVERLOADED,
}


class ProviderError(SimulatorError):
    """A simulated provider's error answer, rendered in its wire format.

    ``code`` and ``param`` fill OpenAI's fields of those names; ``limit`` names
    the exhausted budget ("requests" or "tokens") of a 429; ``retry_after_s``
    becomes ``retry-after`` (whole seconds, rounded up) and, with
    ``retry_after_ms``, also ``retry-after-ms``.
    """

    def __init__(
        self,
        status: int,
        kind: ErrorKind,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        limit: str | None = None,
        retry_after_s: float | None = None,
        retry_after_ms: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.code = code
        self.param = param
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.retry_after_ms = retry_after_ms
