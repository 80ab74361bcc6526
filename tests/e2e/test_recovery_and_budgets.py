"""Crash recovery mid provider call, and budgets enforced through the real topics."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from semnexus_shared.client import RequestFailed, SemNexusClient
from semnexus_shared.config import KafkaSettings, TopicSettings
from semnexus_shared.events import CacheMode, CachePolicy, ResponseStatus

from .conftest import Gateway

pytestmark = pytest.mark.e2e


async def _calls(gateway: Gateway, provider: str) -> int:
    async with httpx.AsyncClient(timeout=5) as http:
        data = (await http.get(f"{gateway.simulator}/_sim/calls")).json()
    return int(data["providers"].get(provider, {}).get("total", 0))


async def _ledger_requests(gateway: Gateway, tenant: str) -> int:
    port = _ledger_port(gateway)
    async with httpx.AsyncClient(timeout=5) as http:
        doc = await http.get(f"http://127.0.0.1:{port}/api/spend", params={"tenant": tenant})
    return int(doc.json()["totals"]["requests"])


def _ledger_port(gateway: Gateway) -> int:
    return int(gateway.env["SEMNEXUS_HTTP__PORT"])


@pytest.fixture
def gateway_env(unused_tcp_port: int) -> dict[str, str]:
    """A fixed ledger port, and a tiny monthly budget that rejects tenant 'spender'."""
    budgets = {"spender": {"monthly_usd": "0.000001", "warn_fraction": "0.5", "action": "reject"}}
    return {"SEMNEXUS_HTTP__PORT": str(unused_tcp_port), "SEMNEXUS_BUDGETS": json.dumps(budgets)}


async def test_worker_killed_mid_call_still_answers_and_charges_once(
    gateway: Gateway, kafka_settings: KafkaSettings
) -> None:
    """SIGKILL during a slow provider call: answered after restart, ≤ 1 extra call, one charge."""
    async with httpx.AsyncClient(timeout=5) as http:
        (
            await http.put(
                f"{gateway.simulator}/_sim/providers/openai/latency",
                json={"kind": "fixed", "ms": 4000},
            )
        ).raise_for_status()
    topics = TopicSettings(prefix=gateway.prefix)
    async with SemNexusClient(kafka_settings, "acme", topics=topics) as client:
        request = client.build(
            "why is the sky blue at noon?", timeout_s=120, cache=CachePolicy(mode=CacheMode.BYPASS)
        )
        pending = asyncio.create_task(client.send(request, timeout_s=120))
        for _ in range(300):
            if await _calls(gateway, "openai") >= 1:
                break
            await asyncio.sleep(0.1)
        assert await _calls(gateway, "openai") == 1, "the call never started"
        gateway.kill("provider-worker")
        gateway.start("provider-worker")
        response = await pending
    assert response.status == ResponseStatus.OK
    calls = await _calls(gateway, "openai")
    assert calls <= 2, f"{calls} provider calls for one request"
    for _ in range(100):
        if await _ledger_requests(gateway, "acme") >= 1:
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(3)  # a duplicate usage event would be charged by now
    assert await _ledger_requests(gateway, "acme") == 1


async def test_a_tenant_over_budget_is_rejected_by_the_router(
    gateway: Gateway, kafka_settings: KafkaSettings
) -> None:
    """Spend crosses the budget → the ledger publishes it → the router rejects the next request."""
    topics = TopicSettings(prefix=gateway.prefix)
    async with SemNexusClient(kafka_settings, "spender", topics=topics) as client:
        first = await client.complete(
            "what is a budget?", timeout_s=90, cache=CachePolicy(mode=CacheMode.BYPASS)
        )
        assert first.status == ResponseStatus.OK
        refused: RequestFailed | None = None
        for n in range(30):
            try:
                await client.complete(
                    f"and another question number {n}?",
                    timeout_s=90,
                    cache=CachePolicy(mode=CacheMode.BYPASS),
                )
            except RequestFailed as exc:
                refused = exc
                break
            await asyncio.sleep(0.5)
    assert refused is not None, "the router never refused the tenant over budget"
    assert refused.status == ResponseStatus.BUDGET_EXCEEDED
