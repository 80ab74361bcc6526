"""The ``semnexus`` command line.

Shared commands live here (``topics``); each service adds its own command
group through the ``semnexus.cli`` entry-point group (for example the
cache-lookup service adds ``semnexus cache ...``), so the CLI never imports a
service that is not installed.
"""

from __future__ import annotations

import asyncio
from importlib.metadata import entry_points

import typer
from rich.console import Console
from rich.table import Table

from semnexus_shared.config import ServiceSettings
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
        table.add_row(name, str(actual.get(name, "missing")), str(spec.partitions), spec.key,
                      spec.cleanup_policy, days)
    console.print(table)


def _load_plugins() -> None:
    for ep in entry_points(group="semnexus.cli"):
        sub = ep.load()
        app.add_typer(sub, name=ep.name)


_load_plugins()
