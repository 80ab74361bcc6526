"""Settings of the cache-lookup service: one frozen object, built once in ``main()``.

Everything the lookup and writer pipelines decide with is here, under the
``SEMNEXUS_CACHE__`` and ``SEMNEXUS_REQUESTS__`` prefixes (for example
``SEMNEXUS_CACHE__VECTOR_URI=http://127.0.0.1:19530``).

Why the defaults:

- ``temperature_ceiling = 0.3``: at 0 to 0.3 an answer is close to deterministic,
  so a cached one is what the app would have got; apps that ask for 0.7 to 1.0 ask
  for variety, and serving them a stored answer would silently remove it.
- ``default_temperature = 1.0``: an omitted temperature means the provider's
  default, which is 1.0 for OpenAI (and Anthropic), so such requests bypass the
  cache unless the ceiling is raised.
- ``coalescing_window_s = 2.0``: a parked twin waits (and holds its offset)
  this long at most; its batch keeps the agent only ``kafka.batch_hold_s`` of
  it. Past the window the twin is looked up once more and then sent as
  its own miss.
- ``consistency = "auto"``: Bounded on a Milvus server, Strong on Milvus Lite.
  Session (read your own writes) made every lookup wait for the writer's
  latest fill to become visible, about 290 ms a read under load; Bounded reads
  take about 3 ms and see entries older than Milvus's ``common.gracefulTime``
  (500 ms on the local stack), so a new entry or an invalidation takes effect
  that much later. Twins in flight are answered from the fill itself. Set
  "Strong" or "Session" to trade latency for immediacy.
- ``embedder = "onnx-int8"``: all-MiniLM-L6-v2 exported once to ONNX (under
  ``onnx_cache`` by ``python -m semnexus_cache_lookup.onnx_export``, which
  ``make setup`` and the image build run, or at first start) and quantised to
  int8: about 3x torch's batched throughput and a quarter of its one-text
  latency, vectors within cosine 0.994 of torch's for real questions. Since the
  default decision is the stacked verifier (the cross-encoder reads the texts
  themselves), int8 costs it 2 % of its hits on the QQP test split at the same
  precision (recall 0.510 against 0.520 with ``onnx-fp32``); in the cache
  benchmark it took the semantic-hit p50 from 33 to 23 ms and embedded
  throughput from 143 to 187 requests/s (one short run each, BENCHMARKS.md).
  ``onnx-fp32`` gives torch's vectors at about 2.3x torch's speed; "torch" remains.
- ``embed_threads = 1``: on a 2-core box shared with Kafka, Milvus and the
  event loop, torch's default (2 threads) spins against them: one text took
  p50 111 ms and 256 batched ran 84/s, against 15 ms and 177/s on one thread
  (BENCHMARKS.md, "Cache-lookup"). Raise it on a host with idle cores. The same
  number is onnxruntime's intra-op thread count.
- ``blas_threads = 1``: numpy's OpenBLAS starts a thread per core, and its
  worker spins between the service's small matrix products (the verifier's
  layers, similarities of a batch): at saturation on the 2-core bench box it
  burned about half a core. On one thread, unseen questions went from a
  median 166 to 222 requests/s, three runs each (BENCHMARKS.md, "Cache-lookup").
- ``store_threads = 2``: the threads that run the vector store's blocking
  pymilvus calls; the embedder and the verifier each have one thread of their
  own (one call at a time each). Before, all of them shared asyncio's default
  executor (six threads on two cores) and handed the GIL around among them: at
  50 paraphrases/s on the saturated bench box, paraphrase hits p50 went from
  290-326 to 220-264 ms and the service's CPU from 121-127 % to 111-121 % of a
  core, three runs each, alternated (BENCHMARKS.md, "Cache-lookup").
- ``kafka.batch_linger_s = 0`` (the shared default is 5 ms): how long the
  runner's micro-batch waits after its first request for more. A cached answer
  is a few milliseconds of work, so any wait is a large share of its latency;
  under load, the requests that come while a batch is processed make the next
  batch, so batching does not need the wait. At 0 a batch still takes every
  request delivered in the same turn of the event loop. From 2 ms to 0 (with
  the producer's linger from 1 ms to 0) took exact hits at 50 requests/s from
  p50 11-13 to 7-9 ms and paraphrase hits from 22-24 to 18-21 ms, with no
  consistent change in throughput (three alternated pairs, BENCHMARKS.md).
- ``speculative_embed_max_batch = 8``: a batch this small (light load) starts
  embedding its prompts while the exact path looks them up, when the model is
  idle, so a semantic hit does not pay for the exact lookup first; an exact hit
  just drops its vector. Larger batches (load) embed only what the exact path
  missed, so exact hits never spend model time then. 0 turns it off.
- ``recent_exact_hits = 4096``: how many exact-hit keys the lookup remembers. A
  small batch whose prompts all hit the exact path lately is not embedded ahead:
  a repeat (a viral question) will most likely hit again, and its speculative
  call would be one model call thrown away, holding the one model queue while a
  paraphrase waits behind it. A key that then misses is forgotten. 0: always
  speculate.
- ``decision = "verifier"`` with ``infra/cache-tenants.yaml``: the learned hit
  decision at each tenant's calibrated operating point; ``verifier_model``
  ``None`` is the stacked verifier (:mod:`semnexus_cache_lookup.stacking`: MLP
  gate, cross-encoder, logistic layer), which on the QQP test split serves
  recall 0.50 at precision 0.86 where the MLP alone served 0.32 at 0.88 (see
  BENCHMARKS.md). "threshold" is the plain cosine floor, kept for comparison.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from semnexus_cache_lookup.embedder import EmbedderKind
from semnexus_shared.config import ServiceSettings
from semnexus_shared.events import FinishReason


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CacheSettings(_Section):
    """The vector store, the lookup and the writer."""

    vector_uri: str = ".stack/data/cache-lookup/milvus-lite.db"
    vector_token: str | None = None
    collection: str = "semnexus_cache"
    dimensions: int = 384
    consistency: str = "auto"
    # tenant_id as Milvus partition key: a tenant's search touches only its partitions.
    partition_key: bool = True
    top_k: int = Field(default=5, ge=1, le=100)
    # A cosine floor for the default decision; a request's min_similarity only raises it.
    min_similarity: float = Field(default=0.9, ge=0.0, le=1.0)
    temperature_ceiling: float = Field(default=0.3, ge=0.0, le=2.0)
    default_temperature: float = 1.0
    default_ttl_s: int = Field(default=86_400, ge=1)
    max_ttl_s: int = Field(default=30 * 86_400, ge=1)
    store_finish_reasons: tuple[FinishReason, ...] = (FinishReason.STOP,)
    batch_size: int = Field(default=64, ge=1)
    writer_batch_size: int = Field(default=64, ge=1)
    concurrency: int = Field(default=4, ge=1)
    store_threads: int = Field(default=2, ge=1)
    speculative_embed_max_batch: int = Field(default=8, ge=0)
    recent_exact_hits: int = Field(default=4096, ge=0)
    coalescing_window_s: float = Field(default=2.0, ge=0.0)
    coalescing_max_waiters: int = Field(default=64, ge=0)
    purge_interval_s: float = Field(default=300.0, gt=0.0)
    # "threshold" (one cosine floor) or "verifier" (the learned decision, issue 6).
    decision: str = "verifier"
    verifier_model: str | None = None
    operating_points: Path | None = Path("infra/cache-tenants.yaml")
    embedder: EmbedderKind = EmbedderKind.ONNX_INT8
    onnx_cache: Path = Path(".stack/cache/semnexus/onnx")
    # intra-op threads (torch or onnxruntime); None = the runtime's default (one per core).
    embed_threads: int | None = Field(default=1, ge=1)
    # numpy's BLAS threads; None = the library's default (one per core).
    blas_threads: int | None = Field(default=1, ge=1)


class RequestRules(_Section):
    """What a valid request looks like; anything else is dead-lettered with an answer."""

    max_messages: int = 256
    max_message_chars: int = 32_000
    max_total_chars: int = 200_000
    # The aliases infra/providers.yaml defines (a test keeps the two in step).
    model_aliases: tuple[str, ...] = ("chat", "chat-economy", "smart")
    # Extra reply topics an app may name besides the default responses topic.
    reply_topics: tuple[str, ...] = ()
    tenant_pattern: str = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"


class Settings(ServiceSettings):
    """cache-lookup's settings: the shared sections plus ``cache`` and ``requests``."""

    service_name: str = "cache-lookup"
    default_batch_linger_s: ClassVar[float | None] = 0.0
    cache: CacheSettings = Field(default_factory=CacheSettings)
    requests: RequestRules = Field(default_factory=RequestRules)
