"""``semnexus demo``: a viral burst through the whole local pipeline, and a report.

Questions come from Quora Question Pairs (``../shared/data/qqp_dev.jsonl``
beside the repository, or ``--data``): each topic has an original question
and a paraphrase. Topics are drawn Zipf-skewed (a few questions go viral),
repeats are sent as the original or the paraphrase, three tenants share the
gateway, and the request rate rises tenfold over the run. Half-way, the
primary provider is forced into 429s through the simulator's control API.
The report says what an operator wants to know: requests, cache hit rate,
provider calls, failovers, errors apps saw, latency, cost and savings.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from semnexus_shared.client import ClientError, RequestFailed, SemNexusClient
from semnexus_shared.config import ServiceSettings
from semnexus_shared.events import (
    CacheInvalidated,
    CompletionResponded,
    InvalidationTarget,
    SourceKind,
)
from semnexus_shared.serde import Codec, SchemaRegistry
from semnexus_shared.topics import TopicNames

TENANTS = ("acme", "globex", "initech")


@dataclass(frozen=True)
class Topic:
    """One question and a paraphrase of it."""

    original: str
    paraphrase: str


@dataclass
class Outcome:
    """What one request got, as the app saw it."""

    tenant: str
    latency_ms: float
    response: CompletionResponded | None = None
    error: str | None = None


@dataclass
class Plan:
    """The traffic shape."""

    duration_s: float = 60.0
    start_rps: float = 3.0
    peak_rps: float = 30.0
    topics: int = 300
    zipf_s: float = 1.1
    fault_at: float = 0.5
    fault_for_s: float = 20.0
    retry_after_s: int = 10
    seed: int = 7
    sent: list[float] = field(default_factory=list)


def load_topics(path: Path, count: int, rng: random.Random) -> list[Topic]:
    """Paraphrase pairs from a QQP-style JSONL file, or built-in ones when it is absent."""
    pairs: list[Topic] = []
    if path.exists():
        with path.open() as handle:
            for line in handle:
                row = json.loads(line)
                if row.get("label") == 1 and len(row["text_a"]) < 200:
                    pairs.append(Topic(row["text_a"].strip(), row["text_b"].strip()))
        rng.shuffle(pairs)
        return pairs[:count]
    subjects = [
        "Kafka",
        "Python",
        "a sourdough starter",
        "the stock market",
        "jet lag",
        "a job interview",
        "learning Spanish",
        "a vegetable garden",
        "a marathon",
    ]
    for n in range(count):
        subject = subjects[n % len(subjects)]
        pairs.append(
            Topic(
                f"How do I get started with {subject} (part {n})?",
                f"What is the best way to begin with {subject}, part {n}?",
            )
        )
    return pairs


def zipf_weights(n: int, s: float) -> list[float]:
    """Weights of ranks 1..n under Zipf's law."""
    return [1.0 / (rank**s) for rank in range(1, n + 1)]


PROBE_TENANT = "demo-probe"


async def wait_until_serving(
    settings: ServiceSettings, console: Console, timeout_s: float = 240.0
) -> float:
    """Ask one question end to end and wait for its answer; the seconds it took.

    Services that have just started may not answer yet: they load models and
    join their consumer groups, and a Milvus server that has just restarted
    holds the first read of an existing collection until it has recovered it
    (111 s for the local stack's much-rewritten collection here, with the
    collection already reported loaded). The burst's requests time out after
    30 s, so they must not start before the pipeline answers. The probe is a
    new question of its own tenant, so it takes the whole path (exact lookup,
    vector search, a provider call, a fill) without touching the demo tenants'
    entries, and it is asked before the simulator's counters are reset.
    """
    client = SemNexusClient(settings.kafka, PROBE_TENANT, topics=settings.topics)
    await client.start()
    started = time.perf_counter()
    try:
        with console.status("waiting for the services to answer a first request"):
            await client.complete(
                f"semnexus demo: are you serving? ({uuid.uuid4()})",
                model_alias="chat",
                timeout_s=timeout_s,
            )
    finally:
        await client.close()
    waited = time.perf_counter() - started
    console.print(f"services answering (the first answer took {waited:.1f}s)")
    return waited


async def fresh_start(settings: ServiceSettings, console: Console) -> None:
    """Drop the demo tenants' cache entries, so each run starts cold (and shows invalidation)."""
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415  (adapter import)

    codec = Codec(SchemaRegistry.load(settings.schemas_dir))
    topic = TopicNames(settings.topics).cache_invalidate
    producer = AIOKafkaProducer(**settings.kafka.client_args(), acks="all")
    await producer.start()
    try:
        for tenant in TENANTS:
            event = CacheInvalidated(
                tenant_id=tenant,
                target=InvalidationTarget.TENANT,
                reason="semnexus demo: cold start",
            )
            await producer.send_and_wait(
                topic, codec.encode(event), key=f"tenant:{tenant}".encode()
            )
    finally:
        await producer.stop()
    await asyncio.sleep(3)  # the writer applies it; Bounded reads see it after gracefulTime
    console.print(f"cache invalidated for {', '.join(TENANTS)}: this run starts cold")


async def _force_429(simulator: str, provider: str, plan: Plan, console: Console) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        await http.post(
            f"{simulator}/_sim/providers/{provider}/faults",
            json={"rate_limit": {"for_s": plan.fault_for_s, "retry_after_s": plan.retry_after_s}},
        )
    console.print(
        f"[yellow]t+{plan.duration_s * plan.fault_at:.0f}s: {provider} now answers 429 "
        f"(retry-after {plan.retry_after_s}s) for {plan.fault_for_s:.0f}s"
    )


async def run_burst(
    settings: ServiceSettings,
    *,
    plan: Plan,
    data: Path,
    simulator: str,
    primary: str,
    console: Console,
) -> list[Outcome]:
    """Send the burst; return every request's outcome."""
    rng = random.Random(plan.seed)
    topics = load_topics(data, plan.topics, rng)
    weights = zipf_weights(len(topics), plan.zipf_s)
    asked: set[int] = set()
    outcomes: list[Outcome] = []
    clients = {t: SemNexusClient(settings.kafka, t, topics=settings.topics) for t in TENANTS}
    for client in clients.values():
        await client.start()
    tasks: list[asyncio.Task[None]] = []

    async def one(tenant: str, question: str) -> None:
        started = time.perf_counter()
        try:
            response = await clients[tenant].complete(question, model_alias="chat", timeout_s=30)
            outcomes.append(Outcome(tenant, (time.perf_counter() - started) * 1000, response))
        except RequestFailed as exc:
            outcomes.append(
                Outcome(
                    tenant, (time.perf_counter() - started) * 1000, exc.response, error=str(exc)
                )
            )
        except ClientError as exc:
            outcomes.append(
                Outcome(
                    tenant,
                    (time.perf_counter() - started) * 1000,
                    error=f"{type(exc).__name__}: {exc}",
                )
            )

    try:
        begin = time.monotonic()
        faulted = False
        next_at = 0.0
        while (elapsed := time.monotonic() - begin) < plan.duration_s:
            if not faulted and elapsed >= plan.duration_s * plan.fault_at:
                faulted = True
                await _force_429(simulator, primary, plan, console)
            if elapsed < next_at:
                await asyncio.sleep(min(next_at - elapsed, 0.05))
                continue
            rate = plan.start_rps + (plan.peak_rps - plan.start_rps) * elapsed / plan.duration_s
            next_at += rng.expovariate(rate)
            index = rng.choices(range(len(topics)), weights)[0]
            topic = topics[index]
            question = topic.original
            if index in asked and rng.random() < 0.5:
                question = topic.paraphrase
            asked.add(index)
            tenant = rng.choices(TENANTS, (0.6, 0.3, 0.1))[0]
            tasks.append(asyncio.create_task(one(tenant, question)))
        console.print(f"sent {len(tasks)} requests in {plan.duration_s:.0f}s; waiting for answers")
        await asyncio.gather(*tasks)
    finally:
        for client in clients.values():
            await client.close()
    return outcomes


def _usd(micros: int) -> str:
    return f"${micros / 1_000_000:.6f}"


def _statuses(info: dict[str, Any]) -> str:
    return ", ".join(f"{status}: {n}" for status, n in info.get("by_status", {}).items())


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(
    outcomes: list[Outcome],
    calls: dict[str, Any],
    spend: dict[str, Any] | None,
    console: Console,
) -> int:
    """Print the run's report; return the number of errors apps saw."""
    ok = [o for o in outcomes if o.error is None and o.response is not None]
    errors = [o for o in outcomes if o.error is not None]
    hits = [
        o
        for o in ok
        if o.response and o.response.source and o.response.source.kind == SourceKind.CACHE
    ]
    failovers = [o for o in ok if o.response and len(o.response.attempts) > 1]
    hit_lat = [o.latency_ms for o in hits]
    miss_lat = [o.latency_ms for o in ok if o not in hits]
    all_lat = [o.latency_ms for o in ok]
    table = Table(title="SemNexus demo report", show_header=False)
    table.add_row("requests", str(len(outcomes)))
    table.add_row("answered", str(len(ok)))
    table.add_row("errors seen by apps", f"[{'red' if errors else 'green'}]{len(errors)}")
    table.add_row("cache hit rate", f"{len(hits) / max(len(ok), 1):.1%} ({len(hits)} hits)")
    per_provider = ", ".join(
        f"{name} {info.get('total', 0)} ({_statuses(info)})"
        for name, info in calls.get("providers", {}).items()
    )
    table.add_row("provider calls", f"{calls.get('total', 0)}: {per_provider}")
    table.add_row("requests that failed over", str(len(failovers)))
    table.add_row(
        "latency p50 / p99 (all)", f"{_pct(all_lat, 0.5):.0f} / {_pct(all_lat, 0.99):.0f} ms"
    )
    table.add_row(
        "latency p50 / p99 (cache hits)", f"{_pct(hit_lat, 0.5):.0f} / {_pct(hit_lat, 0.99):.0f} ms"
    )
    table.add_row(
        "latency p50 / p99 (provider)", f"{_pct(miss_lat, 0.5):.0f} / {_pct(miss_lat, 0.99):.0f} ms"
    )
    if spend is not None:
        table.add_row(
            "cost (ledger, this run)",
            f"{_usd(spend.get('cost_micros', 0))} ({spend.get('input_tokens', 0)} in / "
            f"{spend.get('output_tokens', 0)} out tokens; failed attempts "
            f"{_usd(spend.get('failed_cost_micros', 0))})",
        )
        table.add_row(
            "saved by the cache (ledger, this run)",
            f"{_usd(spend.get('cache_saved_micros', 0))} over {spend.get('cache_hits', 0)} hits",
        )
        if spend.get("unpriced_events"):
            table.add_row("unpriced usage events", str(spend["unpriced_events"]))
    stages: dict[str, list[float]] = {}
    for outcome in hits:
        for stage in outcome.response.latency if outcome.response else ():
            stages.setdefault(stage.stage, []).append(stage.duration_ms)
    if stages:
        table.add_row(
            "cache-hit stages, p50 (ms)",
            ", ".join(f"{name} {_pct(v, 0.5):.0f}" for name, v in stages.items()),
        )
    by_tenant = Counter(o.tenant for o in ok)
    table.add_row("answered per tenant", ", ".join(f"{t}: {n}" for t, n in by_tenant.items()))
    console.print(table)
    if errors:
        for reason, count in Counter(o.error for o in errors).most_common(5):
            console.print(f"[red]{count} x {reason}")
    if all_lat:
        console.print(f"[dim]mean latency {statistics.fmean(all_lat):.0f} ms[/dim]")
    return len(errors)
