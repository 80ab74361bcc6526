"""The Anthropic Messages wire format.

Contract: ``AnthropicDialect`` reads ``POST /v1/messages`` bodies (model,
required ``max_tokens``, ``system`` as a string or text blocks, messages with
string or text-block content, ``stream``) with the ``x-api-key`` and
``anthropic-version`` headers, and writes:

- ``message`` bodies: ``msg_…`` id, ``content: [{"type": "text", "text"}]``,
  ``stop_reason`` ``end_turn`` or ``max_tokens``, usage with
  ``input_tokens``, ``output_tokens``, ``cache_creation_input_tokens`` and
  ``cache_read_input_tokens``;
- streams of ``event:``/``data:`` frames: ``message_start``,
  ``content_block_start``, ``ping``, one ``content_block_delta`` per token,
  ``content_block_stop``, ``message_delta`` (stop reason and output usage),
  ``message_stop``;
- ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}``
  headers with RFC 3339 reset times;
- errors as ``{"type": "error", "error": {"type", "message"}, "request_id"}``
  (``overloaded_error`` for 529).

``request-id`` carries the request id. Prompt caching follows Anthropic's rule:
only a prompt with a ``cache_control`` block caches; the first call reports
``cache_creation_input_tokens``, a repeat reports ``cache_read_input_tokens``,
and ``input_tokens`` counts only the uncached rest.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Mapping
from datetime import datetime

from starlette.datastructures import Headers

from semnexus_simulator.errors import ErrorKind, ProviderError
from semnexus_simulator.exchange import Completion, Prompt, cacheable_prefix
from semnexus_simulator.faults import bogus_value
from semnexus_simulator.generator import count_tokens
from semnexus_simulator.ratelimit import Snapshot, reset_at

_ALPHABET = string.ascii_letters + string.digits
_TYPES = {
    ErrorKind.INVALID_REQUEST: "invalid_request_error",
    ErrorKind.AUTHENTICATION: "authentication_error",
    ErrorKind.PERMISSION: "permission_error",
    ErrorKind.NOT_FOUND: "not_found_error",
    ErrorKind.TOO_LARGE: "request_too_large",
    ErrorKind.RATE_LIMIT: "rate_limit_error",
    ErrorKind.SERVER: "api_error",
    ErrorKind.OVERLOADED: "overloaded_error",
}
_TOKENS_PER_MESSAGE = 3
_LIMITS = ("requests", "tokens", "input-tokens", "output-tokens")


def _invalid(message: str) -> ProviderError:
    return ProviderError(400, ErrorKind.INVALID_REQUEST, message)


def _blocks_text(content: object, where: str) -> tuple[str, bool]:
    """The text of string-or-blocks content, and whether a block asks for caching."""
    if isinstance(content, str):
        return content, False
    if isinstance(content, list):
        texts: list[str] = []
        marked = False
        for block in content:
            if not isinstance(block, Mapping):
                raise _invalid(f"{where}: Input should be a valid dictionary")
            if isinstance(block.get("text"), str):
                texts.append(block["text"])
            marked = marked or block.get("cache_control") is not None
        return "".join(texts), marked
    raise _invalid(f"{where}: Input should be a valid string or list")


def _sse(event: str, payload: object) -> bytes:
    return f"event: {event}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


class AnthropicDialect:
    """Anthropic's messages wire format."""

    def new_request_id(self) -> str:
        """``req_`` and 24 alphanumerics."""
        return "req_011C" + "".join(secrets.choice(_ALPHABET) for _ in range(20))

    def request_id_headers(self, request_id: str) -> dict[str, str]:
        """``request-id``."""
        return {"request-id": request_id}

    def credentials(self, headers: Headers) -> str | None:
        """The ``x-api-key`` header; a missing ``anthropic-version`` is a 400."""
        if "anthropic-version" not in headers:
            raise _invalid("anthropic-version: header is required")
        return headers.get("x-api-key") or None

    def auth_failure(self, key: str | None) -> ProviderError:
        """Anthropic's 401."""
        message = "x-api-key header is required" if not key else "invalid x-api-key"
        return ProviderError(401, ErrorKind.AUTHENTICATION, message)

    def parse(self, body: object) -> Prompt:
        """Validate a messages body."""
        if not isinstance(body, Mapping):
            raise _invalid("There was an issue with your request body: not valid JSON")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _invalid("model: Field required")
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            raise _invalid("max_tokens: Field required")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise _invalid("max_tokens: Input should be greater than or equal to 1")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _invalid("messages: Field required")
        turns: list[tuple[str, str]] = []
        marked = False
        system = body.get("system")
        if system is not None:
            text, marked = _blocks_text(system, "system")
            turns.append(("system", text))
        for index, message in enumerate(messages):
            role = message.get("role") if isinstance(message, Mapping) else None
            if not isinstance(message, Mapping) or role not in {"user", "assistant"}:
                raise _invalid(f"messages.{index}.role: Input should be 'user' or 'assistant'")
            text, block_marked = _blocks_text(message.get("content"), f"messages.{index}.content")
            marked = marked or block_marked
            turns.append((str(role), text))
        input_tokens = sum(
            count_tokens(text) + (0 if role == "system" else _TOKENS_PER_MESSAGE)
            for role, text in turns
        )
        return Prompt(
            model=model,
            turns=tuple(turns),
            max_tokens=max_tokens,
            stream=body.get("stream") is True,
            include_usage=True,
            input_tokens=input_tokens,
            cache_marked=marked,
        )

    def cached_tokens(self, prompt: Prompt, seen_before: bool) -> int:
        """Cache reads of a repeated prompt that asked for caching."""
        return cacheable_prefix(prompt.input_tokens) if prompt.cache_marked and seen_before else 0

    def limit_headers(self, snapshot: Snapshot, now: datetime) -> dict[str, str]:
        """The ``anthropic-ratelimit-*`` headers."""
        reset = reset_at(now, snapshot.reset_s)
        values = {
            "requests": (snapshot.requests_limit, snapshot.requests_remaining),
            "tokens": (snapshot.tokens_limit, snapshot.tokens_remaining),
            "input-tokens": (snapshot.tokens_limit, snapshot.input_tokens_remaining),
            "output-tokens": (snapshot.tokens_limit, snapshot.output_tokens_remaining),
        }
        headers: dict[str, str] = {}
        for name, (limit, remaining) in values.items():
            headers[f"anthropic-ratelimit-{name}-limit"] = str(limit)
            headers[f"anthropic-ratelimit-{name}-remaining"] = str(remaining)
            headers[f"anthropic-ratelimit-{name}-reset"] = reset
        return headers

    def bogus_limit_headers(self, mode: str) -> dict[str, str]:
        """The ``anthropic-ratelimit-*`` headers, unusable."""
        count, moment = bogus_value(mode, "int"), bogus_value(mode, "rfc3339")
        headers: dict[str, str] = {}
        for name in _LIMITS:
            headers[f"anthropic-ratelimit-{name}-limit"] = count
            headers[f"anthropic-ratelimit-{name}-remaining"] = count
            headers[f"anthropic-ratelimit-{name}-reset"] = moment
        return headers

    def _usage(self, completion: Completion, output_tokens: int) -> dict[str, int]:
        prompt = completion.prompt
        cacheable = cacheable_prefix(prompt.input_tokens) if prompt.cache_marked else 0
        read = completion.cached_tokens
        created = cacheable if not read else 0
        return {
            "input_tokens": prompt.input_tokens - read - created,
            "cache_creation_input_tokens": created,
            "cache_read_input_tokens": read,
            "output_tokens": output_tokens,
        }

    def _stop_reason(self, completion: Completion) -> str:
        return "max_tokens" if completion.answer.truncated else "end_turn"

    def _message(
        self, completion: Completion, message_id: str, *, streaming: bool
    ) -> dict[str, object]:
        answer = completion.answer
        return {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": completion.prompt.model,
            "content": [] if streaming else [{"type": "text", "text": answer.text}],
            "stop_reason": None if streaming else self._stop_reason(completion),
            "stop_sequence": None,
            "usage": self._usage(completion, 1 if streaming else answer.output_tokens),
        }

    def _message_id(self) -> str:
        return "msg_01" + "".join(secrets.choice(_ALPHABET) for _ in range(22))

    def body(self, completion: Completion) -> dict[str, object]:
        """A ``message`` object."""
        return self._message(completion, self._message_id(), streaming=False)

    def events(self, completion: Completion) -> list[bytes]:
        """The messages streaming event sequence."""
        start = self._message(completion, self._message_id(), streaming=True)
        frames = [
            _sse("message_start", {"type": "message_start", "message": start}),
            _sse(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
            _sse("ping", {"type": "ping"}),
        ]
        frames.extend(
            _sse(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": piece},
                },
            )
            for piece in completion.answer.pieces
        )
        frames.append(_sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
        frames.append(
            _sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self._stop_reason(completion), "stop_sequence": None},
                    "usage": {"output_tokens": completion.answer.output_tokens},
                },
            )
        )
        frames.append(_sse("message_stop", {"type": "message_stop"}))
        return frames

    def error_body(self, failure: ProviderError, request_id: str) -> dict[str, object]:
        """``{"type": "error", ...}`` as Anthropic writes it."""
        return {
            "type": "error",
            "error": {"type": _TYPES[failure.kind], "message": failure.message},
            "request_id": request_id,
        }
