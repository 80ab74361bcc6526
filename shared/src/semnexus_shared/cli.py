"""The ``semnexus`` command line.

Shared commands live here (``topics``); each service adds its own command
group through the ``semnexus.cli`` entry-point group (for example the
cache-lookup service adds ``semnexus cache ...``), so the CLI never imports a
service that is not installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from importlib.metadata import entry_points
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from semnexus_shared.config import ServiceSettings
from semnexus_shared.errors import SemNexusError
from semnexus_shared.topics import apply_topics, declared_topics, describe_topics

app = typer.Typer(help="SemNexus: an event-driven LLM gateway.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics, from the one declaration.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
console = Console()


@topics_app.command("apply")
def topics_apply() -> None:
    """Create missing topics, grow partition counts, fix drifted configs."""
    settings = ServiceSettings()
    changes = asyncio.run(apply_topics(settings.kafka, settings.topics))
    table = Table("topic", "action", "detail", title=f"topics on {settings.kafka.bootstrap}")
    for change in changes:
        table.add_row(change.topic, change.action, change.detail)
    console.print(table)
    if any(c.action == "cannot-shrink" for c in changes):
        console.print("[yellow]Kafka cannot shrink a topic; recreate it to lower its count.")


@topics_app.command("list")
def topics_list() -> None:
    """The declared topics and their partition counts on the cluster."""
    settings = ServiceSettings()
    specs = declared_topics(settings.topics)
    names = [settings.topics.prefix + s.name for s in specs]
    actual = asyncio.run(describe_topics(settings.kafka, names))
    table = Table("topic", "partitions", "declared", "key", "cleanup", "retention")
    for spec, name in zip(specs, names, strict=True):
        days = f"{spec.retention_ms / 86_400_000:g} d" if spec.cleanup_policy == "delete" else "-"
        table.add_row(
            name,
            str(actual.get(name, "missing")),
            str(spec.partitions),
            spec.key,
            spec.cleanup_policy,
            days,
        )
    console.print(table)


@app.command()
def ask(
    prompt: str,
    tenant: str = typer.Option("demo", help="tenant id"),
    model: str = typer.Option("chat", help="model alias"),
    system: str | None = typer.Option(None, help="system prompt"),
    temperature: float = typer.Option(0.0, help="sampling temperature"),
    timeout: float = typer.Option(30.0, help="seconds to wait for the answer"),
    cache_mode: str = typer.Option("use", help="use | bypass | refresh | only_exact"),
) -> None:
    """Ask one question; print the answer, who answered, similarity and latency."""
    from semnexus_shared.client import ClientError, SemNexusClient  # noqa: PLC0415
    from semnexus_shared.events import CacheMode, CachePolicy  # noqa: PLC0415

    settings = ServiceSettings()

    async def run() -> None:
        async with SemNexusClient(settings.kafka, tenant, topics=settings.topics) as client:
            started = time.perf_counter()
            response = await client.complete(
                prompt,
                model_alias=model,
                system=system,
                temperature=temperature,
                timeout_s=timeout,
                cache=CachePolicy(mode=CacheMode(cache_mode)),
            )
            elapsed_ms = (time.perf_counter() - started) * 1000
        console.print(response.text)
        src = response.source
        where = (
            f"cache (similarity {src.similarity:.3f}, entry age {src.cache_entry_age_ms} ms)"
            if src and src.kind.value == "cache" and src.similarity is not None
            else f"{src.provider}/{src.model}"
            if src
            else "?"
        )
        stages = ", ".join(f"{s.stage} {s.duration_ms} ms" for s in response.latency)
        console.print(
            f"[dim]source: {where} | attempts: {len(response.attempts)} | "
            f"tokens: {response.usage.input_tokens} in / {response.usage.output_tokens} out | "
            f"latency: {elapsed_ms:.0f} ms{' (' + stages + ')' if stages else ''}[/dim]"
        )

    try:
        asyncio.run(run())
    except ClientError as exc:
        console.print(f"[red]{type(exc).__name__}: {exc}")
        raise typer.Exit(1) from exc


@app.command()
def tail(
    topic: str = typer.Argument("responses", help="topic to follow (prefix applied)"),
    from_beginning: bool = typer.Option(False, "--from-beginning"),
    limit: int = typer.Option(0, help="stop after this many events (0: follow)"),
) -> None:
    """Follow a topic and print each event decoded, one JSON line each."""
    from aiokafka import AIOKafkaConsumer  # noqa: PLC0415

    from semnexus_shared.serde import Codec, SchemaRegistry  # noqa: PLC0415

    settings = ServiceSettings()
    codec = Codec(SchemaRegistry.load())
    full = settings.topics.prefix + topic

    async def run() -> None:
        consumer = AIOKafkaConsumer(
            full,
            **settings.kafka.consumer_args(),
            group_id=None,
            auto_offset_reset="earliest" if from_beginning else "latest",
        )
        await consumer.start()
        seen = 0
        try:
            async for record in consumer:
                try:
                    event = codec.decode(record.value)
                    line = (
                        f'{{"type": "{type(event).__name__}", "event": {event.model_dump_json()}}}'
                    )
                except SemNexusError as exc:
                    line = f'{{"undecodable": "{type(exc).__name__}", "offset": {record.offset}}}'
                print(line, flush=True)
                seen += 1
                if limit and seen >= limit:
                    return
        finally:
            await consumer.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


@app.command()
def demo(
    duration: float = typer.Option(60.0, help="seconds of traffic"),
    start_rps: float = typer.Option(3.0, help="requests/s at the start"),
    peak_rps: float = typer.Option(30.0, help="requests/s at the end (tenfold by default)"),
    data: Path = typer.Option(
        Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "qqp_dev.jsonl",
        help="QQP-style JSONL of labelled question pairs",
    ),
    simulator: str = typer.Option("http://127.0.0.1:8900", help="provider simulator URL"),
    primary: str = typer.Option("openai", help="provider forced into 429 half-way"),
    ledger: str = typer.Option("http://127.0.0.1:8700", help="cost-ledger API URL"),
) -> None:
    """Replay a tenfold traffic burst through the running pipeline and print a report."""
    import httpx  # noqa: PLC0415

    from semnexus_shared.client import ClientError  # noqa: PLC0415
    from semnexus_shared.demo import (  # noqa: PLC0415
        Plan,
        fresh_start,
        report,
        run_burst,
        wait_until_serving,
    )

    settings = ServiceSettings()
    plan = Plan(duration_s=duration, start_rps=start_rps, peak_rps=peak_rps)
    try:
        asyncio.run(wait_until_serving(settings, console))
    except ClientError as exc:
        console.print(f"[red]the pipeline did not answer a first request: {exc}")
        raise typer.Exit(1) from exc
    httpx.post(f"{simulator}/_sim/reset", timeout=5).raise_for_status()
    asyncio.run(fresh_start(settings, console))
    before = _ledger_totals(ledger)
    outcomes = asyncio.run(
        run_burst(
            settings, plan=plan, data=data, simulator=simulator, primary=primary, console=console
        )
    )
    calls = httpx.get(f"{simulator}/_sim/calls", timeout=5).json()
    time.sleep(3)  # the ledger charges in batches; let the last one land
    after = _ledger_totals(ledger)
    spend = None
    if before is not None and after is not None:
        # this run's share: the ledger keeps every earlier run too
        spend = {k: v - before.get(k, 0) for k, v in after.items() if isinstance(v, int)}
    errors = report(outcomes, calls, spend, console)
    if errors:
        raise typer.Exit(1)


def _ledger_totals(ledger: str) -> dict[str, int] | None:
    import httpx  # noqa: PLC0415

    try:
        totals = httpx.get(f"{ledger}/api/spend", timeout=5).json()["totals"]
    except (httpx.HTTPError, KeyError, ValueError):
        return None
    return {k: v for k, v in totals.items() if isinstance(v, int)}


def _load_plugins() -> None:
    for ep in entry_points(group="semnexus.cli"):
        sub = ep.load()
        app.add_typer(sub, name=ep.name)


_load_plugins()
