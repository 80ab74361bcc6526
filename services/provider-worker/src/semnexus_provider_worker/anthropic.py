"""The Anthropic Messages wire.

Contract: :class:`AnthropicWire` posts to ``/v1/messages`` with ``x-api-key``
and ``anthropic-version``; system turns become the ``system`` field, tool
results become ``tool_result`` blocks and assistant tool calls ``tool_use``
blocks; ``max_tokens`` (required by Anthropic) defaults to the provider's
``default_max_tokens``. Request ``tools`` in OpenAI's function shape are
converted to Anthropic's (``name``, ``description``, ``input_schema``).
Answers are read from ``message`` bodies or the event stream
(``message_start`` … ``message_stop``; an ``error`` event such as
``overloaded_error`` is a failure). Usage: ``input_tokens`` is Anthropic's
``input_tokens + cache_creation_input_tokens + cache_read_input_tokens``,
``cached_input_tokens`` its ``cache_read_input_tokens``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from semnexus_provider_worker.calls import Answer, Failed, ProviderCall
from semnexus_provider_worker.config import Provider
from semnexus_provider_worker.transport import ServerEvent
from semnexus_shared.events import AttemptOutcome, FinishReason, Role, ToolCall, Usage

__all__ = ["AnthropicWire"]

_STOP = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "tool_use": FinishReason.TOOL_CALLS,
    "refusal": FinishReason.CONTENT_FILTER,
}


def _stop(value: object) -> FinishReason:
    return _STOP.get(str(value), FinishReason.OTHER)


def _counts(data: object) -> tuple[int, int, int, int]:
    """(uncached input, cache writes, cache reads, output)."""
    if not isinstance(data, Mapping):
        return 0, 0, 0, 0
    return (
        int(data.get("input_tokens") or 0),
        int(data.get("cache_creation_input_tokens") or 0),
        int(data.get("cache_read_input_tokens") or 0),
        int(data.get("output_tokens") or 0),
    )


def _usage(fresh: int, written: int, read: int, output: int) -> Usage:
    return Usage(
        input_tokens=fresh + written + read, output_tokens=output, cached_input_tokens=read
    )


def _content(message: Any) -> str | list[dict[str, object]]:
    if message.role is Role.TOOL:
        return [
            {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id or "",
                "content": message.content,
            }
        ]
    if message.tool_calls:
        blocks: list[dict[str, object]] = []
        if message.content:
            blocks.append({"type": "text", "text": message.content})
        blocks += [
            {
                "type": "tool_use",
                "id": t.id,
                "name": t.name,
                "input": json.loads(t.arguments or "{}"),
            }
            for t in message.tool_calls
        ]
        return blocks
    return str(message.content)


def _tool(spec: Mapping[str, Any]) -> dict[str, object]:
    function = spec.get("function")
    if spec.get("type") == "function" and isinstance(function, Mapping):
        return {
            "name": function["name"],
            "description": function.get("description", ""),
            "input_schema": function.get("parameters") or {"type": "object"},
        }
    return dict(spec)


class _EventParser:
    """Folds Messages stream events into an answer."""

    def __init__(self) -> None:
        self._text: list[str] = []
        self._tools: dict[int, dict[str, str]] = {}
        self._stop: FinishReason | None = None
        self._counts = [0, 0, 0, 0]
        self._model = ""
        self._failure: Failed | None = None

    def feed(self, event: ServerEvent) -> bool:
        data = json.loads(event.data)
        kind = data.get("type", event.event)
        if kind == "message_start":
            message = data["message"]
            self._model = message.get("model", "")
            self._counts = list(_counts(message.get("usage")))
        elif kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use":
                self._tools[int(data["index"])] = {
                    "id": block.get("id", ""),
                    "name": block.get("name", ""),
                    "arguments": "",
                }
        elif kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta":
                self._text.append(delta.get("text", ""))
            elif delta.get("type") == "input_json_delta":
                self._tools[int(data["index"])]["arguments"] += delta.get("partial_json", "")
        elif kind == "message_delta":
            self._stop = _stop((data.get("delta") or {}).get("stop_reason"))
            usage = data.get("usage") or {}
            if "output_tokens" in usage:
                self._counts[3] = int(usage["output_tokens"])
        elif kind == "message_stop":
            return True
        elif kind == "error":
            error = data.get("error") or {}
            outcome = (
                AttemptOutcome.OVERLOADED
                if error.get("type") == "overloaded_error"
                else AttemptOutcome.SERVER_ERROR
            )
            self._failure = Failed(outcome, f"stream error: {error.get('type', 'error')}", 0)
            return True
        return False

    def answer(self) -> Answer:
        if self._stop is None:
            raise ValueError("no stop_reason received")
        fresh, written, read, output = self._counts
        tools = tuple(ToolCall(**self._tools[i]) for i in sorted(self._tools)) or None
        return Answer(
            text="".join(self._text),
            finish_reason=self._stop,
            usage=_usage(fresh, written, read, output),
            model=self._model,
            tool_calls=tools,
        )

    def failure(self) -> Failed | None:
        return self._failure


class AnthropicWire:
    """Anthropic's messages request and answer formats."""

    path = "/v1/messages"

    def headers(self, provider: Provider) -> dict[str, str]:
        """``x-api-key`` and ``anthropic-version``."""
        headers = {
            "content-type": "application/json",
            "anthropic-version": provider.settings.anthropic_version,
        }
        if provider.api_key is not None:
            headers["x-api-key"] = provider.api_key.get_secret_value()
        return headers

    def body(self, provider: Provider, call: ProviderCall, stream: bool) -> dict[str, object]:
        """A messages body."""
        system = "\n\n".join(m.content for m in call.messages if m.role is Role.SYSTEM)
        turns = [
            {"role": "assistant" if m.role is Role.ASSISTANT else "user", "content": _content(m)}
            for m in call.messages
            if m.role is not Role.SYSTEM
        ]
        body: dict[str, object] = {
            "model": call.model,
            "max_tokens": call.max_tokens or provider.settings.default_max_tokens,
            "messages": turns,
        }
        if system:
            body["system"] = system
        if call.sampling.temperature is not None:
            # Anthropic's range is [0, 1]; OpenAI-style values above 1 are capped.
            body["temperature"] = min(call.sampling.temperature, 1.0)
        if call.sampling.top_p is not None:
            body["top_p"] = call.sampling.top_p
        if call.sampling.stop:
            body["stop_sequences"] = list(call.sampling.stop)
        if call.tools:
            body["tools"] = [_tool(t) for t in json.loads(call.tools)]
        if stream:
            body["stream"] = True
        return body

    def parse(self, data: object) -> Answer:
        """A ``message`` body."""
        if not isinstance(data, Mapping):
            raise TypeError("answer is not an object")
        text = "".join(b["text"] for b in data["content"] if b.get("type") == "text")
        tools = tuple(
            ToolCall(id=b["id"], name=b["name"], arguments=json.dumps(b.get("input") or {}))
            for b in data["content"]
            if b.get("type") == "tool_use"
        )
        return Answer(
            text=text,
            finish_reason=_stop(data.get("stop_reason")),
            usage=_usage(*_counts(data.get("usage"))),
            model=str(data.get("model") or ""),
            tool_calls=tools or None,
        )

    def stream_parser(self) -> _EventParser:
        """A parser for one event stream."""
        return _EventParser()

    def error_reason(self, data: object) -> str:
        """``error.type`` and the message."""
        if isinstance(data, Mapping) and isinstance(data.get("error"), Mapping):
            error = data["error"]
            return f"{error.get('type', 'error')}: {error.get('message', '')}"
        return "error"
