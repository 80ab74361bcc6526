"""Measuring and calibrating the semantic-cache hit decision on labelled data.

Two protocols, both run through the service's own path (embedder → scoped
vector store → :class:`~semnexus_cache_lookup.decision.HitDecision`):

- **pairs** (``{"text_a", "text_b", "label"}`` JSON lines): each pair gets its
  own scope holding only ``text_a``; ``text_b`` is asked; a hit is correct iff
  the label is 1. Reports pairwise precision and recall of "hit".
- **retrieval** (GPTCache's ``mock_data.json``: ``[{"origin", "similar"}]``):
  every origin goes into one scope, every similar is asked, the store's top-k go
  to the decision. *strict* counting (GPTCache's) calls a hit correct only when
  it returns the record's own origin; *text* counting also accepts an origin with
  the same text (case and spacing aside), since the file repeats origins.

The store is the :class:`CandidateStore` protocol. :class:`MemoryStore` is an
exact (brute-force cosine) in-process implementation; :class:`MilvusCandidateStore`
runs the service's own Milvus adapter (Milvus Lite in a temporary folder) behind
the same protocol. Calibration (:func:`calibrate`)
picks the lowest verifier threshold whose precision on labelled pairs reaches a
target, optionally on a one-sided Wilson lower bound, so that a threshold chosen
on one sample keeps its promise on the next. :func:`split_by_cluster` splits
pairs by connected component of the question graph so that no question is in
two splits; :func:`implied_pairs` lists the pairs a split's labels imply by
transitivity (a training option, off by default). :class:`CachedEmbedder`
memoises embeddings of a dataset on disk (for offline runs only; the service
never uses it).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from semnexus_cache_lookup.decision import Candidate, HitDecision, decide, normalised
from semnexus_cache_lookup.embedder import Embedder
from semnexus_cache_lookup.entry import CacheEntry
from semnexus_shared.events import CacheScope, FinishReason, Usage

Vectors = npt.NDArray[np.float32]
Scores = npt.NDArray[np.float64]
Labels = npt.NDArray[np.int8]


# --- data -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LabelledPair:
    """Two questions and whether they ask the same thing (1) or not (0)."""

    text_a: str
    text_b: str
    label: int


@dataclass(frozen=True, slots=True)
class RetrievalRecord:
    """A cached question (``origin``) and a paraphrase that should find it."""

    origin: str
    similar: str


def load_pairs(path: Path, limit: int | None = None) -> list[LabelledPair]:
    """Read labelled pairs from JSON lines (the first ``limit`` if given)."""
    pairs: list[LabelledPair] = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            row = json.loads(line)
            pairs.append(LabelledPair(str(row["text_a"]), str(row["text_b"]), int(row["label"])))
            if limit is not None and len(pairs) >= limit:
                break
    return pairs


def load_retrieval(path: Path, limit: int | None = None) -> list[RetrievalRecord]:
    """Read GPTCache-style ``[{"origin", "similar"}]`` records."""
    rows = json.loads(path.read_text(encoding="utf-8"))
    records = [RetrievalRecord(str(r["origin"]), str(r["similar"])) for r in rows]
    return records[:limit] if limit is not None else records


@dataclass(frozen=True, slots=True)
class Split:
    """Pairs split so that no question appears in two parts."""

    train: list[LabelledPair]
    val: list[LabelledPair]
    test: list[LabelledPair]


def components(edges: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Each text of ``edges`` mapped to the smallest text of its connected component."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        root = parent.setdefault(x, x)
        while root != parent[root]:
            parent[root] = parent[parent[root]]
            root = parent[root]
        parent[x] = root
        return root

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            # The smaller text stays the root, so a root is its component's smallest text.
            parent[max(ra, rb)] = min(ra, rb)
    return {text: find(text) for text in list(parent)}


def implied_pairs(
    pairs: Sequence[LabelledPair], per_question: int = 2, seed: str = "semnexus"
) -> list[LabelledPair]:
    """Pairs the labels imply that ``pairs`` do not hold, for training on more of the same data.

    "Same question" is transitive: questions joined by label-1 pairs form a
    cluster, and any two of its members are a positive. A label-0 pair says its
    two clusters differ, so any member of one against any member of the other is
    a negative. Where the labels contradict each other (a label-0 pair inside one
    cluster) that cluster implies nothing. A large cluster would imply pairs by
    the thousand and drown the rest, so each source (a cluster, or a label-0 pair)
    adds at most ``per_question`` pairs per question it holds, drawn with ``seed``.
    """
    cluster = components((p.text_a, p.text_b) for p in pairs if p.label == 1)
    members: dict[str, list[str]] = {}
    for text in sorted({t for p in pairs for t in (p.text_a, p.text_b)}):
        members.setdefault(cluster.get(text, text), []).append(text)
    contradicted = {
        cluster.get(p.text_a, p.text_a)
        for p in pairs
        if p.label == 0 and cluster.get(p.text_a, p.text_a) == cluster.get(p.text_b, p.text_b)
    }
    held = {frozenset((p.text_a, p.text_b)) for p in pairs}
    draw = random.Random(seed)
    out: list[LabelledPair] = []

    def take(candidates: list[tuple[str, str]], label: int, most: int) -> None:
        fresh = [(a, b) for a, b in candidates if frozenset((a, b)) not in held]
        for a, b in draw.sample(fresh, min(most, len(fresh))):
            held.add(frozenset((a, b)))
            out.append(LabelledPair(a, b, label))

    for root, texts in members.items():
        if len(texts) > 2 and root not in contradicted:
            take(list(itertools.combinations(texts, 2)), 1, per_question * len(texts))
    for p in pairs:
        if p.label != 0:
            continue
        ra, rb = cluster.get(p.text_a, p.text_a), cluster.get(p.text_b, p.text_b)
        if ra == rb or ra in contradicted or rb in contradicted:
            continue
        side_a, side_b = members[ra], members[rb]
        if len(side_a) + len(side_b) > 2:
            grid = list(itertools.product(side_a, side_b))
            take(grid, 0, per_question * (len(side_a) + len(side_b)))
    return out


def split_by_cluster(
    pairs: Sequence[LabelledPair],
    fractions: tuple[float, float] = (0.7, 0.15),
    seed: str = "semnexus",
) -> Split:
    """Split by connected component of the question graph (train, val, rest → test).

    A component goes to a part by a hash of its smallest question and ``seed``,
    so the assignment is deterministic and does not depend on file order.
    """
    component = components((pair.text_a, pair.text_b) for pair in pairs)
    train_cut, val_cut = fractions[0], fractions[0] + fractions[1]
    parts: tuple[list[LabelledPair], list[LabelledPair], list[LabelledPair]] = ([], [], [])
    for pair in pairs:
        key = f"{seed}\n{component[pair.text_a]}".encode()
        draw = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64
        part = 0 if draw < train_cut else 1 if draw < val_cut else 2
        parts[part].append(pair)
    return Split(*parts)


# --- calibration ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Operating:
    """A threshold and what it achieves on the pairs it was measured on."""

    threshold: float
    precision: float
    recall: float
    hits: int
    pairs: int


def measure(scores: Scores, labels: Labels, threshold: float) -> Operating:
    """Precision and recall of "serve" (score ≥ threshold) against the labels."""
    served = scores >= threshold
    hits = int(served.sum())
    correct = int((served & (labels == 1)).sum())
    positives = int((labels == 1).sum())
    return Operating(
        threshold=threshold,
        precision=correct / hits if hits else 1.0,
        recall=correct / positives if positives else 0.0,
        hits=hits,
        pairs=len(labels),
    )


def wilson_lower(
    correct: npt.NDArray[np.float64], total: npt.NDArray[np.float64], z: float
) -> npt.NDArray[np.float64]:
    """One-sided Wilson score lower bound on a proportion (elementwise)."""
    n = np.maximum(total, 1.0)
    p = correct / n
    centre = p + z * z / (2 * n)
    margin = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return np.asarray((centre - margin) / (1 + z * z / n), dtype=np.float64)


def calibrate(
    scores: Scores,
    labels: Labels,
    target_precision: float,
    confidence_z: float = 0.0,
    min_hits: int = 1,
) -> Operating:
    """The lowest threshold whose precision (or its Wilson bound at ``z``) reaches the target.

    Lowest threshold means highest recall among thresholds that keep the promise.
    With ``confidence_z`` > 0 the bound, not the point estimate, must reach the
    target (1.645: one-sided 95 %), which costs a little recall and keeps the
    precision on unseen traffic. When no threshold qualifies the result serves
    nothing (threshold above every score).
    """
    order = np.argsort(-scores, kind="stable")
    ranked, truth = scores[order], (labels[order] == 1).astype(np.float64)
    correct = np.cumsum(truth)
    served = np.arange(1, len(ranked) + 1, dtype=np.float64)
    # Only cut between distinct scores: ties are served together.
    last_of_tie = np.r_[ranked[1:] != ranked[:-1], True]
    precision = (
        wilson_lower(correct, served, confidence_z) if confidence_z > 0 else (correct / served)
    )
    ok = last_of_tie & (precision >= target_precision) & (served >= min_hits)
    if not ok.any():
        return measure(scores, labels, math.nextafter(float(scores.max(initial=1.0)), math.inf))
    cut = int(np.flatnonzero(ok).max())
    return measure(scores, labels, float(ranked[cut]))


def with_fast_path(scores: Scores, cheap: Scores, fast_threshold: float) -> Scores:
    """The decision's scores when a pair its cheap member rates ``>= fast_threshold`` scores 1."""
    return np.where(cheap >= fast_threshold, 1.0, scores)


def calibrate_fast_path(
    scores: Scores,
    cheap: Scores,
    labels: Labels,
    target_precision: float,
    *,
    confidence_z: float = 0.0,
    max_recall_cost: float = 0.01,
    step: float = 0.01,
) -> tuple[float | None, Operating]:
    """A fast threshold for the cheap member and the threshold that goes with it.

    The lowest fast threshold, from the cheap member's own calibrated point up
    in ``step``, whose decision (the threshold recalibrated on
    :func:`with_fast_path` scores, so the two together keep the target) loses at
    most ``max_recall_cost`` of the recall the full scorer reaches alone. A lower
    fast threshold skips the expensive member for more hits. ``None`` (and the
    full scorer's point) when no fast threshold keeps both promises.
    """
    alone = calibrate(scores, labels, target_precision, confidence_z)
    own = calibrate(cheap, labels, target_precision, confidence_z)
    if own.hits == 0:
        return None, alone
    for fast in np.arange(own.threshold, 1.0, step):
        if not (cheap >= fast).any():
            break
        got = calibrate(with_fast_path(scores, cheap, fast), labels, target_precision, confidence_z)
        if got.threshold <= 1.0 and got.recall >= alone.recall - max_recall_cost:
            return float(fast), got
    return None, alone


def recall_at_precision(scores: Scores, labels: Labels, target_precision: float) -> Operating:
    """The best recall any threshold reaches at the target precision (in-sample)."""
    return calibrate(scores, labels, target_precision, confidence_z=0.0, min_hits=20)


def pair_scores(
    pairs: Sequence[LabelledPair], embedder: Embedder, scorer: BatchScorer
) -> tuple[Scores, Labels]:
    """The decision's score for each pair (query ``text_b``, cached ``text_a``) and its label.

    Same score the :class:`~semnexus_cache_lookup.decision.VerifiedDecision`
    compares with its threshold, identical-text shortcut included.
    """
    queries, cached = [p.text_b for p in pairs], [p.text_a for p in pairs]
    scores = scorer.score_pairs(queries, embedder.embed(queries), cached, embedder.embed(cached))
    same = np.array(
        [normalised(a) == normalised(b) for a, b in zip(queries, cached, strict=True)], dtype=bool
    )
    scores = np.where(same, 1.0, scores)
    return scores, np.array([p.label for p in pairs], dtype=np.int8)


class BatchScorer(Protocol):
    """Scores many (query, cached) pairs at once (the verifier's batch form)."""

    def score_pairs(
        self, a_texts: Sequence[str], a_vectors: Vectors, b_texts: Sequence[str], b_vectors: Vectors
    ) -> Scores:
        """One probability per pair."""
        ...


def precision_at_recall(scores: Scores, labels: Labels, recall: float) -> float:
    """Precision of the smallest top-scored set that reaches ``recall`` of the positives."""
    order = np.argsort(-scores, kind="stable")
    correct = np.cumsum(labels[order] == 1)
    needed = recall * max(int((labels == 1).sum()), 1)
    k = int(np.searchsorted(correct, needed)) + 1
    return float(correct[min(k, len(correct)) - 1] / min(k, len(correct)))


# --- the decision path ---------------------------------------------------------------


class CandidateStore(Protocol):
    """The vector store as the evaluation sees it: insert per scope, search per scope."""

    def insert(self, scope: str, entry_id: str, text: str, vector: Vectors) -> None:
        """Store one entry (its text and L2-normalised vector) in ``scope``."""
        ...

    def search(self, scope: str, vector: Vectors, limit: int) -> list[Candidate]:
        """The ``limit`` nearest entries of ``scope``, best first."""
        ...


@dataclass(slots=True)
class MemoryStore:
    """Exact cosine search per scope in process memory (the reference store)."""

    _ids: dict[str, list[str]] = field(default_factory=dict)
    _texts: dict[str, list[str]] = field(default_factory=dict)
    _rows: dict[str, list[Vectors]] = field(default_factory=dict)
    _matrix: dict[str, Vectors] = field(default_factory=dict)

    def insert(self, scope: str, entry_id: str, text: str, vector: Vectors) -> None:
        """Store one entry; the scope's search matrix is rebuilt on next search."""
        self._ids.setdefault(scope, []).append(entry_id)
        self._texts.setdefault(scope, []).append(text)
        self._rows.setdefault(scope, []).append(np.asarray(vector, dtype=np.float32))
        self._matrix.pop(scope, None)

    def search(self, scope: str, vector: Vectors, limit: int) -> list[Candidate]:
        """Top ``limit`` entries of the scope by cosine, best first."""
        if scope not in self._rows:
            return []
        matrix = self._matrix.get(scope)
        if matrix is None:
            matrix = self._matrix[scope] = np.stack(self._rows[scope])
        sims = matrix @ np.asarray(vector, dtype=np.float32)
        top = np.argsort(-sims, kind="stable")[:limit]
        return [
            Candidate(self._ids[scope][i], self._texts[scope][i], matrix[i], float(sims[i]))
            for i in top
        ]


class MilvusCandidateStore:
    """:class:`CandidateStore` over the service's own :class:`MilvusVectorStore`.

    Each evaluation scope becomes a real cache scope (tenant ``eval``, the scope
    name as model alias), so searches run the service's filtered query. Inserts
    are buffered and written in one upsert before the scope's first search.
    Meant for Milvus Lite in a temporary folder (``semnexus cache eval --store
    milvus-lite``); every call blocks on the store's event loop.
    """

    def __init__(self, uri: str, collection: str = "semnexus_eval") -> None:
        from semnexus_cache_lookup.vectorstore import MilvusVectorStore  # noqa: PLC0415

        self._runner = asyncio.Runner()
        self._store = MilvusVectorStore(uri, collection, 384)
        self._runner.run(self._store.ensure())
        self._pending: list[CacheEntry] = []
        self._now = datetime.now(UTC)

    @staticmethod
    def _scope(scope: str) -> CacheScope:
        return CacheScope(
            tenant_id="eval",
            model_alias=scope,
            system_hash="",
            history_hash="",
            tools_format_hash="",
            sampling_bucket="",
        )

    def insert(self, scope: str, entry_id: str, text: str, vector: Vectors) -> None:
        """Buffer one entry for the next flush."""
        self._pending.append(
            CacheEntry(
                id=f"{scope}/{entry_id}"[:64],
                scope=self._scope(scope),
                prompt=text,
                answer=entry_id,
                finish_reason=FinishReason.STOP,
                usage=Usage(input_tokens=0, output_tokens=0),
                provider="eval",
                model="eval",
                request_id=entry_id,
                created_at=self._now,
                expires_at=self._now + timedelta(days=1),
                vector=np.asarray(vector, np.float32),
            )
        )

    def search(self, scope: str, vector: Vectors, limit: int) -> list[Candidate]:
        """Flush pending writes, then one scoped search through the service's adapter."""
        if self._pending:
            self._runner.run(self._store.upsert(self._pending))
            self._pending = []
        [hits] = self._runner.run(
            self._store.search(self._scope(scope), vector[np.newaxis, :], limit, self._now)
        )
        return [
            Candidate(entry.answer, entry.prompt, entry.vector, similarity)
            for entry, similarity in hits
            if entry.vector is not None
        ]

    def close(self) -> None:
        """Close the store and its event loop."""
        self._runner.run(self._store.close())
        self._runner.close()


@dataclass(frozen=True, slots=True)
class PairReport:
    """Outcome of the pairs protocol."""

    precision: float
    recall: float
    hits: int
    pairs: int
    correct: int

    def json_line(self) -> str:
        """The one-line JSON summary ``semnexus cache eval --pairs`` ends with."""
        return json.dumps(
            {
                "precision": round(self.precision, 4),
                "recall": round(self.recall, 4),
                "hits": self.hits,
                "pairs": self.pairs,
            }
        )


@dataclass(frozen=True, slots=True)
class RetrievalReport:
    """Outcome of the retrieval protocol under both countings."""

    correct: int
    wrong: int
    miss: int
    strict_correct: int
    strict_wrong: int

    def json_line(self) -> str:
        """The one-line JSON summary ``semnexus cache eval --retrieval`` ends with."""
        return json.dumps(
            {
                "correct": self.correct,
                "wrong": self.wrong,
                "miss": self.miss,
                "strict_correct": self.strict_correct,
                "strict_wrong": self.strict_wrong,
            }
        )


def _embed_all(embedder: Embedder, texts: Sequence[str]) -> dict[str, Vectors]:
    unique = sorted(set(texts))
    vectors = embedder.embed(unique)
    return {t: vectors[i] for i, t in enumerate(unique)}


def evaluate_pairs(
    pairs: Sequence[LabelledPair],
    embedder: Embedder,
    store: CandidateStore,
    decision: HitDecision,
    top_k: int = 5,
) -> PairReport:
    """Pairs protocol: one isolated scope per pair holding only ``text_a``."""
    vectors = _embed_all(embedder, [t for p in pairs for t in (p.text_a, p.text_b)])
    hits = correct = 0
    for i, pair in enumerate(pairs):
        scope = f"pair-{i}"
        store.insert(scope, f"{i}", pair.text_a, vectors[pair.text_a])
        query_vector = vectors[pair.text_b]
        chosen, _ = decide(
            decision, pair.text_b, query_vector, store.search(scope, query_vector, top_k)
        )
        if chosen is not None:
            hits += 1
            correct += pair.label == 1
    positives = sum(p.label == 1 for p in pairs)
    return PairReport(
        precision=correct / hits if hits else 1.0,
        recall=correct / positives if positives else 0.0,
        hits=hits,
        pairs=len(pairs),
        correct=correct,
    )


def evaluate_retrieval(
    records: Sequence[RetrievalRecord],
    embedder: Embedder,
    store: CandidateStore,
    decision: HitDecision,
    *,
    top_k: int = 5,
    scope: str = "retrieval",
) -> RetrievalReport:
    """GPTCache protocol: insert every origin, ask every similar, top-k + decision."""
    vectors = _embed_all(embedder, [t for r in records for t in (r.origin, r.similar)])
    for i, record in enumerate(records):
        store.insert(scope, f"{i}", record.origin, vectors[record.origin])
    correct = wrong = strict_correct = 0
    for i, record in enumerate(records):
        query_vector = vectors[record.similar]
        chosen, _ = decide(
            decision, record.similar, query_vector, store.search(scope, query_vector, top_k)
        )
        if chosen is None:
            continue
        if chosen.entry_id == f"{i}":
            strict_correct += 1
        if chosen.entry_id == f"{i}" or normalised(chosen.text) == normalised(record.origin):
            correct += 1
        else:
            wrong += 1
    hits = correct + wrong
    return RetrievalReport(
        correct=correct,
        wrong=wrong,
        miss=len(records) - hits,
        strict_correct=strict_correct,
        strict_wrong=hits - strict_correct,
    )


# --- offline embedding cache ------------------------------------------------------------


class CachedEmbedder:
    """An :class:`Embedder` that remembers every text it embedded in ``.npz`` shards.

    For evaluation and training runs over fixed datasets: the first run embeds
    (minutes on two cores), later runs read the shards. Never used by the service.
    """

    def __init__(self, factory: Callable[[], Embedder], directory: Path) -> None:
        self._factory = factory
        self._inner: Embedder | None = None
        self.directory = directory
        self.dimensions = 384
        self._known: dict[str, Vectors] = {}
        directory.mkdir(parents=True, exist_ok=True)
        for shard in sorted(directory.glob("minilm-*.npz")):
            with np.load(shard, allow_pickle=False) as z:
                texts = json.loads(z["texts_json"].tobytes().decode("utf-8"))
                self._known.update(zip(texts, z["vectors"], strict=True))

    def _embedder(self) -> Embedder:
        # The model loads only when a text is missing from the shards.
        if self._inner is None:
            self._inner = self._factory()
        return self._inner

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Vectors for ``texts``, embedding (and saving) only the unknown ones."""
        missing = sorted({t for t in texts if t not in self._known})
        if missing:
            fresh = self._embedder().embed(missing)
            self.remember(missing, fresh)
            self._known.update(zip(missing, fresh, strict=True))
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return np.stack([self._known[t] for t in texts]).astype(np.float32)

    def remember(self, texts: Iterable[str], vectors: Vectors) -> None:
        """Persist vectors for texts as a new shard (also how tests pre-fill a cache)."""
        listed = list(texts)
        digest = hashlib.sha256("\n".join(listed).encode()).hexdigest()[:16]
        # Texts as UTF-8 JSON bytes: a fixed-width unicode array would be 4x the vectors.
        encoded = np.frombuffer(json.dumps(listed).encode("utf-8"), dtype=np.uint8)
        np.savez(
            self.directory / f"minilm-{digest}.npz",
            texts_json=encoded,
            vectors=np.asarray(vectors, dtype=np.float32),
        )
