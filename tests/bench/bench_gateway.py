"""Benchmark (issue 4): the gateway's own latency on the miss path, and throughput.

SemNexus and LiteLLM's proxy, in one run, in front of one provider simulator
whose ``openai`` provider answers after a fixed 100 ms (no rate limit, no
faults). Telemetry is off for both.

- **direct**: httpx straight to the simulator: what the client and the
  simulator cost on their own (the floor every gateway row sits on; half as long).
- **LiteLLM**: ``litellm[proxy]`` from PyPI in its own environment
  (``.stack/bench/litellm-venv``, created idempotently), started with
  ``tests/bench/litellm_config.yaml`` (no retries, no cache, no database; a
  master key, since 1.108 refuses to start without one) and one uvicorn worker
  per core; httpx to its ``/chat/completions``; only 200s count.
- **SemNexus bypass**: cache-lookup, router and provider-worker as processes
  on the local Kafka, on a fresh topic prefix, a private collection on the
  local Milvus server; requests through ``SemNexusClient`` with
  ``cache.mode = bypass`` (no exact lookup, no embedding, no search).
- **SemNexus miss**: the same pipeline, cache ``use`` with unique prompts: the
  real miss path (exact-key lookup, embedding, scoped search, then the fill).

Latency: open loop at ``--rate`` req/s for ``--latency-s``; the gateway's own
latency is end to end minus the simulator's 100 ms. Throughput: closed loop,
``--concurrency`` clients each sending its next request when the last one
returned, for ``--throughput-s`` (the first 3 s not counted). For SemNexus
the latency phase also reads the Kafka record timestamps of every hop, to
show where the time goes. Before each measurement the bench waits while
another benchmark (``pgrep -f bench_cache``) or the lead's test run
(``/tmp/maketest.log`` not ending in ``EXIT``) is using the machine.

    .venv/bin/python -m tests.bench.bench_gateway [--rate 20] [--latency-s 30]
        [--throughput-s 30] [--concurrency 50 200] [--json out.json]

Prints the tables; keeps the configs and every process's log in a temporary
folder it names on stderr; stops everything it started (the broker and
Milvus, when it had to start them, are left running, as the brief asks).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from semnexus_shared.client import ClientError, SemNexusClient
from semnexus_shared.config import KafkaSettings, TopicSettings
from semnexus_shared.events import CacheMode, CachePolicy
from semnexus_shared.topics import TopicNames, apply_topics, partitions_of
from tests.bench.cleanup import delete_topics, drop_collection

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO / ".stack" / "bench"
LITELLM_VENV = BENCH_DIR / "litellm-venv"
LITELLM_CONFIG = Path(__file__).with_name("litellm_config.yaml")
MILVUS = f"http://127.0.0.1:{os.environ.get('MILVUS_PORT', '19530')}"
SIM_MS = 100.0
MAX_TOKENS = 64
WARMUP_S = 3.0
TIMEOUT_S = 30.0
SERVICES = {
    "cache-lookup": "semnexus_cache_lookup",
    "router": "semnexus_router",
    "provider-worker": "semnexus_provider_worker",
}
SIMULATOR_YAML = f"""\
seed: 7
providers:
  openai: {{wire: openai, auth: any, models: [gpt-4o-mini, gpt-4o],
           latency: {{kind: fixed, ms: {SIM_MS:g}}}}}
  anthropic: {{wire: anthropic, auth: any, models: [claude-3-5-haiku-latest],
              latency: {{kind: fixed, ms: {SIM_MS:g}}}}}
  llama: {{wire: openai_compatible, auth: none, models: [meta-llama/Llama-3.1-8B-Instruct],
          latency: {{kind: fixed, ms: {SIM_MS:g}}}}}
"""

# One request: returns (ok, provider call as the gateway timed it in ms or None).
Call = Callable[[int], Awaitable[tuple[bool, float | None]]]


# ── processes ──────────────────────────────────────────────────────────────────


@dataclass
class Processes:
    """Everything the bench started, each in its own process group, stopped in reverse."""

    logs: Path
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start ``argv`` with its output in ``<logs>/<name>.log``."""
        with (self.logs / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(
                argv, env=env, cwd=REPO, stdout=log, stderr=log, start_new_session=True
            )
        self.procs.append((name, proc))
        return proc

    def stop(self, name: str | None = None) -> None:
        """Stop one (by name) or all, SIGTERM to the group first, then SIGKILL."""
        chosen = [(n, p) for n, p in self.procs if name is None or n == name]
        for _, proc in reversed(chosen):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for _, proc in reversed(chosen):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs = [(n, p) for n, p in self.procs if (n, p) not in chosen]

    def check_alive(self) -> None:
        """Raise if a started process has exited (its log names why)."""
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.logs}")


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_simulator(procs: Processes, workdir: Path) -> str:
    """The simulator with a fixed 100 ms latency for every provider; its base URL."""
    config = workdir / "simulator.yaml"
    config.write_text(SIMULATOR_YAML)
    port = free_port()
    procs.start(
        "simulator",
        [sys.executable, "-m", "semnexus_simulator", "--port", str(port), "--config", str(config)],
        dict(os.environ),
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/_sim/health", 60, procs)
    return url


def wait_http(url: str, timeout_s: float, procs: Processes) -> None:
    """Poll ``url`` until it answers 200."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        procs.check_alive()
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready within {timeout_s:g}s")


def litellm_version() -> str:
    """Create the LiteLLM environment if missing; the installed version."""
    python = LITELLM_VENV / "bin" / "python"
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    uv = shutil.which("uv") or "uv"
    if not python.exists():
        BENCH_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [uv, "venv", "--python", "python3.11", str(LITELLM_VENV)], env=env, check=True
        )
    probe = [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"]
    found = subprocess.run(probe, capture_output=True, text=True, check=False)
    if found.returncode != 0:
        install = [uv, "pip", "install", "--python", str(python), "litellm[proxy]"]
        subprocess.run(install, env=env, check=True)
        found = subprocess.run(probe, capture_output=True, text=True, check=True)
    return found.stdout.strip()


def start_litellm(procs: Processes, simulator: str, workers: int, key: str) -> str:
    """LiteLLM's proxy in front of the simulator; its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "BENCH_SIM_BASE": f"{simulator}/openai/v1",
        "LITELLM_MASTER_KEY": key,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    argv = [str(LITELLM_VENV / "bin" / "litellm"), "--config", str(LITELLM_CONFIG)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--num_workers", str(workers)]
    procs.start("litellm", argv, env)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health/liveliness", 240, procs)
    return url


async def start_semnexus(
    procs: Processes, workdir: Path, simulator: str, kafka: KafkaSettings, prefix: str
) -> None:
    """cache-lookup, router and provider-worker on ``prefix``, pointed at the simulator."""
    await apply_topics(kafka, TopicSettings(prefix=prefix))
    providers = workdir / "providers.yaml"
    providers.write_text(
        (REPO / "infra" / "providers.yaml").read_text().replace("http://127.0.0.1:8900", simulator)
    )
    env = {
        **os.environ,
        "SEMNEXUS_KAFKA__BOOTSTRAP": kafka.bootstrap,
        "SEMNEXUS_TOPICS__PREFIX": prefix,
        "SEMNEXUS_TELEMETRY__ENABLED": "false",
        "SEMNEXUS_PROVIDERS_FILE": str(providers),
        "SEMNEXUS_CACHE__VECTOR_URI": MILVUS,
        "SEMNEXUS_CACHE__COLLECTION": collection_of(prefix),
        "OPENAI_API_KEY": "sk-bench-simulator",
        "ANTHROPIC_API_KEY": "sk-bench-simulator",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    for service, module in SERVICES.items():
        procs.start(
            service,
            [sys.executable, "-m", module],
            {**env, "SEMNEXUS_SERVICE_NAME": f"{prefix}{service}"},
        )


def collection_of(prefix: str) -> str:
    """The private Milvus collection of this run."""
    return "bench_" + prefix.strip(".").replace("-", "_")


# ── machine sharing and the local stack ─────────────────────────────────────────


def wait_for_quiet_machine() -> None:
    """Block while another benchmark or the lead's test run is using the CPUs."""
    announced = False
    while True:
        busy = []
        if subprocess.run(["pgrep", "-f", "bench_cache"], capture_output=True, check=False).stdout:
            busy.append("bench_cache is running")
        log = Path("/tmp/maketest.log")
        if log.exists():
            lines = log.read_text(errors="replace").strip().splitlines()
            if not lines or not lines[-1].startswith("EXIT"):
                busy.append("/tmp/maketest.log does not end with EXIT")
        if not busy:
            return
        if not announced:
            print(f"waiting: {'; '.join(busy)}", file=sys.stderr, flush=True)
            announced = True
        time.sleep(10)


def ensure_stack() -> None:
    """Start the broker (and apply the topics) and Milvus if down; they are left running."""
    for component in ("kafka", "milvus"):
        script = ["bash", f"infra/stack/{component}.sh"]
        status = subprocess.run(
            [*script, "status"], cwd=REPO, capture_output=True, text=True, check=False
        )
        if "running" not in status.stdout:
            subprocess.run([*script, "start"], cwd=REPO, check=True)
            if component == "kafka":
                semnexus = str(REPO / ".venv" / "bin" / "semnexus")
                subprocess.run([semnexus, "topics", "apply"], cwd=REPO, check=True)


# ── load ─────────────────────────────────────────────────────────────────────────


@dataclass
class Sample:
    """One request of the latency phase."""

    n: int
    ok: bool
    sent_ms: float  # wall clock (ms since the epoch), comparable to Kafka timestamps
    e2e_ms: float
    provider_ms: float | None


async def open_loop(call: Call, rate: float, duration_s: float) -> list[Sample]:
    """Send at a fixed rate whatever the answers do; every request's latency."""

    async def timed(n: int) -> Sample:
        sent = time.time() * 1000
        start = time.perf_counter()
        ok, provider_ms = await call(n)
        return Sample(n, ok, sent, (time.perf_counter() - start) * 1000, provider_ms)

    tasks: list[asyncio.Task[Sample]] = []
    start = time.perf_counter()
    for n in range(int(rate * duration_s)):
        await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(timed(n)))
    return list(await asyncio.gather(*tasks))


async def closed_loop(
    call: Call, concurrency: int, duration_s: float, first: int
) -> dict[str, float]:
    """``concurrency`` clients back to back; completed req/s after the warm-up, errors.

    Requests are numbered from ``first``, so no two phases share a request id or prompt.
    """
    start = time.perf_counter()
    counted_from, stop = start + WARMUP_S, start + WARMUP_S + duration_s
    ok_in_window = errors = 0
    counter = itertools.count(first)

    async def client() -> None:
        nonlocal ok_in_window, errors
        while time.perf_counter() < stop:
            ok, _ = await call(next(counter))
            done = time.perf_counter()
            if not ok:
                errors += 1
            elif counted_from <= done <= stop:
                ok_in_window += 1

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return {"rps": ok_in_window / duration_s, "errors": errors}


def prompt(run: str, n: int) -> str:
    """A prompt no other request of any run shares."""
    return f"[{run} #{n}] In two sentences, what does a message broker do for a web app?"


def http_call(http: httpx.AsyncClient, url: str, key: str, run: str) -> Call:
    """One OpenAI-format chat completion over HTTP; ok only on a 200."""
    headers = {"authorization": f"Bearer {key}"}

    async def call(n: int) -> tuple[bool, float | None]:
        body = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": prompt(run, n)}],
            "temperature": 0,
            "max_tokens": MAX_TOKENS,
        }
        try:
            response = await http.post(url, json=body, headers=headers)
        except httpx.HTTPError:
            return False, None
        return response.status_code == 200, None

    return call


def semnexus_call(client: SemNexusClient, mode: CacheMode, run: str) -> Call:
    """One request (id ``<run>-<n>``) through the gateway; the provider call as timed there."""

    async def call(n: int) -> tuple[bool, float | None]:
        request = client.build(
            prompt(run, n),
            model_alias="chat",
            temperature=0.0,
            max_tokens=MAX_TOKENS,
            timeout_s=TIMEOUT_S,
            cache=CachePolicy(mode=mode),
        ).model_copy(update={"request_id": f"{run}-{n}"})
        try:
            response = await client.send(request, TIMEOUT_S)
        except ClientError:
            return False, None
        provider = [s.duration_ms for s in response.latency if s.stage.startswith("provider.")]
        return True, float(provider[0]) if provider else None

    return call


# ── where SemNexus's time goes: Kafka record timestamps of every hop ─────────────


class HopClock:
    """Reads the record timestamp (ms, set by its producer) of every hop, per request id."""

    def __init__(self, kafka: KafkaSettings, names: TopicNames) -> None:
        self._kafka = kafka
        self.topics = {
            names.cache_missed: "cache.missed",
            names.provider("openai"): "provider.openai",
            names.responses: "responses",
        }
        self.stamps: dict[str, dict[str, int]] = {}
        self._task: asyncio.Task[None] | None = None
        self._consumer: Any = None

    async def __aenter__(self) -> HopClock:
        from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: PLC0415

        tps = [
            TopicPartition(topic, p)
            for topic in self.topics
            for p in await partitions_of(self._kafka, topic)
        ]
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._kafka.servers, group_id=None, enable_auto_commit=False
        )
        await self._consumer.start()
        self._consumer.assign(tps)
        await self._consumer.seek_to_end(*tps)
        for tp in tps:
            await self._consumer.position(tp)
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await asyncio.sleep(1.0)  # the last records are usually already read; be sure
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    async def _read(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=1000)
            for tp, records in batches.items():
                for record in records:
                    request_id = (record.key or b"").decode()
                    self.stamps.setdefault(request_id, {})[self.topics[tp.topic]] = record.timestamp


@dataclass
class Hops:
    """The hop breakdown of one latency phase."""

    requests: int
    quantiles: dict[str, tuple[float, float]]


HOPS = (
    "client sent → cache-lookup produced the miss",
    "→ router produced the provider call",
    "→ worker produced the response, less the HTTP call",
    "the HTTP call, as the worker timed it (simulator: 100)",
    "→ the client has the response",
)


def hop_breakdown(samples: list[Sample], stamps: dict[str, dict[str, int]], run: str) -> Hops:
    """Per hop, (p50, p99) ms from the client's clock and the records' timestamps."""
    values: list[list[float]] = [[] for _ in HOPS]
    for s in samples:
        st = stamps.get(f"{run}-{s.n}", {})
        if not s.ok or len(st) < 3 or s.provider_ms is None:
            continue
        received = s.sent_ms + s.e2e_ms
        row = (
            st["cache.missed"] - s.sent_ms,
            st["provider.openai"] - st["cache.missed"],
            st["responses"] - st["provider.openai"] - s.provider_ms,
            s.provider_ms,
            received - st["responses"],
        )
        for column, value in zip(values, row, strict=True):
            column.append(value)
    if not values[0]:
        return Hops(0, {})
    return Hops(
        len(values[0]), {h: (pct(v, 0.5), pct(v, 0.99)) for h, v in zip(HOPS, values, strict=True)}
    )


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


# ── the run ───────────────────────────────────────────────────────────────────────


@dataclass
class Row:
    """One gateway's figures."""

    name: str
    latency: list[Sample] = field(default_factory=list)
    throughput: dict[int, dict[str, float]] = field(default_factory=dict)
    hops: Hops | None = None

    def summary(self) -> dict[str, Any]:
        """The figures as a plain dict (for --json)."""
        ok = [s.e2e_ms for s in self.latency if s.ok]
        return {
            "name": self.name,
            "sent": len(self.latency),
            "ok": len(ok),
            "e2e_p50_ms": pct(ok, 0.5) if ok else None,
            "e2e_p99_ms": pct(ok, 0.99) if ok else None,
            "overhead_p50_ms": pct(ok, 0.5) - SIM_MS if ok else None,
            "overhead_p99_ms": pct(ok, 0.99) - SIM_MS if ok else None,
            "throughput": self.throughput,
            "hops": None if self.hops is None else self.hops.__dict__,
        }


async def measure_latency(row: Row, call: Call, rate: float, duration_s: float) -> None:
    """The open-loop phase of ``row``."""
    wait_for_quiet_machine()
    row.latency = await open_loop(call, rate, duration_s)
    ok = [s.e2e_ms for s in row.latency if s.ok]
    p50 = f"{pct(ok, 0.5):.1f}" if ok else "-"
    print(f"{row.name}: {len(ok)}/{len(row.latency)} ok, e2e p50 {p50} ms", file=sys.stderr)


async def measure_throughput(
    row: Row, call: Call, concurrencies: list[int], duration_s: float
) -> None:
    """The closed loops of ``row``, one per concurrency."""
    for phase, concurrency in enumerate(concurrencies, start=1):
        wait_for_quiet_machine()
        got = await closed_loop(call, concurrency, duration_s, first=phase * 10**6)
        row.throughput[concurrency] = got
        print(f"{row.name}: c={concurrency} {got}", file=sys.stderr, flush=True)


async def warm(call: Call, count: int, timeout_s: float, procs: Processes) -> None:
    """Retry until one call succeeds (the stages have joined), then ``count`` more at once."""
    deadline = time.monotonic() + timeout_s
    n = 10**8  # far from the measured requests' numbers
    while True:
        procs.check_alive()
        n += 1
        ok, _ = await call(n)
        if ok:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"no answer within {timeout_s:g}s; see {procs.logs}")
    await asyncio.gather(*(call(n + 1 + i) for i in range(count)))


async def run(args: argparse.Namespace) -> list[Row]:
    """Start everything, measure every gateway, stop everything."""
    kafka = KafkaSettings(bootstrap=args.bootstrap)
    run_id = uuid.uuid4().hex[:8]
    prefix = f"benchgw{run_id}."
    version = litellm_version()
    ensure_stack()
    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    procs = Processes(workdir)
    try:
        # Start-ups are CPU-heavy (LiteLLM's workers fail uvicorn's health check
        # when starved), so one at a time, and not while another bench measures.
        wait_for_quiet_machine()
        simulator = start_simulator(procs, workdir)
        key = f"sk-bench-{uuid.uuid4().hex}"
        litellm = start_litellm(procs, simulator, args.litellm_workers, key)
        await start_semnexus(procs, workdir, simulator, kafka, prefix)
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
        async with (
            httpx.AsyncClient(timeout=TIMEOUT_S, limits=limits) as http,
            SemNexusClient(kafka, tenant_id="bench", topics=TopicSettings(prefix=prefix)) as client,
        ):
            direct = http_call(
                http,
                f"{simulator}/openai/v1/chat/completions",
                "sk-bench-simulator",
                f"{run_id}D",
            )
            lite = http_call(http, f"{litellm}/chat/completions", key, f"{run_id}L")
            bypass = semnexus_call(client, CacheMode.BYPASS, f"{run_id}B")
            miss = semnexus_call(client, CacheMode.USE, f"{run_id}M")
            await warm(direct, 20, 30, procs)
            await warm(lite, 50, 120, procs)
            await warm(bypass, 50, 180, procs)
            await warm(miss, 20, 60, procs)
            rows = [
                Row("direct to the simulator (no gateway)"),
                Row(f"LiteLLM proxy {version}, {args.litellm_workers} workers"),
                Row("SemNexus, cache bypass"),
                Row("SemNexus, cache miss (unique prompts)"),
            ]
            calls = [direct, lite, bypass, miss]
            # The reference row is only a floor: half as long.
            scale = [0.5, 1.0, 1.0, 1.0]
            names = TopicNames(TopicSettings(prefix=prefix))
            for row, call, tag, k in zip(rows, calls, "DLBM", scale, strict=True):
                if tag in "BM":
                    async with HopClock(kafka, names) as hops:
                        await measure_latency(row, call, args.rate, args.latency_s)
                    row.hops = hop_breakdown(row.latency, hops.stamps, f"{run_id}{tag}")
                else:
                    await measure_latency(row, call, args.rate, args.latency_s * k)
                await measure_throughput(row, call, args.concurrency, args.throughput_s * k)
            procs.check_alive()
    finally:
        procs.stop()
        drop_collection(MILVUS, collection_of(prefix))
        await delete_topics(kafka, prefix)
    print(f"configs and every process's log: {workdir}", file=sys.stderr)
    return rows


# ── report ────────────────────────────────────────────────────────────────────────


def report(rows: list[Row], args: argparse.Namespace) -> str:
    """The two markdown tables."""
    cs = list(args.concurrency)
    head = "| gateway | overhead p50 (ms) | overhead p99 (ms) | e2e p50 / p99 (ms) | ok / sent |"
    head += "".join(f" c={c}: req/s (errors) |" for c in cs)
    lines = [head, "|---|---|---|---|---|" + "---|" * len(cs)]
    for row in rows:
        s = row.summary()
        if not s["ok"]:
            lines.append(f"| {row.name} | – | – | – | 0 / {s['sent']} |" + " – |" * len(cs))
            continue
        thr = "".join(
            f" {row.throughput[c]['rps']:.0f} ({row.throughput[c]['errors']:.0f}) |"
            if c in row.throughput
            else " – |"
            for c in cs
        )
        lines.append(
            f"| {row.name} | {s['overhead_p50_ms']:.1f} | {s['overhead_p99_ms']:.1f} | "
            f"{s['e2e_p50_ms']:.1f} / {s['e2e_p99_ms']:.1f} | {s['ok']} / {s['sent']} |{thr}"
        )
    ideal = ", ".join(f"c={c}: {c * 1000 / SIM_MS:.0f}" for c in cs)
    lines += ["", f"Ideal closed-loop throughput at {SIM_MS:g} ms per call: {ideal} req/s.", ""]
    for row in rows:
        if row.hops is None or not row.hops.requests:
            continue
        lines += [
            f"{row.name}: where the time goes ({row.hops.requests} requests; "
            "Kafka record timestamps, whole ms)",
            "",
            "| hop | p50 (ms) | p99 (ms) |",
            "|---|---|---|",
        ]
        lines += [
            f"| {h} | {p50:.0f} | {p99:.0f} |" for h, (p50, p99) in row.hops.quantiles.items()
        ]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    """Parse arguments, run, print the tables (and write JSON if asked)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="open-loop req/s (20)")
    parser.add_argument("--latency-s", type=float, default=30.0, help="open-loop seconds (30)")
    parser.add_argument("--throughput-s", type=float, default=30.0, help="closed-loop seconds (30)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--litellm-workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the finally block stops what was started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = datetime.now(UTC)
    wall = time.monotonic()
    rows = asyncio.run(run(args))
    print(
        f"{started:%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}, {time.monotonic() - wall:.0f} s in all\n"
    )
    print(report(rows, args))
    if args.json:
        args.json.write_text(json.dumps([r.summary() for r in rows], indent=2, default=str))


if __name__ == "__main__":
    main()
