"""The OpenAI Chat Completions wire format (also what vLLM and llama.cpp serve).

Contract: ``OpenAIDialect`` reads ``POST /v1/chat/completions`` bodies (model,
messages with string or text-part content, ``max_tokens`` or
``max_completion_tokens``, ``stream``, ``stream_options.include_usage``) and
``Authorization: Bearer <key>``, and writes:

- ``chat.completion`` bodies with ``usage.prompt_tokens_details.cached_tokens``;
- streams of ``data: {chat.completion.chunk}`` frames: a role chunk, one chunk
  per token, a chunk with ``finish_reason``, a ``choices: []`` chunk with
  ``usage`` when ``include_usage`` is set, then ``data: [DONE]``;
- ``x-ratelimit-{limit,remaining}-{requests,tokens}`` counts and
  ``x-ratelimit-reset-{requests,tokens}`` durations ("20ms", "1.5s", "6m0s");
- errors as ``{"error": {"message", "type", "param", "code"}}``.

``x-request-id`` carries the request id. Prompt caching follows OpenAI's rule:
a repeated prompt of at least 1024 tokens reports its 128-token blocks cached.
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
from semnexus_simulator.ratelimit import Snapshot, format_duration

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_ALPHABET = string.ascii_letters + string.digits
_TYPES = {
    ErrorKind.INVALID_REQUEST: "invalid_request_error",
    ErrorKind.AUTHENTICATION: "invalid_request_error",
    ErrorKind.PERMISSION: "invalid_request_error",
    ErrorKind.NOT_FOUND: "invalid_request_error",
    ErrorKind.TOO_LARGE: "invalid_request_error",
    ErrorKind.RATE_LIMIT: "requests",
    ErrorKind.SERVER: "server_error",
    ErrorKind.OVERLOADED: "server_error",
}
_TOKENS_PER_MESSAGE = 3
_TOKENS_PER_REPLY = 3


def _invalid(message: str, param: str | None = None, code: str | None = None) -> ProviderError:
    return ProviderError(400, ErrorKind.INVALID_REQUEST, message, param=param, code=code)


def _content_text(content: object, index: int) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        texts = [
            part["text"]
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        ]
        return "".join(texts)
    raise _invalid(
        f"Invalid type for 'messages[{index}].content': expected a string or an array.",
        param=f"messages[{index}].content",
        code="invalid_type",
    )


def _sse(payload: object) -> bytes:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


class OpenAIDialect:
    """OpenAI's chat completions wire format."""

    def __init__(self, owned_by: str = "openai") -> None:
        self.owned_by = owned_by

    def new_request_id(self) -> str:
        """``req_`` and 32 hex digits."""
        return f"req_{secrets.token_hex(16)}"

    def request_id_headers(self, request_id: str) -> dict[str, str]:
        """``x-request-id`` and the API version OpenAI reports."""
        return {"x-request-id": request_id, "openai-version": "2020-10-01"}

    def credentials(self, headers: Headers) -> str | None:
        """The bearer token of the ``Authorization`` header."""
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        return token.strip() or None

    def auth_failure(self, key: str | None) -> ProviderError:
        """OpenAI's 401 for a missing or an incorrect key."""
        if not key:
            return ProviderError(
                401,
                ErrorKind.AUTHENTICATION,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        shown = f"{key[:3]}*****{key[-4:]}" if len(key) > 8 else "*****"
        return ProviderError(
            401,
            ErrorKind.AUTHENTICATION,
            f"Incorrect API key provided: {shown}. "
            "You can find your API key at https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )

    def parse(self, body: object) -> Prompt:
        """Validate a chat completions body."""
        if not isinstance(body, Mapping):
            raise _invalid("We could not parse the JSON body of your request.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _invalid("you must provide a model parameter")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _invalid(
                "Missing required parameter: 'messages'.",
                param="messages",
                code="missing_required_parameter",
            )
        turns: list[tuple[str, str]] = []
        for index, message in enumerate(messages):
            role = message.get("role") if isinstance(message, Mapping) else None
            if not isinstance(message, Mapping) or role not in _ROLES:
                raise _invalid(
                    f"Invalid value for 'messages[{index}].role'.",
                    param=f"messages[{index}].role",
                    code="invalid_value",
                )
            turns.append((str(role), _content_text(message.get("content"), index)))
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if max_tokens is not None and (
            not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
        ):
            raise _invalid(
                "Invalid 'max_tokens': integer below minimum value.",
                param="max_tokens",
                code="integer_below_min_value",
            )
        stream = body.get("stream") is True
        options = body.get("stream_options")
        include_usage = (
            stream and isinstance(options, Mapping) and options.get("include_usage") is True
        )
        input_tokens = _TOKENS_PER_REPLY + sum(
            _TOKENS_PER_MESSAGE + count_tokens(text) for _, text in turns
        )
        return Prompt(
            model=model,
            turns=tuple(turns),
            max_tokens=max_tokens,
            stream=stream,
            include_usage=include_usage,
            input_tokens=input_tokens,
        )

    def cached_tokens(self, prompt: Prompt, seen_before: bool) -> int:
        """Cached 128-token blocks of a repeated prompt of 1024 tokens or more."""
        return cacheable_prefix(prompt.input_tokens) if seen_before else 0

    def limit_headers(self, snapshot: Snapshot, now: datetime) -> dict[str, str]:
        """OpenAI's six ``x-ratelimit-*`` headers."""
        reset = format_duration(snapshot.reset_s)
        return {
            "x-ratelimit-limit-requests": str(snapshot.requests_limit),
            "x-ratelimit-limit-tokens": str(snapshot.tokens_limit),
            "x-ratelimit-remaining-requests": str(snapshot.requests_remaining),
            "x-ratelimit-remaining-tokens": str(snapshot.tokens_remaining),
            "x-ratelimit-reset-requests": reset,
            "x-ratelimit-reset-tokens": reset,
        }

    def bogus_limit_headers(self, mode: str) -> dict[str, str]:
        """The six headers, unusable."""
        count, duration = bogus_value(mode, "int"), bogus_value(mode, "duration")
        return {
            "x-ratelimit-limit-requests": count,
            "x-ratelimit-limit-tokens": count,
            "x-ratelimit-remaining-requests": count,
            "x-ratelimit-remaining-tokens": count,
            "x-ratelimit-reset-requests": duration,
            "x-ratelimit-reset-tokens": duration,
        }

    def _usage(self, completion: Completion) -> dict[str, object]:
        prompt_tokens = completion.prompt.input_tokens
        output_tokens = completion.answer.output_tokens
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": output_tokens,
            "total_tokens": prompt_tokens + output_tokens,
            "prompt_tokens_details": {"cached_tokens": completion.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }

    def _finish_reason(self, completion: Completion) -> str:
        return "length" if completion.answer.truncated else "stop"

    def _envelope(self, completion: Completion, object_type: str) -> dict[str, object]:
        return {
            "id": "chatcmpl-" + "".join(secrets.choice(_ALPHABET) for _ in range(29)),
            "object": object_type,
            "created": int(completion.created.timestamp()),
            "model": completion.prompt.model,
            "system_fingerprint": "fp_semnexus_sim",
        }

    def body(self, completion: Completion) -> dict[str, object]:
        """A ``chat.completion`` object."""
        return {
            **self._envelope(completion, "chat.completion"),
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": completion.answer.text,
                        "refusal": None,
                    },
                    "logprobs": None,
                    "finish_reason": self._finish_reason(completion),
                }
            ],
            "usage": self._usage(completion),
        }

    def events(self, completion: Completion) -> list[bytes]:
        """``chat.completion.chunk`` frames, then ``[DONE]``."""
        envelope = self._envelope(completion, "chat.completion.chunk")
        usage_field: dict[str, object] = {"usage": None} if completion.prompt.include_usage else {}

        def chunk(delta: dict[str, str], finish_reason: str | None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return _sse({**envelope, "choices": [choice], **usage_field})

        frames = [chunk({"role": "assistant", "content": ""}, None)]
        frames.extend(chunk({"content": piece}, None) for piece in completion.answer.pieces)
        frames.append(chunk({}, self._finish_reason(completion)))
        if completion.prompt.include_usage:
            frames.append(_sse({**envelope, "choices": [], "usage": self._usage(completion)}))
        frames.append(b"data: [DONE]\n\n")
        return frames

    def error_body(self, failure: ProviderError, request_id: str) -> dict[str, object]:
        """``{"error": {...}}`` as OpenAI writes it."""
        error_type = failure.limit if failure.limit is not None else _TYPES[failure.kind]
        return {
            "error": {
                "message": failure.message,
                "type": error_type,
                "param": failure.param,
                "code": failure.code,
            }
        }

    def models(self, names: tuple[str, ...], created: datetime) -> dict[str, object]:
        """The ``GET /v1/models`` list."""
        return {
            "object": "list",
            "data": [
                {
                    "id": name,
                    "object": "model",
                    "created": int(created.timestamp()),
                    "owned_by": self.owned_by,
                }
                for name in names
            ],
        }
