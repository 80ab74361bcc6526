"""Where an answer goes, and how an error answer looks, for every service.

Contract: :class:`ReplyPolicy` holds the default response topic and the set of
topics a request may name as its ``reply_topic``; a request naming any other
topic is answered on the default (an app cannot make the gateway write to an
arbitrary topic). Responses are keyed by request id.

:meth:`ReplyPolicy.error` builds the one shape of error answer every service
sends (status, message, attempts so far, no usage); its event id derives from
the event that caused it, so a replay re-sends the same answer, not a new one.
:meth:`ReplyPolicy.undecodable` answers a request whose bytes could not be
decoded, from the headers the client repeats them in, when those name one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from semnexus_shared.events import (
    Attempt,
    CompletionRequested,
    CompletionResponded,
    ResponseStatus,
    Usage,
    derive_event_id,
)
from semnexus_shared.stream import Emit, Record
from semnexus_shared.stream._pipeline import REPLY_TOPIC_HEADER, REQUEST_ID_HEADER, TENANT_HEADER

__all__ = ["ReplyPolicy"]

_NO_USAGE = Usage(input_tokens=0, output_tokens=0)


@dataclass(frozen=True, slots=True)
class ReplyPolicy:
    """The default response topic and the reply topics requests may choose."""

    default: str
    allowed: frozenset[str] = frozenset()

    def topic_named(self, wanted: str | None) -> str:
        """``wanted`` when it is allowed, else the default topic."""
        return (
            wanted
            if wanted and (wanted in self.allowed or wanted == self.default)
            else self.default
        )

    def topic_for(self, request: CompletionRequested) -> str:
        """The topic this request's answer goes to."""
        return self.topic_named(request.reply_topic)

    def reply(self, request: CompletionRequested, response: CompletionResponded) -> Emit:
        """The outcome that sends ``response`` where ``request`` is waiting."""
        return Emit(self.topic_for(request), response.request_id.encode(), response)

    def error(
        self,
        request: CompletionRequested,
        *,
        caused_by: str,
        status: ResponseStatus,
        message: str,
        retry_after_ms: int | None = None,
        attempts: Sequence[Attempt] = (),
    ) -> Emit:
        """An error answer to ``request``, caused by the event with id ``caused_by``."""
        return self.reply(
            request,
            CompletionResponded(
                event_id=derive_event_id(caused_by, "response"),
                request_id=request.request_id,
                tenant_id=request.tenant_id,
                status=status,
                retry_after_ms=retry_after_ms,
                error_message=message[:1000],
                attempts=tuple(attempts),
                usage=_NO_USAGE,
            ),
        )

    def undecodable(self, record: Record, error_class: str, reason: str) -> list[object]:
        """An ``invalid_request`` answer for undecodable bytes, when the headers say to whom."""
        headers: Mapping[str, bytes] = dict(record.headers)
        request_id = headers.get(REQUEST_ID_HEADER, b"").decode("utf-8", "replace")
        tenant_id = headers.get(TENANT_HEADER, b"").decode("utf-8", "replace")
        if not request_id or not tenant_id:
            return []
        wanted = headers.get(REPLY_TOPIC_HEADER, b"").decode("utf-8", "replace") or None
        response = CompletionResponded(
            event_id=derive_event_id(record.topic, str(record.partition), str(record.offset)),
            request_id=request_id,
            tenant_id=tenant_id,
            status=ResponseStatus.INVALID_REQUEST,
            error_message=f"the request could not be decoded ({error_class}): {reason}"[:1000],
            usage=_NO_USAGE,
        )
        return [Emit(self.topic_named(wanted), request_id.encode(), response)]
