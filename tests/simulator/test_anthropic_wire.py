"""The Anthropic messages wire format."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx

from .conftest import ANTHROPIC_AUTH, ManualClock
from .sse import anthropic_events


def message(content: object = "Hello there", **extra: object) -> dict[str, object]:
    """A messages body."""
    return {
        "model": "claude-3-5-haiku-latest",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": content}],
        **extra,
    }


async def test_response_fields(client: httpx.AsyncClient) -> None:
    """A message has Anthropic's fields with Anthropic's types."""
    response = await client.post(
        "/anthropic/v1/messages", json=message(system="Be brief."), headers=ANTHROPIC_AUTH
    )
    assert response.status_code == 200
    body = response.json()
    assert re.fullmatch(r"msg_[A-Za-z0-9]+", body["id"])
    assert body["type"] == "message"
    assert body["role"] == "assistant"
    assert body["model"] == "claude-3-5-haiku-latest"
    (block,) = body["content"]
    assert block["type"] == "text"
    assert isinstance(block["text"], str)
    assert block["text"]
    assert body["stop_reason"] == "end_turn"
    usage = body["usage"]
    assert usage["input_tokens"] > 0
    assert usage["output_tokens"] > 0
    assert usage["cache_read_input_tokens"] == 0
    assert usage["cache_creation_input_tokens"] == 0


async def test_rate_limit_headers_reset_in_rfc3339(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """Every anthropic-ratelimit header is present; resets are RFC 3339 UTC within the window."""
    response = await client.post("/anthropic/v1/messages", json=message(), headers=ANTHROPIC_AUTH)
    headers = response.headers
    assert headers["request-id"].startswith("req_")
    for kind in ("requests", "tokens", "input-tokens", "output-tokens"):
        assert int(headers[f"anthropic-ratelimit-{kind}-limit"]) > 0
        assert int(headers[f"anthropic-ratelimit-{kind}-remaining"]) >= 0
        reset = datetime.fromisoformat(headers[f"anthropic-ratelimit-{kind}-reset"])
        assert reset.tzinfo is not None
        assert reset.utcoffset() == UTC.utcoffset(None)
        assert 0 <= (reset - clock.now()).total_seconds() <= 60
    assert int(headers["anthropic-ratelimit-requests-remaining"]) == (
        int(headers["anthropic-ratelimit-requests-limit"]) - 1
    )


async def test_max_tokens_truncates_with_stop_reason(client: httpx.AsyncClient) -> None:
    """max_tokens cuts the answer to that many tokens with stop_reason max_tokens."""
    response = await client.post(
        "/anthropic/v1/messages", json=message(max_tokens=3), headers=ANTHROPIC_AUTH
    )
    body = response.json()
    assert body["usage"]["output_tokens"] == 3
    assert body["stop_reason"] == "max_tokens"


async def test_max_tokens_is_required(client: httpx.AsyncClient) -> None:
    """A body without max_tokens is a 400 invalid_request_error."""
    body = message()
    del body["max_tokens"]
    response = await client.post("/anthropic/v1/messages", json=body, headers=ANTHROPIC_AUTH)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_missing_version_header_is_400(client: httpx.AsyncClient) -> None:
    """A call without anthropic-version is refused with 400."""
    response = await client.post(
        "/anthropic/v1/messages", json=message(), headers={"x-api-key": "sk-ant-test"}
    )
    assert response.status_code == 400
    assert "anthropic-version" in response.json()["error"]["message"]


async def test_missing_key_is_401(client: httpx.AsyncClient) -> None:
    """No x-api-key is a 401 authentication_error in Anthropic's error format."""
    response = await client.post(
        "/anthropic/v1/messages", json=message(), headers={"anthropic-version": "2023-06-01"}
    )
    assert response.status_code == 401
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "authentication_error"
    assert body["request_id"] == response.headers["request-id"]


async def test_stream_event_sequence(client: httpx.AsyncClient) -> None:
    """A stream follows Anthropic's event order and reassembles the plain answer with usage."""
    plain = await client.post("/anthropic/v1/messages", json=message(), headers=ANTHROPIC_AUTH)
    streamed = await client.post(
        "/anthropic/v1/messages", json=message(stream=True), headers=ANTHROPIC_AUTH
    )
    assert streamed.headers["content-type"].startswith("text/event-stream")
    pairs = anthropic_events(streamed.text)
    names = [name for name, _ in pairs]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    start = pairs[0][1]["message"]
    assert start["id"].startswith("msg_")
    assert start["content"] == []
    assert start["usage"]["input_tokens"] == plain.json()["usage"]["input_tokens"]
    text = "".join(data["delta"]["text"] for name, data in pairs if name == "content_block_delta")
    assert text == plain.json()["content"][0]["text"]
    delta = pairs[-2][1]
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"]["output_tokens"] == plain.json()["usage"]["output_tokens"]


async def test_cache_control_reads_cache_on_repeat(client: httpx.AsyncClient) -> None:
    """A long prompt marked cache_control creates cache first and reads it on repeat."""
    system = [{"type": "text", "text": "rule " * 1500, "cache_control": {"type": "ephemeral"}}]
    first = await client.post(
        "/anthropic/v1/messages", json=message(system=system), headers=ANTHROPIC_AUTH
    )
    second = await client.post(
        "/anthropic/v1/messages", json=message(system=system), headers=ANTHROPIC_AUTH
    )
    created = first.json()["usage"]["cache_creation_input_tokens"]
    read = second.json()["usage"]["cache_read_input_tokens"]
    assert created >= 1024
    assert first.json()["usage"]["cache_read_input_tokens"] == 0
    assert read == created
    assert second.json()["usage"]["input_tokens"] == first.json()["usage"]["input_tokens"]
