"""The cache-lookup decisions: the lookup batch handler, the writer, the purge loop.

No Kafka, HTTP or Milvus imports: adapters come in through protocols
(:class:`~semnexus_cache_lookup.vectorstore.VectorStore`,
:class:`~semnexus_cache_lookup.embedder.Embedder`,
:class:`~semnexus_cache_lookup.policy.Decisions`).

:class:`LookupHandler` takes a micro-batch of ``CompletionRequested`` and, per
request, in this order:

1. validates it: an invalid request yields ``Reject`` (dead letter) and an
   ``invalid_request`` response; a passed deadline yields ``deadline_exceeded``;
2. plans it (:func:`~semnexus_cache_lookup.policy.plan_for`): use, only_exact,
   refresh, bypass, or bypass because the temperature is above the ceiling;
3. exact path: one primary-key lookup for the whole batch (entry id = exact
   key), no embedding; a small batch (``speculative_embed_max_batch``) with the
   model idle starts step 5's model call before this lookup and keeps only the
   vectors of what the exact path missed, unless each of its prompts was an
   exact hit lately (:class:`RecentKeys`): a repeat will most likely hit again,
   and its vector would be thrown away;
4. coalescing: a request whose exact lookup missed leads a flight for its
   key; a twin in a concurrent or later batch waits for the flight
   (:mod:`~semnexus_cache_lookup.coalescing`) and takes the leader's semantic
   hit or, after a miss, the stored fill, within its own policy (only-exact,
   minimum similarity, maximum age); a twin in this same batch shares its
   leader's hit, or, when the leader misses, is re-published once to its own
   partition so that it can wait there;
5. one embedding request for every text of the batch that needs one (through
   an :class:`~semnexus_cache_lookup.embedder.EmbeddingQueue`, which merges it
   with concurrent batches' texts into one model call), then one
   scoped search per distinct scope of the batch (a Milvus search takes a
   single filter, and the filter is the scope), run concurrently;
6. every candidate's scope, TTL and age are checked exactly in Python, then
   the tenant's decision (raised by the request's ``min_similarity``) picks a
   hit or nothing.

A hit yields a ``CompletionResponded`` (source cache, similarity, entry age,
latency per stage) to the reply topic and a ``UsageRecorded`` (cache_hit, the
tokens the stored answer cost). A miss yields a ``CacheMissed`` with the
request, its scope and its embedding (float32 LE). A request the cache must not
store goes out with ``cache.mode = bypass`` so no later stage fills it. Output
event ids derive from the input's, so a replay is deduplicated downstream.

:class:`WriterHandler` stores ``CacheFilled`` answers (stop-finished by default,
embedding computed only if the fill has none) and applies ``CacheInvalidated``
(tenant, scope or entry; only entries stored before the invalidation, so a
replay of the compacted topic is harmless), in arrival order; a stored fill wakes the twins
waiting for its key.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
import structlog

from semnexus_cache_lookup.batching import ModelQueue, empty_rows
from semnexus_cache_lookup.coalescing import Flight, InFlight
from semnexus_cache_lookup.config import CacheSettings, RequestRules
from semnexus_cache_lookup.decision import Candidate, HitDecision, PairScorer, score_nominees
from semnexus_cache_lookup.embedder import Embedder, EmbeddingQueue, Vectors
from semnexus_cache_lookup.entry import CacheEntry, entry_from_fill
from semnexus_cache_lookup.policy import Decisions, Plan, plan_for
from semnexus_cache_lookup.validation import problems
from semnexus_cache_lookup.vectorstore import MAX_TEXT_BYTES, VectorStore
from semnexus_shared.errors import TransientError
from semnexus_shared.events import (
    AnswerSource,
    CacheFilled,
    CacheInvalidated,
    CacheMissed,
    CacheMode,
    CachePolicy,
    CacheScope,
    CompletionRequested,
    CompletionResponded,
    InvalidationTarget,
    ResponseStatus,
    SourceKind,
    StageLatency,
    Usage,
    UsageKind,
    UsageRecorded,
    derive_event_id,
    pack_embedding,
    unpack_embedding,
    utc_now,
)
from semnexus_shared.metrics import meter
from semnexus_shared.replies import ReplyPolicy
from semnexus_shared.scope import exact_key, prompt_of, scope_hash, scope_of
from semnexus_shared.stream import Emit, Inbound, Outcomes, Reject

# Hit rate = hit / (hit + miss), per tenant; the OpenTelemetry API records
# in memory (no I/O here), the service exports it.
_LOOKUPS = meter("semnexus.cache").create_counter(
    "semnexus_cache_lookups", unit="1", description="cache lookups by result (hit or miss)"
)

__all__ = ["COALESCED_MARK", "LookupHandler", "WriterHandler", "purge_expired_forever"]

log = structlog.get_logger("semnexus.cache_lookup")

Vector = npt.NDArray[np.float32]
Clock = Callable[[], datetime]

# Set in the metadata of a twin re-published to its partition, so it is re-published once.
COALESCED_MARK = "semnexus-coalesced"
_EMPTY_USAGE = Usage(input_tokens=0, output_tokens=0)


@dataclass(slots=True)
class _Lookup:
    """One valid request on its way through the lookup stages."""

    inbound: Inbound[CompletionRequested]
    request: CompletionRequested
    scope: CacheScope
    key: str
    prompt: str
    plan: Plan
    reply_topic: str
    outcomes: list[object] | None = None
    vector: Vector | None = None
    flight: Flight | None = None
    leader: _Lookup | None = None
    hit: tuple[CacheEntry, float] | None = None
    stages: dict[str, float] = field(default_factory=dict)

    @property
    def needs_vector(self) -> bool:
        # Semantic readers search with it; refresh misses carry it to the fill.
        return self.plan.semantic or (self.plan.store and not self.plan.exact)


@dataclass(frozen=True, slots=True)
class _Ahead:
    """A model call started before the exact path answered (speculative embedding)."""

    items: list[_Lookup]
    call: asyncio.Future[Vectors]
    started: float

    def settle(self) -> None:
        """Nobody awaits an unneeded call: collect its outcome so none goes unretrieved."""
        if not self.call.done():
            self.call.add_done_callback(_collect)
        elif not self.call.cancelled():
            self.call.exception()


class RecentKeys:
    """The ``capacity`` keys added most recently; the oldest is forgotten first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._keys: OrderedDict[str, None] = OrderedDict()

    def add(self, key: str) -> None:
        """Remember ``key`` as the newest (a no-op at capacity 0)."""
        if self.capacity <= 0:
            return
        self._keys[key] = None
        self._keys.move_to_end(key)
        if len(self._keys) > self.capacity:
            self._keys.popitem(last=False)

    def discard(self, key: str) -> None:
        """Forget ``key`` if it is remembered."""
        self._keys.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)


def _collect(call: asyncio.Future[Vectors]) -> None:
    if not call.cancelled():
        call.exception()


# (query, its vector, the nominee's text, its stored vector, the decision's fast threshold)
_Pair = tuple[str, Vector, str, Vector, float | None]


@dataclass(slots=True)
class _Judgement:
    """A semantic reader's nominee, waiting for (or holding) the score it is judged by."""

    item: _Lookup
    decision: HitDecision
    entries: dict[str, CacheEntry]
    nominee: Candidate | None
    score: float | None

    @property
    def accepted(self) -> bool:
        return self.score is not None and self.decision.accepts(self.score)

    def pair(self) -> _Pair:
        if self.nominee is None or self.item.vector is None:
            raise ValueError("only a nominee with a query vector can be scored")
        return (
            self.item.prompt,
            self.item.vector,
            self.nominee.text,
            self.nominee.vector,
            self.decision.fast_threshold,
        )


def _score_pairs(scorer: PairScorer, pairs: list[_Pair]) -> npt.NDArray[np.float64]:
    return score_nominees(
        scorer,
        [p[0] for p in pairs],
        np.stack([p[1] for p in pairs]),
        [p[2] for p in pairs],
        np.stack([p[3] for p in pairs]),
        fast_thresholds=[p[4] for p in pairs],
    )


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def embedding_queue(embedder: Embedder | EmbeddingQueue) -> EmbeddingQueue:
    """The queue to embed through (pass one queue to both handlers to share the model)."""
    return embedder if isinstance(embedder, EmbeddingQueue) else EmbeddingQueue(embedder)


class LookupHandler:
    """The lookup pipeline's batch handler (``requests`` → responses, misses, usage)."""

    def __init__(
        self,
        *,
        store: VectorStore,
        embedder: Embedder | EmbeddingQueue,
        decisions: Decisions,
        inflight: InFlight,
        settings: CacheSettings,
        rules: RequestRules,
        default_reply_topic: str,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.embedding = embedding_queue(embedder)
        self.decisions = decisions
        scorer = decisions.scorer
        self.verifying: ModelQueue[_Pair] | None = (
            None
            if scorer is None
            else ModelQueue(
                partial(_score_pairs, scorer), empty=empty_rows(None, np.float64), name="verify"
            )
        )
        self.inflight = inflight
        self.settings = settings
        self.rules = rules
        self.replies = ReplyPolicy(default_reply_topic, frozenset(rules.reply_topics))
        self.reply_topics: Collection[str] = frozenset({default_reply_topic, *rules.reply_topics})
        self.clock = clock
        # Exact keys that hit lately: a batch of only these skips speculative embedding.
        self.recent_exact_hits = RecentKeys(settings.recent_exact_hits)

    async def __call__(self, batch: Sequence[Inbound[Any]]) -> list[Outcomes]:
        """Decide every request of the batch; one list of outcomes (or its future) each."""
        now = self.clock()
        items: list[_Lookup | list[object]] = [self._admit(inbound, now) for inbound in batch]
        live = [i for i in items if isinstance(i, _Lookup)]
        ahead = self._embed_ahead(live)
        try:
            await self._exact(live, now)
            parked = self._coalesce(live)
            await self._semantic(live, now, ahead)
        finally:
            if ahead is not None:
                ahead.settle()
        for item in live:
            if item.outcomes is None and item.leader is None and item.flight is None:
                item.outcomes = self._miss(item)
        self._follow_leaders(live)
        if not parked:
            return [i if isinstance(i, list) else (i.outcomes or []) for i in items]
        # Parked twins are decided when their leader's answer arrives; the
        # runner produces the rest of the batch meanwhile.
        waiting = asyncio.ensure_future(self._wait(parked))
        held = {id(item) for item in parked}

        async def decided(item: _Lookup) -> Sequence[object]:
            await waiting
            return item.outcomes or []

        return [
            i if isinstance(i, list) else decided(i) if id(i) in held else (i.outcomes or [])
            for i in items
        ]

    # ── stage 1: validate and plan ────────────────────────────────────────────

    def _admit(self, inbound: Inbound[Any], now: datetime) -> _Lookup | list[object]:
        request = inbound.event
        if not isinstance(request, CompletionRequested):
            return [Reject(f"expected CompletionRequested, got {type(request).__name__}")]
        found = problems(request, self.rules, self.reply_topics)
        reply = self.replies.topic_for(request)
        if found:
            reason = "; ".join(found)
            return [
                Reject(reason, error_class="InvalidRequest"),
                self.replies.error(
                    request,
                    caused_by=request.event_id,
                    status=ResponseStatus.INVALID_REQUEST,
                    message=reason,
                ),
            ]
        if request.deadline is not None and request.deadline <= now:
            return [
                self.replies.error(
                    request,
                    caused_by=request.event_id,
                    status=ResponseStatus.DEADLINE_EXCEEDED,
                    message="the request's deadline passed before it was looked up",
                )
            ]
        scope = scope_of(request)
        prompt = prompt_of(request)
        item = _Lookup(
            inbound=inbound,
            request=request,
            scope=scope,
            key=exact_key(scope, prompt),
            prompt=prompt,
            plan=plan_for(request, self.settings),
            reply_topic=reply,
        )
        if inbound.record.timestamp_ms is not None:
            queued = now.timestamp() * 1000 - inbound.record.timestamp_ms
            item.stages["queue"] = max(0.0, queued)
        return item

    # ── stage 2: exact path ───────────────────────────────────────────────────

    def _servable(self, item: _Lookup, entry: CacheEntry, now: datetime) -> bool:
        """Scope (tenant first), TTL and the request's own max age, checked exactly."""
        if entry.scope.tenant_id != item.scope.tenant_id or entry.scope != item.scope:
            return False
        if not entry.live_at(now):
            return False
        ttl = item.request.cache.ttl_seconds
        return ttl is None or entry.created_at + timedelta(seconds=ttl) > now

    async def _exact(self, live: Sequence[_Lookup], now: datetime) -> None:
        readers = [i for i in live if i.plan.exact]
        if not readers:
            return
        started = time.perf_counter()
        found = await self.store.get([i.key for i in readers])
        took = _elapsed_ms(started)
        for item in readers:
            item.stages["exact"] = took
            entry = found.get(item.key)
            if entry is not None and self._servable(item, entry, now):
                item.hit = (entry, 1.0)
                item.outcomes = self._hit(item, entry, 1.0, now)
                self.recent_exact_hits.add(item.key)
            else:
                self.recent_exact_hits.discard(item.key)

    # ── stage 3: coalescing ───────────────────────────────────────────────────

    def _coalesce(self, live: Sequence[_Lookup]) -> list[_Lookup]:
        parked: list[_Lookup] = []
        leaders: dict[str, _Lookup] = {}
        for item in live:
            if item.outcomes is not None or not item.plan.exact:
                continue
            leader = leaders.get(item.key)
            if leader is not None:
                item.leader = leader
                continue
            flight = self.inflight.join(item.key, item.request.request_id)
            if flight is not None:
                item.flight = flight
                parked.append(item)
                continue
            leaders[item.key] = item
            if item.plan.store:
                # Twins in concurrent batches wait for this one from now on.
                self.inflight.lead(item.key, item.request.request_id)
        return parked

    # ── stages 4 to 6: embed, search, decide ─────────────────────────────────────

    def _embed_ahead(self, live: Sequence[_Lookup]) -> _Ahead | None:
        """Under light load, start embedding while the exact path runs (see config)."""
        wanted = [i for i in live if i.needs_vector]
        if (
            not wanted
            or len(live) > self.settings.speculative_embed_max_batch
            or not self.embedding.idle
            or all(i.key in self.recent_exact_hits for i in wanted)
        ):
            return None
        call = asyncio.ensure_future(self.embedding.embed([i.prompt for i in wanted]))
        return _Ahead(wanted, call, time.perf_counter())

    async def _embed(self, pending: Sequence[_Lookup], ahead: _Ahead | None) -> None:
        # The call ahead embedded every item that needs a vector, so it covers pending.
        if ahead is not None:
            items, started = ahead.items, ahead.started
            vectors = await ahead.call
        else:
            items, started = list(pending), time.perf_counter()
            vectors = await self.embedding.embed([i.prompt for i in pending])
        took = _elapsed_ms(started)
        wanted = {id(i) for i in pending}
        for item, vector in zip(items, vectors, strict=True):
            if id(item) in wanted:
                item.vector = vector
                item.stages["embed"] = took

    async def _semantic(
        self, live: Sequence[_Lookup], now: datetime, ahead: _Ahead | None = None
    ) -> None:
        pending = [
            i
            for i in live
            if i.outcomes is None and i.flight is None and i.leader is None and i.needs_vector
        ]
        if not pending:
            return
        await self._embed(pending, ahead)
        readers = [i for i in pending if i.plan.semantic]
        groups: dict[str, list[_Lookup]] = defaultdict(list)
        for item in readers:
            groups[scope_hash(item.scope)].append(item)
        started = time.perf_counter()
        results = await asyncio.gather(
            *(
                self.store.search(
                    group[0].scope,
                    np.stack([i.vector for i in group if i.vector is not None]),
                    self.settings.top_k,
                    now,
                )
                for group in groups.values()
            )
        )
        took = _elapsed_ms(started)
        judged: list[_Judgement] = []
        for group, found in zip(groups.values(), results, strict=True):
            for item, scored in zip(group, found, strict=True):
                item.stages["search"] = took
                judged.append(self._nominate(item, scored, now))
        await self._verify([j for j in judged if j.nominee is not None and j.score is None])
        for judgement in judged:
            chosen, item = judgement.nominee, judgement.item
            if chosen is not None and judgement.accepted:
                entry = judgement.entries[chosen.entry_id]
                item.hit = (entry, chosen.similarity)
                item.outcomes = self._hit(item, entry, chosen.similarity, now)
                self.inflight.complete(item.key, entry, chosen.similarity)

    def _nominate(
        self, item: _Lookup, scored: Sequence[tuple[CacheEntry, float]], now: datetime
    ) -> _Judgement:
        """Servable candidates only (scope, TTL, age), then the tenant's nominee."""
        started = time.perf_counter()
        entries: dict[str, CacheEntry] = {}
        candidates: list[Candidate] = []
        for entry, similarity in scored:
            if entry.vector is None or not self._servable(item, entry, now):
                continue
            entries[entry.id] = entry
            candidates.append(Candidate(entry.id, entry.prompt, entry.vector, similarity))
        floor = item.request.cache.min_similarity
        decision = self.decisions.for_tenant(item.scope.tenant_id, floor)
        if floor is not None:
            # The request's floor only ever raises the bar, whatever the decision.
            candidates = [c for c in candidates if c.similarity >= floor]
        nominee = decision.nominate(item.prompt, candidates)
        item.stages["decide"] = _elapsed_ms(started)
        return _Judgement(item, decision, entries, nominee.candidate, nominee.score)

    async def _verify(self, unscored: Sequence[_Judgement]) -> None:
        """Score every nominee that needs the verifier in one model call, off the loop."""
        if not unscored or self.verifying is None:
            return
        started = time.perf_counter()
        scores = await self.verifying.submit([j.pair() for j in unscored])
        took = _elapsed_ms(started)
        for judgement, score in zip(unscored, scores, strict=True):
            judgement.score = float(score)
            judgement.item.stages["verify"] = took

    # ── twins ─────────────────────────────────────────────────────────────────

    def _follow_leaders(self, live: Sequence[_Lookup]) -> None:
        now = self.clock()
        for item in live:
            leader = item.leader
            if leader is None:
                continue
            if leader.hit is not None:
                item.hit = leader.hit
                item.stages.update(leader.stages)
                item.outcomes = self._hit(item, leader.hit[0], leader.hit[1], now)
            elif leader.plan.store and COALESCED_MARK not in item.request.metadata:
                # Its leader's miss is produced only when this batch returns: wait behind it.
                marked = item.request.model_copy(
                    update={"metadata": {**item.request.metadata, COALESCED_MARK: leader.key}}
                )
                record = item.inbound.record
                item.outcomes = [Emit(record.topic, record.key, marked)]
            else:
                item.vector = leader.vector
                item.outcomes = self._miss(item)

    async def _wait(self, parked: Sequence[_Lookup]) -> None:
        if not parked:
            return
        started = time.perf_counter()
        answers = await asyncio.gather(*(self.inflight.wait(i.flight) for i in parked if i.flight))
        now = self.clock()
        late: list[_Lookup] = []
        for item, answer in zip(parked, answers, strict=True):
            item.stages["wait"] = _elapsed_ms(started)
            if answer is not None and self._may_share(item, *answer, now):
                item.outcomes = self._hit(item, answer[0], answer[1], now)
            else:
                late.append(item)
        if late:
            # The fill may have been stored by another instance: look once more.
            found = await self.store.get([i.key for i in late])
            for item in late:
                entry = found.get(item.key)
                if entry is not None and self._servable(item, entry, now):
                    item.outcomes = self._hit(item, entry, 1.0, now)
                else:
                    item.outcomes = self._miss(item)

    def _may_share(
        self, item: _Lookup, entry: CacheEntry, similarity: float, now: datetime
    ) -> bool:
        """Whether a twin may take its leader's answer: its own policy still applies."""
        if not self._servable(item, entry, now):
            return False
        if similarity >= 1.0:
            return True
        # A semantic answer: only for a twin that reads semantically, above its own floor.
        floor = item.request.cache.min_similarity
        return item.plan.semantic and (floor is None or similarity >= floor)

    # ── outcomes ──────────────────────────────────────────────────────────────

    def _latency(self, item: _Lookup) -> tuple[StageLatency, ...]:
        return tuple(
            StageLatency(stage=stage, duration_ms=round(ms)) for stage, ms in item.stages.items()
        )

    def _hit(
        self, item: _Lookup, entry: CacheEntry, similarity: float, now: datetime
    ) -> list[object]:
        request = item.request
        _LOOKUPS.add(1, {"result": "hit", "tenant_id": request.tenant_id})
        response = CompletionResponded(
            event_id=derive_event_id("cache-lookup", "response", request.event_id),
            request_id=request.request_id,
            tenant_id=request.tenant_id,
            status=ResponseStatus.OK,
            text=entry.answer,
            finish_reason=entry.finish_reason,
            source=AnswerSource(
                kind=SourceKind.CACHE,
                provider=entry.provider,
                model=entry.model,
                similarity=round(similarity, 6),
                cache_entry_age_ms=entry.age_ms(now),
            ),
            usage=_EMPTY_USAGE,
            latency=self._latency(item),
        )
        usage = UsageRecorded(
            # One per request id: a request published twice is credited once.
            event_id=derive_event_id("cache-lookup", "cache-hit", request.request_id),
            request_id=request.request_id,
            tenant_id=request.tenant_id,
            kind=UsageKind.CACHE_HIT,
            model_alias=request.model_alias,
            provider=entry.provider,
            model=entry.model,
            input_tokens=entry.usage.input_tokens,
            output_tokens=entry.usage.output_tokens,
            cached_input_tokens=entry.usage.cached_input_tokens,
        )
        return [Emit(item.reply_topic, request.request_id.encode(), response), usage]

    def _miss(self, item: _Lookup) -> list[object]:
        request = item.request
        _LOOKUPS.add(1, {"result": "miss", "tenant_id": request.tenant_id})
        if not item.plan.store and request.cache.mode is not CacheMode.BYPASS:
            # Tell every later stage not to store this answer (e.g. temperature too high).
            request = request.model_copy(
                update={
                    "cache": CachePolicy(
                        mode=CacheMode.BYPASS,
                        ttl_seconds=request.cache.ttl_seconds,
                        min_similarity=request.cache.min_similarity,
                    )
                }
            )
        if item.plan.store:
            self.inflight.lead(item.key, request.request_id)
        vector = item.vector
        return [
            CacheMissed(
                event_id=derive_event_id("cache-lookup", "missed", request.event_id),
                request_id=request.request_id,
                tenant_id=request.tenant_id,
                request=request,
                scope=item.scope,
                embedding=None if vector is None else pack_embedding(vector.tolist()),
            )
        ]


class WriterHandler:
    """The writer pipeline's batch handler (``cache.fill``, ``cache.invalidate`` → the store)."""

    def __init__(
        self,
        *,
        store: VectorStore,
        embedder: Embedder | EmbeddingQueue,
        inflight: InFlight,
        settings: CacheSettings,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.embedding = embedding_queue(embedder)
        self.inflight = inflight
        self.settings = settings
        self.clock = clock

    async def __call__(self, batch: Sequence[Inbound[Any]]) -> list[list[object]]:
        """Store fills and apply invalidations in arrival order."""
        outcomes: list[list[object]] = [[] for _ in batch]
        fills: list[tuple[int, CacheFilled]] = []
        for index, inbound in enumerate(batch):
            event = inbound.event
            if isinstance(event, CacheFilled):
                fills.append((index, event))
            elif isinstance(event, CacheInvalidated):
                await self._store(fills, outcomes)
                fills = []
                outcomes[index] = await self._invalidate(event)
            else:
                outcomes[index] = [Reject(f"unexpected event {type(event).__name__}")]
        await self._store(fills, outcomes)
        return outcomes

    def _storable(self, fill: CacheFilled) -> str | None:
        if fill.finish_reason not in self.settings.store_finish_reasons:
            return f"finish reason {fill.finish_reason.value} is not cached"
        if not fill.answer or len(fill.answer.encode("utf-8")) > MAX_TEXT_BYTES:
            return "answer empty or too large to store"
        if not fill.prompt.strip():
            return "no prompt"
        return None

    async def _store(
        self, fills: Sequence[tuple[int, CacheFilled]], outcomes: list[list[object]]
    ) -> None:
        keep: list[tuple[int, CacheFilled]] = []
        for index, fill in fills:
            skipped = self._storable(fill)
            if skipped:
                log.info("fill not stored", request_id=fill.request_id, reason=skipped)
            else:
                keep.append((index, fill))
        if not keep:
            return
        vectors: dict[int, Vector] = {}
        missing = [(i, f) for i, f in keep if f.embedding is None]
        if missing:
            embedded = await self.embedding.embed([f.prompt for _, f in missing])
            vectors.update({i: v for (i, _), v in zip(missing, embedded, strict=True)})
        entries: dict[str, CacheEntry] = {}
        now = self.clock()
        for index, fill in keep:
            vector = vectors.get(index)
            if vector is None and fill.embedding is not None:
                vector = np.asarray(unpack_embedding(fill.embedding), dtype=np.float32)
            if vector is None or vector.shape != (self.settings.dimensions,):
                outcomes[index] = [
                    Reject(
                        f"embedding has {0 if vector is None else vector.size} dimensions, "
                        f"expected {self.settings.dimensions}",
                        error_class="InvalidFill",
                    )
                ]
                continue
            entry = entry_from_fill(
                fill, vector, self.settings.default_ttl_s, self.settings.max_ttl_s
            )
            if entry.live_at(now):
                entries[entry.id] = entry
        await self.store.upsert(list(entries.values()))
        for entry in entries.values():
            self.inflight.complete(entry.id, entry)

    async def _invalidate(self, event: CacheInvalidated) -> list[object]:
        target = event.target
        if target is InvalidationTarget.TENANT:
            await self.store.delete_tenant(event.tenant_id, event.created_at)
        elif target is InvalidationTarget.SCOPE:
            if event.scope is None or event.scope.tenant_id != event.tenant_id:
                return [
                    Reject(
                        "scope invalidation needs a scope of the same tenant",
                        error_class="InvalidInvalidation",
                    )
                ]
            await self.store.delete_scope(event.scope, event.created_at)
        else:
            if not event.entry_id:
                return [
                    Reject(
                        "entry invalidation needs an entry_id", error_class="InvalidInvalidation"
                    )
                ]
            await self.store.delete_entry(event.tenant_id, event.entry_id, event.created_at)
        log.info(
            "cache invalidated", tenant_id=event.tenant_id, target=target.value, reason=event.reason
        )
        return []


async def purge_expired_forever(
    store: VectorStore, interval_s: float, clock: Clock = utc_now
) -> None:
    """Delete expired entries every ``interval_s`` (they are never served meanwhile)."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await store.purge_expired(clock())
        except TransientError as exc:
            # Expired entries are filtered out of every lookup; purging can wait a round.
            log.warning("purge failed; retrying next round", error=str(exc))
