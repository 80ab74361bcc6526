"""A request's cache scope and exact key: pure functions of the request alone.

Contract:

- :func:`scope_of` gives the :class:`CacheScope` an entry must match exactly
  before similarity counts: tenant, model alias, ``system_hash`` (sha256 of the
  system messages in order), ``history_hash`` (sha256 of every other message
  except the last user turn: the turns before it and any after it, such as a
  tool result), ``tools_format_hash`` (tools and response format, JSON
  canonicalised) and ``sampling_bucket`` (temperature to one decimal, top_p to
  two, a hash of the stop sequences; ``default`` where omitted).
- Only the last user turn is the prompt (:func:`prompt_of`); it alone is embedded.
- :func:`exact_key` is sha256 over the scope and the normalised prompt (NFKC,
  whitespace collapsed, case kept). :func:`request_key` is the same key as
  bytes: the client uses it as the Kafka key of ``requests``, so identical
  requests share a partition and can be coalesced.
- Nothing here reads settings or the clock, and nothing raises on any valid
  ``CompletionRequested`` (a request without a user turn gets an empty prompt;
  validation rejects it elsewhere).
- :func:`scope_key` is the Kafka key of ``cache.fill`` and ``cache.invalidate``
  (one scope's fills stay in order on one partition).

It lives in ``shared`` because three parties must agree on it: the client
(request keys), the cache-lookup service (entries) and the provider worker
(fill keys).
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Sequence

from semnexus_shared.events import CacheScope, CompletionRequested, Message, Role, Sampling

__all__ = [
    "exact_key",
    "last_user_index",
    "normalise_prompt",
    "prompt_of",
    "request_key",
    "sampling_bucket",
    "scope_hash",
    "scope_key",
    "scope_of",
]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _canonical_json_text(text: str | None) -> str:
    """JSON text re-serialised canonically (key order and spacing don't matter)."""
    if text is None:
        return ""
    try:
        return _canonical(json.loads(text))
    except ValueError:
        return text


def _message_form(message: Message) -> dict[str, object]:
    return message.model_dump(mode="json", exclude_none=True)


def last_user_index(messages: Sequence[Message]) -> int | None:
    """Index of the last user message, or ``None`` when there is none."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role is Role.USER:
            return index
    return None


def prompt_of(request: CompletionRequested) -> str:
    """The last user turn: the text that is embedded and keyed (raw, not normalised)."""
    index = last_user_index(request.messages)
    return "" if index is None else request.messages[index].content


def normalise_prompt(text: str) -> str:
    """The prompt as the exact key sees it: NFKC, whitespace collapsed, trimmed."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def sampling_bucket(sampling: Sampling) -> str:
    """Sampling parameters coarsened to what changes an answer."""
    temperature = "default" if sampling.temperature is None else f"{sampling.temperature:.1f}"
    top_p = "default" if sampling.top_p is None else f"{sampling.top_p:.2f}"
    stop = _sha256(_canonical(list(sampling.stop)))[:16] if sampling.stop else "none"
    return f"t={temperature};p={top_p};stop={stop}"


def scope_of(request: CompletionRequested) -> CacheScope:
    """Everything an entry must match exactly for this request to be served from it."""
    index = last_user_index(request.messages)
    system = [m.content for m in request.messages if m.role is Role.SYSTEM]
    before = [
        _message_form(m)
        for i, m in enumerate(request.messages)
        if m.role is not Role.SYSTEM and (index is None or i < index)
    ]
    after = [
        _message_form(m)
        for i, m in enumerate(request.messages)
        if m.role is not Role.SYSTEM and index is not None and i > index
    ]
    tools_format = {
        "tools": _canonical_json_text(request.tools),
        "response_format": _canonical_json_text(request.response_format),
    }
    return CacheScope(
        tenant_id=request.tenant_id,
        model_alias=request.model_alias,
        system_hash=_sha256(_canonical(system)),
        history_hash=_sha256(_canonical({"before": before, "after": after})),
        tools_format_hash=_sha256(_canonical(tools_format)),
        sampling_bucket=sampling_bucket(request.sampling),
    )


def scope_hash(scope: CacheScope) -> str:
    """One sha256 over every scope field (a single indexed equality in the store)."""
    return _sha256(_canonical(scope.model_dump(mode="json")))


def exact_key(scope: CacheScope, prompt: str) -> str:
    """sha256 of the scope and the normalised prompt; also the cache entry's id."""
    return _sha256(_canonical([scope.model_dump(mode="json"), normalise_prompt(prompt)]))


def request_key(request: CompletionRequested) -> bytes:
    """The Kafka key of a request on ``requests``: its exact key, ASCII hex."""
    return exact_key(scope_of(request), prompt_of(request)).encode("ascii")


def scope_key(scope: CacheScope) -> bytes:
    """The key of ``cache.fill`` / ``cache.invalidate``: tenant and the scope's digest."""
    return f"{scope.tenant_id}/{scope_hash(scope)[:32]}".encode()
