"""The real command: `python -m semnexus_simulator` serves over TCP and stops cleanly."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import httpx

from .conftest import ANTHROPIC_AUTH, OPENAI_AUTH

CONFIG = """
providers:
  openai: {wire: openai, auth: keys, api_keys: [sk-proc]}
  anthropic: {wire: anthropic, rate_limit: {requests: 5, tokens: 10000, window_s: 60}}
  llama: {wire: openai_compatible, auth: none}
"""


async def test_process_serves_all_wires_and_stops(tmp_path: Path) -> None:
    """The process prints one ready line, answers every wire and concurrent calls, exits 0."""
    config = tmp_path / "sim.yaml"
    config.write_text(CONFIG)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "semnexus_simulator",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        match = re.match(r"semnexus-simulator ready on (http://127\.0\.0\.1:\d+) providers: ", line)
        assert match, line
        async with httpx.AsyncClient(base_url=match.group(1), timeout=10) as client:
            chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
            answers = await asyncio.gather(
                *(
                    client.post(
                        "/openai/v1/chat/completions",
                        json=chat,
                        headers={"authorization": "Bearer sk-proc"},
                    )
                    for _ in range(50)
                )
            )
            assert {r.status_code for r in answers} == {200}
            wrong = await client.post("/openai/v1/chat/completions", json=chat, headers=OPENAI_AUTH)
            assert wrong.status_code == 401
            message = await client.post(
                "/anthropic/v1/messages",
                json={
                    "model": "c",
                    "max_tokens": 8,
                    "messages": [{"role": "user", "content": "x"}],
                },
                headers=ANTHROPIC_AUTH,
            )
            assert message.json()["type"] == "message"
            assert message.headers["anthropic-ratelimit-requests-remaining"] == "4"
            models = await client.get("/llama/v1/models")
            assert models.json()["object"] == "list"
            calls = (await client.get("/_sim/calls")).json()
            assert calls["providers"]["openai"]["by_status"] == {"200": 50, "401": 1}
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_bad_config_exits_2(tmp_path: Path) -> None:
    """An invalid config file makes the command exit with status 2 and say why."""
    config = tmp_path / "sim.yaml"
    config.write_text("providers: {p: {wire: carrier-pigeon}}")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "semnexus_simulator",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert b"cannot load simulator config" in stderr
