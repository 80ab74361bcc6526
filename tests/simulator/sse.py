"""Readers of the two server-sent-event dialects, as a client would parse them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    """One SSE event: its ``event:`` name (None if absent) and its ``data:`` text."""

    name: str | None
    data: str


def events(text: str) -> list[Event]:
    """Split an SSE body into events (blank-line separated blocks)."""
    parsed: list[Event] = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name: str | None = None
        data: list[str] = []
        for line in block.splitlines():
            field, _, value = line.partition(": ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        parsed.append(Event(name, "\n".join(data)))
    return parsed


def openai_chunks(text: str) -> tuple[list[dict[str, Any]], bool]:
    """The decoded ``chat.completion.chunk`` objects, and whether ``[DONE]`` ended the stream."""
    parsed = events(text)
    done = bool(parsed) and parsed[-1].data == "[DONE]"
    chunks = [json.loads(event.data) for event in parsed if event.data != "[DONE]"]
    return chunks, done


def openai_text(chunks: list[dict[str, Any]]) -> str:
    """Reassemble the streamed answer."""
    return "".join(
        choice["delta"].get("content") or "" for chunk in chunks for choice in chunk["choices"]
    )


def anthropic_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(event name, decoded data) pairs; the name must equal the data's ``type``."""
    pairs = []
    for event in events(text):
        data = json.loads(event.data)
        assert event.name == data["type"]
        pairs.append((data["type"], data))
    return pairs
