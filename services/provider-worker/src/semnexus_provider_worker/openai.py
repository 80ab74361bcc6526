"""The OpenAI Chat Completions wire (OpenAI itself and OpenAI-compatible servers).

Contract: :class:`OpenAIWire` posts to ``/v1/chat/completions`` with
``Authorization: Bearer <key>`` (omitted for an OpenAI-compatible server
without a key), and reads ``chat.completion`` bodies or
``chat.completion.chunk`` streams (``stream_options.include_usage`` on).
Usage comes from ``usage.prompt_tokens`` (cached ones included),
``usage.completion_tokens`` and ``usage.prompt_tokens_details.cached_tokens``.
The request's ``tools`` and ``response_format`` are JSON text in OpenAI's own
shape and are passed through.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from semnexus_provider_worker.calls import Answer, Failed, ProviderCall
from semnexus_provider_worker.config import Provider
from semnexus_provider_worker.transport import ServerEvent
from semnexus_shared.events import AttemptOutcome, FinishReason, Role, ToolCall, Usage

__all__ = ["OpenAIWire"]

_FINISH = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "tool_calls": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,
    "content_filter": FinishReason.CONTENT_FILTER,
}


def _finish(value: object) -> FinishReason:
    return _FINISH.get(str(value), FinishReason.OTHER)


def _usage(data: object) -> Usage | None:
    if not isinstance(data, Mapping):
        return None
    details = data.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, Mapping) else None
    return Usage(
        input_tokens=int(data.get("prompt_tokens") or 0),
        output_tokens=int(data.get("completion_tokens") or 0),
        cached_input_tokens=int(cached or 0),
    )


def _message(message: Any) -> dict[str, object]:
    out: dict[str, object] = {"role": message.role.value, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": t.id, "type": "function", "function": {"name": t.name, "arguments": t.arguments}}
            for t in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.name is not None and message.role is not Role.TOOL:
        out["name"] = message.name
    return out


class _ChunkParser:
    """Folds ``chat.completion.chunk`` events into an answer."""

    def __init__(self) -> None:
        self._text: list[str] = []
        self._tools: dict[int, dict[str, str]] = {}
        self._finish: FinishReason | None = None
        self._usage: Usage | None = None
        self._model = ""
        self._failure: Failed | None = None
        self._done = False

    def feed(self, event: ServerEvent) -> bool:
        if event.data.strip() == "[DONE]":
            self._done = True
            return True
        chunk = json.loads(event.data)
        if "error" in chunk:
            message = str(chunk["error"].get("message", ""))[:200]
            self._failure = Failed(AttemptOutcome.SERVER_ERROR, f"stream error: {message}", 0)
            return True
        self._model = chunk.get("model") or self._model
        usage = _usage(chunk.get("usage"))
        if usage is not None:
            self._usage = usage
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self._text.append(delta["content"])
            for call in delta.get("tool_calls") or ():
                slot = self._tools.setdefault(
                    int(call.get("index", 0)), {"id": "", "name": "", "arguments": ""}
                )
                slot["id"] = call.get("id") or slot["id"]
                function = call.get("function") or {}
                slot["name"] = function.get("name") or slot["name"]
                slot["arguments"] += function.get("arguments") or ""
            if choice.get("finish_reason"):
                self._finish = _finish(choice["finish_reason"])
        return False

    def answer(self) -> Answer:
        if self._finish is None:
            raise ValueError("no finish_reason received")
        tools = tuple(ToolCall(**self._tools[i]) for i in sorted(self._tools)) or None
        return Answer(
            text="".join(self._text),
            finish_reason=self._finish,
            usage=self._usage or Usage(input_tokens=0, output_tokens=0),
            model=self._model,
            tool_calls=tools,
        )

    def failure(self) -> Failed | None:
        return self._failure


class OpenAIWire:
    """OpenAI's chat completions request and answer formats."""

    path = "/v1/chat/completions"

    def headers(self, provider: Provider) -> dict[str, str]:
        """Bearer auth when a key is configured."""
        headers = {"content-type": "application/json"}
        if provider.api_key is not None:
            headers["authorization"] = f"Bearer {provider.api_key.get_secret_value()}"
        return headers

    def body(self, provider: Provider, call: ProviderCall, stream: bool) -> dict[str, object]:
        """A chat completions body."""
        body: dict[str, object] = {
            "model": call.model,
            "messages": [_message(m) for m in call.messages],
        }
        if call.max_tokens is not None:
            body["max_tokens"] = call.max_tokens
        if call.sampling.temperature is not None:
            body["temperature"] = call.sampling.temperature
        if call.sampling.top_p is not None:
            body["top_p"] = call.sampling.top_p
        if call.sampling.stop:
            body["stop"] = list(call.sampling.stop)
        if call.tools:
            body["tools"] = json.loads(call.tools)
        if call.response_format:
            body["response_format"] = json.loads(call.response_format)
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def parse(self, data: object) -> Answer:
        """The first choice of a ``chat.completion``."""
        if not isinstance(data, Mapping):
            raise TypeError("answer is not an object")
        choice = data["choices"][0]
        message = choice["message"]
        tools = tuple(
            ToolCall(
                id=t["id"],
                name=t["function"]["name"],
                arguments=t["function"].get("arguments") or "",
            )
            for t in message.get("tool_calls") or ()
        )
        return Answer(
            text=message.get("content") or "",
            finish_reason=_finish(choice.get("finish_reason")),
            usage=_usage(data.get("usage")) or Usage(input_tokens=0, output_tokens=0),
            model=str(data.get("model") or ""),
            tool_calls=tools or None,
        )

    def stream_parser(self) -> _ChunkParser:
        """A parser for one chunk stream."""
        return _ChunkParser()

    def error_reason(self, data: object) -> str:
        """``error.type``/``error.code`` and the message."""
        if isinstance(data, Mapping) and isinstance(data.get("error"), Mapping):
            error = data["error"]
            kind = error.get("code") or error.get("type") or "error"
            return f"{kind}: {error.get('message', '')}"
        return "error"
