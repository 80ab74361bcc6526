"""The OpenAI chat completions wire format, and the OpenAI-compatible variant."""

from __future__ import annotations

import re

import httpx
from pydantic import SecretStr

from semnexus_simulator import ProviderConfig, SimulatorConfig, Wire
from semnexus_simulator.ratelimit import format_duration

from .conftest import OPENAI_AUTH, ClientFactory
from .sse import openai_chunks, openai_text

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?$")


def parse_duration(value: str) -> float:
    """Seconds in an OpenAI reset duration such as '20ms', '1.5s' or '6m0s'."""
    match = _DURATION.match(value)
    assert value, "empty duration"
    assert match is not None, f"not a duration: {value!r}"
    hours, minutes, seconds, millis = match.groups()
    return (
        int(hours or 0) * 3600
        + int(minutes or 0) * 60
        + float(seconds or 0)
        + int(millis or 0) / 1000
    )


def chat(content: str = "Hello there", **extra: object) -> dict[str, object]:
    """A chat completions body."""
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}], **extra}


async def test_response_fields(client: httpx.AsyncClient) -> None:
    """A completion has OpenAI's fields with OpenAI's types."""
    response = await client.post("/openai/v1/chat/completions", json=chat(), headers=OPENAI_AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert isinstance(body["created"], int)
    assert body["model"] == "gpt-4o-mini"
    (choice,) = body["choices"]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert choice["message"]["content"]
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0
    assert usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0


async def test_rate_limit_headers(client: httpx.AsyncClient) -> None:
    """The six x-ratelimit headers are present, integral or durations, and count down."""
    first = await client.post("/openai/v1/chat/completions", json=chat(), headers=OPENAI_AUTH)
    second = await client.post("/openai/v1/chat/completions", json=chat(), headers=OPENAI_AUTH)
    for response in (first, second):
        headers = response.headers
        assert re.fullmatch(r"req_[0-9a-f]{32}", headers["x-request-id"])
        for name in ("limit-requests", "limit-tokens", "remaining-requests", "remaining-tokens"):
            assert int(headers[f"x-ratelimit-{name}"]) >= 0
        for name in ("reset-requests", "reset-tokens"):
            assert 0 <= parse_duration(headers[f"x-ratelimit-{name}"]) <= 60
    assert int(second.headers["x-ratelimit-remaining-requests"]) == (
        int(first.headers["x-ratelimit-remaining-requests"]) - 1
    )
    used = first.json()["usage"]["total_tokens"]
    assert int(first.headers["x-ratelimit-remaining-tokens"]) == 200_000 - used


def test_reset_durations_look_like_openais() -> None:
    """Reset values are written as OpenAI writes them and parse back to the same seconds."""
    assert format_duration(0.02) == "20ms"
    assert format_duration(1) == "1s"
    assert format_duration(1.5) == "1.5s"
    assert format_duration(360) == "6m0s"
    assert format_duration(3723) == "1h2m3s"
    for seconds in (0.02, 1.5, 360, 3723):
        assert parse_duration(format_duration(seconds)) == seconds


async def test_max_tokens_truncates_with_length(client: httpx.AsyncClient) -> None:
    """max_tokens cuts the answer to that many tokens with finish_reason length."""
    response = await client.post(
        "/openai/v1/chat/completions", json=chat(max_tokens=4), headers=OPENAI_AUTH
    )
    body = response.json()
    assert body["usage"]["completion_tokens"] == 4
    assert body["choices"][0]["finish_reason"] == "length"


async def test_answers_are_deterministic(client: httpx.AsyncClient) -> None:
    """The same prompt gets the same answer; another prompt gets another."""

    async def ask(content: str) -> str:
        response = await client.post(
            "/openai/v1/chat/completions", json=chat(content), headers=OPENAI_AUTH
        )
        return str(response.json()["choices"][0]["message"]["content"])

    assert await ask("What is Kafka?") == await ask("What is Kafka?")
    assert await ask("What is Kafka?") != await ask("What is Milvus?")


async def test_long_repeated_prompt_reports_cached_tokens(client: httpx.AsyncClient) -> None:
    """A repeated prompt of 1024+ tokens reports 128-token blocks as cached."""
    long_prompt = "word " * 1500
    first = await client.post(
        "/openai/v1/chat/completions", json=chat(long_prompt), headers=OPENAI_AUTH
    )
    second = await client.post(
        "/openai/v1/chat/completions", json=chat(long_prompt), headers=OPENAI_AUTH
    )
    assert first.json()["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    cached = second.json()["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert cached > 1024
    assert cached % 128 == 0
    assert cached <= second.json()["usage"]["prompt_tokens"]


async def test_stream_reassembles_with_usage(client: httpx.AsyncClient) -> None:
    """A stream's chunks reassemble the non-streamed answer and end with usage and [DONE]."""
    plain = await client.post("/openai/v1/chat/completions", json=chat(), headers=OPENAI_AUTH)
    streamed = await client.post(
        "/openai/v1/chat/completions",
        json=chat(stream=True, stream_options={"include_usage": True}),
        headers=OPENAI_AUTH,
    )
    assert streamed.headers["content-type"].startswith("text/event-stream")
    chunks, done = openai_chunks(streamed.text)
    assert done
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert openai_text(chunks) == plain.json()["choices"][0]["message"]["content"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == plain.json()["usage"]


async def test_stream_without_include_usage_has_no_usage(client: httpx.AsyncClient) -> None:
    """Without stream_options.include_usage no chunk carries usage."""
    streamed = await client.post(
        "/openai/v1/chat/completions", json=chat(stream=True), headers=OPENAI_AUTH
    )
    chunks, done = openai_chunks(streamed.text)
    assert done
    assert all("usage" not in chunk for chunk in chunks)


async def test_missing_key_is_401(client: httpx.AsyncClient) -> None:
    """No Authorization header is a 401 in OpenAI's error format."""
    response = await client.post("/openai/v1/chat/completions", json=chat())
    assert response.status_code == 401
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"


async def test_wrong_key_is_401_invalid_api_key(make_client: ClientFactory) -> None:
    """With configured keys, any other key is a 401 with code invalid_api_key."""
    config = SimulatorConfig(
        providers={
            "openai": ProviderConfig(
                wire=Wire.OPENAI, auth="keys", api_keys=(SecretStr("sk-right"),)
            )
        }
    )
    client = await make_client(config)
    wrong = await client.post(
        "/openai/v1/chat/completions", json=chat(), headers={"authorization": "Bearer sk-wrong"}
    )
    right = await client.post(
        "/openai/v1/chat/completions", json=chat(), headers={"authorization": "Bearer sk-right"}
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_api_key"
    assert "sk-wrong" not in wrong.json()["error"]["message"]
    assert right.status_code == 200


async def test_invalid_body_is_400(client: httpx.AsyncClient) -> None:
    """A body without messages is a 400 naming the parameter."""
    response = await client.post(
        "/openai/v1/chat/completions", json={"model": "gpt-4o-mini"}, headers=OPENAI_AUTH
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages"


async def test_compatible_server_has_no_rate_limit_headers(client: httpx.AsyncClient) -> None:
    """The self-hosted OpenAI-compatible server needs no key and sends no x-ratelimit headers."""
    response = await client.post(
        "/llama/v1/chat/completions",
        json={
            "model": "meta-llama/Llama-3.1-8B-Instruct",
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    assert response.status_code == 200
    assert response.json()["object"] == "chat.completion"
    assert not [name for name in response.headers if name.startswith("x-ratelimit")]


async def test_models_route(client: httpx.AsyncClient) -> None:
    """GET /v1/models lists the configured models in OpenAI's list format."""
    response = await client.get("/llama/v1/models")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert [model["id"] for model in body["data"]] == ["meta-llama/Llama-3.1-8B-Instruct"]
    assert all(model["object"] == "model" for model in body["data"])
