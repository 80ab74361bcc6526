"""Benchmark: the cache-hit path of one cache-lookup process on the real broker and Milvus.

What it does, bounded in time (about 5 minutes with the defaults):

1. creates a fresh topic prefix and Milvus collection, and preloads ``--entries``
   distinct QQP questions (``text_a`` of ../shared/data/qqp_dev.jsonl, read
   there) through the real writer path: ``CacheFilled`` events with their
   all-MiniLM-L6-v2 embedding (computed here, or read from the evaluation's
   embedding shards in ``.stack/cache/semnexus``) published to ``cache.fill``;
2. starts ``python -m semnexus_cache_lookup`` as its own process (Milvus server,
   telemetry off) and waits until the last fill is served;
3. (a) exact repeats of stored questions (``--exact-pool N``: only N of them,
   over and over, as in a viral spike) and (b) QQP paraphrases of stored
   questions (``text_b`` of duplicate pairs), each open loop at ``--rate``
   requests/s for ``--duration`` s after a warm-up; latency = the response
   consumed here minus the request's produce call here;
4. (c) sustained throughput: a closed loop keeping ``--window`` requests
   outstanding for ``--throughput-s`` s, once with exact repeats and once with
   unseen questions (every one embedded, searched and decided: hit or miss);
5. (d, with ``--twins K``) phase b's paraphrases again, and beside them, every
   ``--twins-every`` s, one unseen question sent K times at once: its first
   copy misses and the others wait for its answer (coalescing). No provider
   runs here, so no answer comes: the twins wait out the coalescing window, as
   when a provider hangs. The paraphrases' latency shows what the waiting twins
   cost everyone else; the twins' own row shows their misses.

The harness is a raw aiokafka producer (``acks=all``, idempotent, linger 0) and
one group-less consumer assigned every partition of ``responses`` and
``cache.missed`` with the fetch settings SemNexusClient gets (fetch_min_bytes 1,
so the broker answers a fetch as soon as one record is there, and the fetch wait
of ``kafka.fetch_max_wait_s``, 100 ms; ``--fetch-wait-ms`` changes it).
``--timeline FILE`` writes every hit's send time, latency, request partition,
produce ack and queue stage to a CSV, to place a tail in time and partition.
Per-stage figures come from ``CompletionResponded.latency``; ``to_produced`` is
the response record's broker timestamp minus the request's produce call, so
``consume`` (the rest) is the harness's own share. Prints a markdown table.

    .venv/bin/python -m tests.bench.bench_cache
    .venv/bin/python -m tests.bench.bench_cache --duration 20 --env SEMNEXUS_KAFKA__BATCH_LINGER_S=0
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from semnexus_cache_lookup.embedder import SentenceTransformerEmbedder
from semnexus_cache_lookup.evaluation import CachedEmbedder
from semnexus_shared.config import KafkaSettings, TopicSettings
from semnexus_shared.events import (
    CacheFilled,
    CacheMissed,
    CompletionRequested,
    CompletionResponded,
    FinishReason,
    Message,
    Role,
    Sampling,
    SourceKind,
    Usage,
    pack_embedding,
    utc_now,
)
from semnexus_shared.scope import normalise_prompt, request_key, scope_key, scope_of
from semnexus_shared.serde import Codec, SchemaRegistry
from semnexus_shared.topics import TopicNames, apply_topics, partitions_of
from tests.bench.cleanup import delete_topics, drop_collection

REPO = Path(__file__).resolve().parents[2]
# the shared data folder beside the checkout (read there, never copied in)
QQP = Path(__file__).resolve().parents[3] / "shared" / "data" / "qqp_dev.jsonl"
MILVUS = "http://127.0.0.1:19530"
SYSTEM = "You are a helpful assistant."
ANSWER = "A stored answer of about the usual length for a short factual question. " * 4


@dataclass
class Sent:
    """One request in flight: when its produce call started (perf_counter and epoch ms)."""

    at: float
    epoch_ms: float
    phase: str
    partition: int = -1
    acked_ms: float = -1.0


@dataclass(frozen=True)
class Twins:
    """Bursts of identical requests sent beside an open loop (phase d)."""

    texts: list[str]
    copies: int
    every_s: float


@dataclass
class Phase:
    """What one phase saw."""

    name: str
    sent: int = 0
    hit_ms: list[float] = field(default_factory=list)
    produced_ms: list[float] = field(default_factory=list)
    miss_ms: list[float] = field(default_factory=list)
    other: int = 0
    stages: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    first: float = 0.0
    last: float = 0.0
    # (sent, epoch s; ms to the answer; request partition; ms to the request's
    # ack; the queue stage, ms)
    timeline: list[tuple[float, float, int, float, float]] = field(default_factory=list)


def pct(values: Sequence[float], q: float) -> float:
    """The q-quantile by nearest rank (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def load_texts(entries: int) -> tuple[list[str], list[str], list[str]]:
    """Stored questions, their paraphrases, and questions that are never stored."""
    stored: dict[str, None] = {}
    pairs: list[tuple[str, str]] = []
    everything: dict[str, None] = {}
    with QQP.open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            a, b = row["text_a"].strip(), row["text_b"].strip()
            everything[a] = everything[b] = None
            if len(stored) < entries:
                stored[a] = None
            if row["label"] == 1:
                pairs.append((a, b))
    keys = {normalise_prompt(t) for t in stored}
    paraphrases = list(
        dict.fromkeys(b for a, b in pairs if a in stored and normalise_prompt(b) not in keys)
    )
    unseen = [t for t in everything if normalise_prompt(t) not in keys]
    return list(stored), paraphrases, unseen


def request(text: str, tenant: str) -> CompletionRequested:
    """A cacheable request for one user turn under the bench's fixed scope."""
    return CompletionRequested(
        request_id=uuid.uuid4().hex,
        tenant_id=tenant,
        messages=(
            Message(role=Role.SYSTEM, content=SYSTEM),
            Message(role=Role.USER, content=text),
        ),
        model_alias="chat",
        sampling=Sampling(temperature=0.0),
        deadline=utc_now() + timedelta(seconds=60),
    )


class Harness:
    """The producer, the reply reader and the bookkeeping of one run."""

    def __init__(self, kafka: KafkaSettings, names: TopicNames, codec: Codec, tenant: str) -> None:
        self.kafka, self.names, self.codec, self.tenant = kafka, names, codec, tenant
        self.sent: dict[str, Sent] = {}
        self.phases: dict[str, Phase] = {}
        self.producer: Any = None
        self.consumer: Any = None
        self.reader: asyncio.Task[None] | None = None
        self.done = asyncio.Event()
        self.outstanding = 0
        self.fetch_wait_ms = kafka.fetch_max_wait_ms

    async def start(self) -> None:
        """Producer, and a reader positioned at the end of the reply topics."""
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.kafka.servers, acks="all", enable_idempotence=True, linger_ms=0
        )
        await self.producer.start()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.kafka.servers,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=self.fetch_wait_ms,
        )
        tps = []
        for topic in (self.names.responses, self.names.cache_missed):
            tps += [TopicPartition(topic, p) for p in await partitions_of(self.kafka, topic)]
        await self.consumer.start()
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:
            await self.consumer.position(tp)
        self.reader = asyncio.create_task(self._read())

    async def stop(self) -> None:
        """Stop reading and producing."""
        if self.reader is not None:
            self.reader.cancel()
        await self.consumer.stop()
        await self.producer.stop()

    async def send(self, text: str, phase: str) -> str:
        """Produce one request (not waiting for its ack); returns the request id."""
        req = request(text, self.tenant)
        sent = self.sent[req.request_id] = Sent(time.perf_counter(), time.time() * 1000, phase)
        self.phases[phase].sent += 1
        self.outstanding += 1
        acked = await self.producer.send(
            self.names.requests, self.codec.encode(req), key=request_key(req)
        )

        def placed(future: asyncio.Future[Any]) -> None:
            if not future.cancelled() and future.exception() is None:
                sent.partition = future.result().partition
                sent.acked_ms = (time.perf_counter() - sent.at) * 1000

        acked.add_done_callback(placed)
        return req.request_id

    async def _read(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=50, max_records=1000)
            now = time.perf_counter()
            for tp, records in batches.items():
                for record in records:
                    self._seen(tp.topic, record, now)

    def _seen(self, topic: str, record: Any, now: float) -> None:
        rid = (record.key or b"").decode()
        sent = self.sent.pop(rid, None)
        if sent is None:
            return
        self.outstanding -= 1
        self.done.set()
        phase = self.phases[sent.phase]
        phase.first = phase.first or now
        phase.last = now
        took = (now - sent.at) * 1000
        if topic == self.names.cache_missed:
            self.codec.decode(record.value, CacheMissed)
            phase.miss_ms.append(took)
            return
        response = self.codec.decode(record.value, CompletionResponded)
        if response.source is None or response.source.kind is not SourceKind.CACHE:
            phase.other += 1
            return
        phase.hit_ms.append(took)
        phase.produced_ms.append(record.timestamp - sent.epoch_ms)
        queued = 0.0
        for stage in response.latency:
            phase.stages[stage.stage].append(stage.duration_ms)
            queued = stage.duration_ms if stage.stage == "queue" else queued
        phase.timeline.append((sent.epoch_ms / 1000, took, sent.partition, sent.acked_ms, queued))

    async def open_loop(
        self,
        name: str,
        texts: list[str],
        rate: float,
        seconds: float,
        twins: Twins | None = None,
    ) -> Phase:
        """Send at a steady rate whatever comes back; then wait for the stragglers.

        With ``twins``, every ``twins.every_s`` a burst of copies of one of its
        texts goes out beside, counted in a phase of its own.
        """
        self.phases[name] = phase = Phase(name)
        twin_phase = f"{name}: the twins"
        if twins is not None:
            self.phases[twin_phase] = Phase(twin_phase)
        start = time.perf_counter()
        bursts = 0
        for n in range(int(rate * seconds)):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.send(texts[n % len(texts)], name)
            if twins is not None and time.perf_counter() - start >= bursts * twins.every_s:
                text = twins.texts[bursts % len(twins.texts)]
                for _ in range(twins.copies):
                    await self.send(text, twin_phase)
                bursts += 1
        await self._drain(name, 15.0)
        await self._drain(twin_phase, 15.0)
        return phase

    async def closed_loop(self, name: str, texts: list[str], window: int, seconds: float) -> Phase:
        """Keep ``window`` requests outstanding for ``seconds``."""
        self.phases[name] = phase = Phase(name)
        end = time.perf_counter() + seconds
        n = 0
        while time.perf_counter() < end:
            while self.outstanding < window:
                await self.send(texts[n % len(texts)], name)
                n += 1
            self.done.clear()
            await asyncio.wait_for(self.done.wait(), 30)
        await self._drain(name, 15.0)
        return phase

    async def _drain(self, name: str, timeout_s: float) -> None:
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            if not any(s.phase == name for s in self.sent.values()):
                return
            await asyncio.sleep(0.05)


async def preload(
    kafka: KafkaSettings, names: TopicNames, codec: Codec, texts: list[str], tenant: str
) -> None:
    """Publish one CacheFilled per text, embedding included, to ``cache.fill``."""
    embedder = CachedEmbedder(SentenceTransformerEmbedder, REPO / ".stack/cache/semnexus")
    started = time.perf_counter()
    vectors = embedder.embed(texts)
    print(f"# embedded {len(texts)} texts in {time.perf_counter() - started:.1f}s", flush=True)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.servers, acks="all", enable_idempotence=True, linger_ms=20
    )
    await producer.start()
    try:
        for text, vector in zip(texts, vectors, strict=True):
            req = request(text, tenant)
            scope = scope_of(req)
            fill = CacheFilled(
                request_id=req.request_id,
                tenant_id=tenant,
                scope=scope,
                prompt=text,
                embedding=pack_embedding(vector.tolist()),
                answer=ANSWER,
                finish_reason=FinishReason.STOP,
                usage=Usage(input_tokens=40, output_tokens=60),
                provider="openai",
                model="gpt-4o-mini-2024-07-18",
            )
            await producer.send(names.cache_fill, codec.encode(fill), key=scope_key(scope))
        await producer.flush()
    finally:
        await producer.stop()


def start_service(prefix: str, collection: str, extra: dict[str, str], log: Path) -> Any:
    """``python -m semnexus_cache_lookup`` on the bench's topics and collection."""
    env = {
        **os.environ,
        "SEMNEXUS_TOPICS__PREFIX": prefix,
        "SEMNEXUS_SERVICE_NAME": prefix + "cache-lookup",
        "SEMNEXUS_CACHE__VECTOR_URI": MILVUS,
        "SEMNEXUS_CACHE__COLLECTION": collection,
        "SEMNEXUS_TELEMETRY__ENABLED": "false",
        "SEMNEXUS_LOG__LEVEL": "WARNING",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
    (Path(tempfile.gettempdir()) / "semnexus-faust").mkdir(exist_ok=True)
    out = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "semnexus_cache_lookup"],
        env=env,
        stdout=out,
        stderr=out,
        cwd=REPO,
    )


async def wait_ready(
    harness: Harness, probe: str, timeout_s: float, service: subprocess.Popen[bytes], log: Path
) -> float:
    """Ask for the last stored text until it is a hit; seconds it took."""
    harness.phases["ready"] = phase = Phase("ready")
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if service.poll() is not None:
            raise RuntimeError(f"the service exited with {service.returncode}; see {log}")
        await harness.send(probe, "ready")
        await harness._drain("ready", 5.0)
        if phase.hit_ms:
            return time.perf_counter() - started
        await asyncio.sleep(1.0)
    raise TimeoutError(f"the preload was not served within {timeout_s:.0f}s")


def row(phase: Phase, seconds: float | None = None) -> str:
    """One markdown row."""
    answered = len(phase.hit_ms) + len(phase.miss_ms)
    rate = (answered - 1) / (phase.last - phase.first) if phase.last > phase.first else 0.0
    hit_frac = len(phase.hit_ms) / phase.sent if phase.sent else 0.0
    stages = ", ".join(f"{k} {pct(v, 0.5):.0f}/{pct(v, 0.99):.0f}" for k, v in phase.stages.items())
    return (
        f"| {phase.name} | {phase.sent} | {hit_frac:.1%} | "
        f"{pct(phase.hit_ms, 0.5):.1f} | {pct(phase.hit_ms, 0.99):.1f} | "
        f"{pct(phase.produced_ms, 0.5):.1f} | {pct(phase.miss_ms, 0.5):.1f} | "
        f"{rate:.0f} | {stages} |"
    )


async def bench(args: argparse.Namespace) -> int:
    """One whole run; returns the exit status."""
    kafka = KafkaSettings()
    prefix = f"bcache{uuid.uuid4().hex[:8]}."
    collection = prefix.rstrip(".")
    topics = TopicSettings(prefix=prefix)
    await apply_topics(kafka, topics)
    names = TopicNames(topics)
    codec = Codec(SchemaRegistry.load())
    stored, paraphrases, unseen = load_texts(args.entries)
    rng = random.Random(7)
    rng.shuffle(paraphrases)
    rng.shuffle(unseen)
    exact = stored[:]
    rng.shuffle(exact)
    print(
        f"# {len(stored)} stored, {len(paraphrases)} paraphrases, {len(unseen)} unseen; "
        f"prefix {prefix}",
        flush=True,
    )
    await preload(kafka, names, codec, stored, args.tenant)
    extra = dict(e.split("=", 1) for e in args.env)
    log = Path(tempfile.gettempdir()) / f"{collection}.log"
    proc = start_service(prefix, collection, extra, log)
    harness = Harness(kafka, names, codec, args.tenant)
    if args.fetch_wait_ms is not None:
        harness.fetch_wait_ms = args.fetch_wait_ms
    await harness.start()
    rows: list[str] = []
    try:
        ready = await wait_ready(harness, stored[-1], 300, proc, log)
        print(f"# service up and {len(stored)} entries served after {ready:.0f}s", flush=True)
        await harness.open_loop("warm-up", exact[-500:] + paraphrases[-500:], args.rate, 10)
        phases = [
            ("a: exact repeats", exact[: args.exact_pool or None], args.rate, args.duration),
            ("b: paraphrases", paraphrases, args.rate, args.duration),
        ]
        for name, texts, rate, seconds in phases:
            phase = await harness.open_loop(name, texts, rate, seconds)
            rows.append(row(phase))
            print(rows[-1], flush=True)
        if args.throughput_s > 0:
            offset = int(args.rate * args.duration)
            phase = await harness.closed_loop(
                "c: max, exact", exact[offset:], args.window, args.throughput_s
            )
            rows.append(row(phase))
            print(rows[-1], flush=True)
            phase = await harness.closed_loop(
                "c: max, unseen (embedded)", unseen, args.window, args.throughput_s
            )
            rows.append(row(phase))
            print(rows[-1], flush=True)
        if args.twins > 0:
            # Unseen questions the closed loop above has not asked.
            twins = Twins(unseen[-1000:], args.twins, args.twins_every)
            name = "d: paraphrases beside twins"
            phase = await harness.open_loop(name, paraphrases, args.rate, args.duration, twins)
            rows += [row(phase), row(harness.phases[f"{name}: the twins"])]
            print("\n".join(rows[-2:]), flush=True)
        if proc.poll() is not None:
            print(log.read_text(errors="replace")[-3000:])
            return 1
    finally:
        await harness.stop()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        drop_collection(MILVUS, collection)
        await delete_topics(kafka, prefix)
    print()
    print(f"settings: {extra or 'defaults'}; tenant {args.tenant!r}; service log {log}")
    print()
    print(
        "| phase | sent | hits | hit p50 ms | hit p99 ms | to produced p50 ms "
        "| miss p50 ms | answered/s | service stages p50/p99 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for line in rows:
        print(line)
    if args.timeline:
        write_timeline(Path(args.timeline), harness.phases.values())
        print(f"\ntimeline of every hit: {args.timeline}")
    return 0


def write_timeline(path: Path, phases: Iterable[Phase]) -> None:
    """One CSV row per hit, to place a tail in time and partition."""
    with path.open("w", encoding="utf-8", newline="") as out:
        rows = csv.writer(out)
        rows.writerow(["phase", "sent_epoch_s", "latency_ms", "partition", "acked_ms", "queue_ms"])
        for phase in phases:
            for at, took, partition, acked, queued in phase.timeline:
                numbers = (f"{at:.3f}", f"{took:.2f}", partition, f"{acked:.2f}", f"{queued:.2f}")
                rows.writerow([phase.name, *numbers])


def main() -> None:
    """Parse the options and run once."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench_cache")
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--throughput-s", type=float, default=20.0)
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument(
        "--exact-pool",
        type=int,
        default=0,
        help="phase a asks only this many stored questions, over and over (0: all, once each)",
    )
    parser.add_argument(
        "--twins",
        type=int,
        default=0,
        help="phase d: bursts of this many identical unseen questions beside paraphrases (0: off)",
    )
    parser.add_argument("--twins-every", type=float, default=0.5, help="seconds between bursts")
    parser.add_argument("--tenant", default="bench")
    parser.add_argument(
        "--fetch-wait-ms", type=int, help="the harness's fetch wait (default: the client's)"
    )
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the service")
    parser.add_argument("--timeline", default="", help="write every hit's timing to this CSV")
    sys.exit(asyncio.run(bench(parser.parse_args())))


if __name__ == "__main__":
    main()
