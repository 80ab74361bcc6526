"""Where an answer goes: the request's own reply topic when allowed, else ``responses``.

Contract: :class:`ReplyPolicy` holds the default response topic and the set of
topics a request may name as its ``reply_topic``; a request naming any other
topic is answered on the default (an app cannot make the gateway write to an
arbitrary topic). Responses are keyed by request id.
"""

from __future__ import annotations

from dataclasses import dataclass

from semnexus_shared.events import CompletionRequested, CompletionResponded
from semnexus_shared.stream import Emit

__all__ = ["ReplyPolicy"]


@dataclass(frozen=True, slots=True)
class ReplyPolicy:
    """The default response topic and the reply topics requests may choose."""

    default: str
    allowed: frozenset[str] = frozenset()

    def topic_for(self, request: CompletionRequested) -> str:
        """The topic this request's answer goes to."""
        wanted = request.reply_topic
        return wanted if wanted and wanted in self.allowed else self.default

    def reply(self, request: CompletionRequested, response: CompletionResponded) -> Emit:
        """The outcome that sends ``response`` where ``request`` is waiting."""
        return Emit(self.topic_for(request), response.request_id.encode(), response)
