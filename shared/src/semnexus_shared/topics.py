"""Every Kafka topic SemNexus uses, declared once, and the command that applies them.

The declaration is the single source of truth for name, partition count, key,
retention and cleanup policy. :func:`apply_topics` makes the cluster match it
idempotently: missing topics are created, a raised partition count grows the
topic (Kafka cannot shrink one; a lower count is reported, never applied), and
drifted configs (retention, cleanup policy) are altered back.

A :class:`TopicNames` built from :class:`~semnexus_shared.config.TopicSettings`
gives every service the same names, prefixed so that a test or a region can run
its own pipeline on one cluster.

Run as ``python -m semnexus_shared.topics --bootstrap HOST:PORT ping|apply|list``;
``semnexus topics apply`` is the same command in the CLI.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from typing import Any

from semnexus_shared.config import KafkaSettings, TopicSettings
from semnexus_shared.errors import SemNexusError

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic as declared: its name without prefix, layout and retention."""

    name: str
    partitions: int
    key: str
    retention_ms: int
    cleanup_policy: str = "delete"
    description: str = ""

    def configs(self) -> dict[str, str]:
        """The topic-level configs Kafka should hold for this spec."""
        cfg = {"cleanup.policy": self.cleanup_policy}
        if self.cleanup_policy == "delete":
            cfg["retention.ms"] = str(self.retention_ms)
        return cfg


def declared_topics(settings: TopicSettings) -> list[TopicSpec]:
    """The whole declaration; provider topics follow the configured provider names."""
    specs = [
        TopicSpec(
            "requests",
            12,
            "request key: hash of cache scope + normalised prompt",
            7 * DAY_MS,
            description="CompletionRequested from apps",
        ),
        TopicSpec(
            "cache.missed",
            12,
            "request_id",
            1 * DAY_MS,
            description="CacheMissed, with the query embedding",
        ),
        TopicSpec(
            "responses",
            12,
            "request_id",
            1 * DAY_MS,
            description="CompletionResponded, the default reply topic",
        ),
        TopicSpec(
            "cache.fill",
            6,
            "cache scope",
            1 * DAY_MS,
            description="CacheFilled: cacheable answers with their embedding",
        ),
        TopicSpec(
            "cache.invalidate", 3, "cache scope", 0, "compact", description="CacheInvalidated"
        ),
        TopicSpec(
            "usage",
            6,
            "tenant_id",
            400 * DAY_MS,
            description="UsageRecorded; the ledger can be rebuilt from it",
        ),
        TopicSpec(
            "provider.health", 3, "provider", 0, "compact", description="ProviderHealthChanged"
        ),
        TopicSpec("budget", 3, "tenant_id", 0, "compact", description="BudgetChanged"),
        TopicSpec(
            "deadletter",
            3,
            "source topic",
            30 * DAY_MS,
            description="DeadLettered: original bytes and why",
        ),
    ]
    specs += [
        TopicSpec(
            f"provider.{p}",
            12,
            "request_id",
            1 * DAY_MS,
            description=f"ProviderCallRequested for {p}",
        )
        for p in settings.providers
    ]
    return specs


class TopicNames:
    """Full topic names for one pipeline (prefix applied)."""

    def __init__(self, settings: TopicSettings) -> None:
        self._prefix = settings.prefix
        self.requests = self.full("requests")
        self.cache_missed = self.full("cache.missed")
        self.responses = self.full("responses")
        self.cache_fill = self.full("cache.fill")
        self.cache_invalidate = self.full("cache.invalidate")
        self.usage = self.full("usage")
        self.provider_health = self.full("provider.health")
        self.budget = self.full("budget")
        self.deadletter = self.full("deadletter")

    def full(self, name: str) -> str:
        """The prefixed name of a declared topic."""
        return f"{self._prefix}{name}"

    def provider(self, provider: str) -> str:
        """The topic a provider's worker consumes."""
        return self.full(f"provider.{provider}")


@dataclass(frozen=True, slots=True)
class TopicChange:
    """What :func:`apply_topics` did (or refused to do) to one topic."""

    topic: str
    action: str  # created | grown | configured | unchanged | cannot-shrink
    detail: str = ""


def _admin(kafka: KafkaSettings) -> Any:
    from aiokafka.admin import AIOKafkaAdminClient  # noqa: PLC0415  (adapter import)

    return AIOKafkaAdminClient(
        **kafka.client_args(),
        request_timeout_ms=int(kafka.request_timeout_s * 1000),
    )


async def ping(kafka: KafkaSettings) -> int:
    """Number of brokers in the cluster's metadata; raises when unreachable."""
    admin = _admin(kafka)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        return len(cluster["brokers"])
    finally:
        await admin.close()


async def apply_topics(
    kafka: KafkaSettings, topics: TopicSettings, specs: list[TopicSpec] | None = None
) -> list[TopicChange]:
    """Make the cluster hold every declared topic as declared; idempotent."""
    # Adapter imports: aiokafka stays out of modules that only need the declaration.
    from aiokafka.admin import NewPartitions, NewTopic  # noqa: PLC0415
    from aiokafka.admin.config_resource import (  # noqa: PLC0415
        ConfigResource,
        ConfigResourceType,
    )

    specs = declared_topics(topics) if specs is None else specs
    admin = _admin(kafka)
    await admin.start()
    changes: list[TopicChange] = []
    try:
        existing = set(await admin.list_topics())
        wanted = {topics.prefix + s.name: s for s in specs}
        to_create = [n for n in wanted if n not in existing]
        if to_create:
            await admin.create_topics(
                [
                    NewTopic(
                        name=n,
                        num_partitions=wanted[n].partitions,
                        replication_factor=topics.replication_factor,
                        topic_configs=wanted[n].configs(),
                    )
                    for n in to_create
                ]
            )
            changes += [
                TopicChange(n, "created", f"{wanted[n].partitions} partitions") for n in to_create
            ]
        present = [n for n in wanted if n in existing]
        if present:
            described = await admin.describe_topics(present)
            counts = {d["topic"]: len(d["partitions"]) for d in described}
            grow = {}
            for n in present:
                have, want = counts[n], wanted[n].partitions
                if want > have:
                    grow[n] = NewPartitions(total_count=want)
                    changes.append(TopicChange(n, "grown", f"{have} -> {want} partitions"))
                elif want < have:
                    changes.append(TopicChange(n, "cannot-shrink", f"has {have}, declared {want}"))
            if grow:
                await admin.create_partitions(grow)
            resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in present]
            responses = await admin.describe_configs(resources)
            actual: dict[str, dict[str, str]] = {}
            for response in responses:
                for _err, _msg, _rtype, rname, entries in response.resources:
                    actual[rname] = {e[0]: e[1] for e in entries}
            alters = []
            for n in present:
                drift = {
                    k: v for k, v in wanted[n].configs().items() if actual.get(n, {}).get(k) != v
                }
                if drift:
                    # Full desired set: the legacy AlterConfigs call replaces, not merges.
                    alters.append(ConfigResource(ConfigResourceType.TOPIC, n, wanted[n].configs()))
                    changes.append(TopicChange(n, "configured", ", ".join(sorted(drift))))
            if alters:
                await admin.alter_configs(alters)
        touched = {c.topic for c in changes}
        changes += [TopicChange(n, "unchanged") for n in wanted if n not in touched]
    finally:
        await admin.close()
    return sorted(changes, key=lambda c: c.topic)


async def describe_topics(kafka: KafkaSettings, names: list[str]) -> dict[str, int]:
    """Partition count of each named topic that exists."""
    admin = _admin(kafka)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        present = [n for n in names if n in existing]
        described = await admin.describe_topics(present) if present else []
        return {d["topic"]: len(d["partitions"]) for d in described}
    finally:
        await admin.close()


class TopicMissing(SemNexusError):
    """A topic a process needs does not exist: run ``semnexus topics apply``."""


async def partitions_of(kafka: KafkaSettings, topic: str) -> list[int]:
    """Every partition id of ``topic``, from the cluster; raises TopicMissing.

    For readers that take a whole topic without a consumer group (views, the
    client's reply reader, rebuilds): the metadata comes from the admin API, so
    it does not depend on what a consumer happened to have fetched already.
    """
    count = (await describe_topics(kafka, [topic])).get(topic)
    if not count:
        raise TopicMissing(f"topic {topic!r} does not exist (run: semnexus topics apply)")
    return list(range(count))


def main(argv: list[str] | None = None) -> int:
    """``python -m semnexus_shared.topics``: ping the cluster, or apply / list topics."""
    parser = argparse.ArgumentParser(prog="python -m semnexus_shared.topics")
    parser.add_argument("--bootstrap", default=KafkaSettings().bootstrap)
    parser.add_argument("--prefix", default="")
    parser.add_argument("verb", choices=["ping", "apply", "list"])
    args = parser.parse_args(argv)
    kafka = KafkaSettings(bootstrap=args.bootstrap, request_timeout_s=5)
    topic_settings = TopicSettings(prefix=args.prefix)
    if args.verb == "ping":
        brokers = asyncio.run(ping(kafka))
        print(f"kafka: {brokers} broker(s) at {args.bootstrap}")
    elif args.verb == "apply":
        for change in asyncio.run(apply_topics(kafka, topic_settings)):
            print(f"{change.topic:32} {change.action:14} {change.detail}")
    else:
        names = [topic_settings.prefix + s.name for s in declared_topics(topic_settings)]
        for name, count in sorted(asyncio.run(describe_topics(kafka, names)).items()):
            print(f"{name:32} {count} partitions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
