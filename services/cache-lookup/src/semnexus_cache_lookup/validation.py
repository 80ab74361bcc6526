"""Whether a request is well formed enough to look up and route.

:func:`problems` lists everything wrong with a request (empty: valid): size
limits (messages, characters per message, characters in all), a last user turn
with text, a known model alias, a tenant id of the allowed shape, sampling in
range (temperature 0 to 2, top_p 0 to 1), JSON tools and response format, and a
reply topic from the allowed set. Pure: no I/O, no clock.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection

from semnexus_cache_lookup.config import RequestRules
from semnexus_shared.events import CompletionRequested, Role
from semnexus_shared.scope import last_user_index

__all__ = ["problems"]


def _json_problem(name: str, text: str | None) -> str | None:
    if text is None:
        return None
    try:
        json.loads(text)
    except ValueError:
        return f"{name} is not valid JSON"
    return None


def _size_problems(request: CompletionRequested, rules: RequestRules) -> list[str]:
    found: list[str] = []
    messages = request.messages
    if not messages:
        found.append("messages is empty")
    if len(messages) > rules.max_messages:
        found.append(f"{len(messages)} messages, at most {rules.max_messages} allowed")
    longest = max((len(m.content) for m in messages), default=0)
    if longest > rules.max_message_chars:
        found.append(
            f"a message has {longest} characters, at most {rules.max_message_chars} allowed"
        )
    total = sum(len(m.content) for m in messages)
    if total > rules.max_total_chars:
        found.append(f"messages have {total} characters, at most {rules.max_total_chars} allowed")
    return found


def _turn_problems(request: CompletionRequested) -> list[str]:
    found: list[str] = []
    messages = request.messages
    index = last_user_index(messages)
    if messages and index is None:
        found.append("no user message")
    elif index is not None and not messages[index].content.strip():
        found.append("the last user message is empty")
    if any(m.role is Role.TOOL and not m.tool_call_id for m in messages):
        found.append("a tool message has no tool_call_id")
    return found


def _parameter_problems(request: CompletionRequested) -> list[str]:
    found: list[str] = []
    temperature, top_p = request.sampling.temperature, request.sampling.top_p
    if temperature is not None and not 0.0 <= temperature <= 2.0:
        found.append(f"temperature {temperature} outside 0..2")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        found.append(f"top_p {top_p} outside (0, 1]")
    floor = request.cache.min_similarity
    if floor is not None and not -1.0 <= floor <= 1.0:
        found.append(f"cache.min_similarity {floor} outside -1..1")
    for name, text in (("tools", request.tools), ("response_format", request.response_format)):
        problem = _json_problem(name, text)
        if problem:
            found.append(problem)
    return found


def problems(
    request: CompletionRequested, rules: RequestRules, reply_topics: Collection[str]
) -> list[str]:
    """Every reason this request cannot be served; an empty list means it is valid."""
    found: list[str] = []
    if not re.fullmatch(rules.tenant_pattern, request.tenant_id):
        found.append("tenant_id has characters or a length that is not allowed")
    found += _size_problems(request, rules)
    found += _turn_problems(request)
    if request.model_alias not in rules.model_aliases:
        found.append(
            f"unknown model alias {request.model_alias!r}; known: {', '.join(rules.model_aliases)}"
        )
    found += _parameter_problems(request)
    if request.reply_topic is not None and request.reply_topic not in reply_topics:
        found.append(f"reply topic {request.reply_topic!r} is not in the allowed set")
    return found
