"""Whether a semantic neighbour may be served as the answer to a query.

The vector store returns the nearest entries of the query's scope as
:class:`Candidate` rows (text, stored vector, cosine similarity, best first). A
:class:`HitDecision` looks at the query and those candidates and returns the one
to serve, or ``None`` for a miss, together with the score that decided it
(cosine for :class:`ThresholdDecision`, the verifier's probability for
:class:`VerifiedDecision`), in two steps (:meth:`HitDecision.nominate`, then
:meth:`HitDecision.accepts`) so that the service can run the verifier once for
a whole micro-batch between them; :func:`decide` runs both with the verifier
inline (evaluation, tests). Decisions are pure: no I/O, no clock.

:class:`ThresholdDecision` is one global cosine threshold, kept as the baseline
that ``semnexus cache eval`` compares against. :class:`VerifiedDecision` scores
each candidate with a learned pair verifier (:mod:`semnexus_cache_lookup.verifier`)
and serves the most probable one only when its probability clears the tenant's
operating point; :class:`OperatingPoints` holds those per-tenant thresholds (the
file ``semnexus cache calibrate`` writes, ``infra/cache-tenants.yaml``). A point may
also carry a fast threshold: a :class:`FastPathScorer` (the stack) serves a nominee
its cheap member (the MLP) rates at or above it without running the expensive one
(the cross-encoder).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import yaml
from pydantic import BaseModel, ConfigDict, Field

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One cached entry the store found near the query (best first in a list)."""

    entry_id: str
    text: str
    vector: Vector
    similarity: float


@dataclass(frozen=True, slots=True)
class Nomination:
    """The candidate a decision would serve, and the score it is judged by.

    ``score`` is ``None`` when the decision's scorer must still score the pair
    (the service batches those across a micro-batch, off the event loop).
    """

    candidate: Candidate | None
    score: float | None


class HitDecision(Protocol):
    """Picks the candidate to serve, or none, in two steps around the scorer.

    :meth:`nominate` picks the one candidate that could be served (or none) and
    says whether :attr:`scorer` must score it; :meth:`accepts` judges the score.
    :func:`decide` runs both with the scorer inline; the service runs the scorer
    for a whole micro-batch at once between them.
    """

    @property
    def scorer(self) -> PairScorer | None:
        """What scores a nominee whose score is ``None`` (``None``: never needed)."""
        ...

    @property
    def fast_threshold(self) -> float | None:
        """The fast path's bar for a :class:`FastPathScorer` (``None``: no fast path)."""
        ...

    def nominate(self, query: str, candidates: Sequence[Candidate]) -> Nomination:
        """The candidate to judge and, when known without the scorer, its score."""
        ...

    def accepts(self, score: float) -> bool:
        """Whether a nominee with this score is served."""
        ...


def decide(
    decision: HitDecision, query: str, query_vector: Vector, candidates: Sequence[Candidate]
) -> tuple[Candidate | None, float]:
    """The candidate to serve (``None``: miss) and the score behind the choice."""
    nominee = decision.nominate(query, candidates)
    if nominee.candidate is None:
        return None, nominee.score or 0.0
    score = nominee.score
    if score is None:
        scorer = decision.scorer
        if scorer is None:
            raise ValueError(f"{type(decision).__name__} nominated a candidate with no scorer")
        best = nominee.candidate
        score = float(
            score_nominees(
                scorer,
                [query],
                query_vector[np.newaxis, :],
                [best.text],
                best.vector[np.newaxis, :],
                fast_thresholds=[decision.fast_threshold],
            )[0]
        )
    return (nominee.candidate if decision.accepts(score) else None), score


def score_nominees(
    scorer: PairScorer,
    a_texts: Sequence[str],
    a_vectors: Vector,
    b_texts: Sequence[str],
    b_vectors: Vector,
    *,
    fast_thresholds: Sequence[float | None],
) -> npt.NDArray[np.float64]:
    """Score pairs, each with its decision's fast path when the scorer has one."""
    fast_at = [math.inf if t is None else t for t in fast_thresholds]
    if isinstance(scorer, FastPathScorer) and any(t < math.inf for t in fast_at):
        return scorer.score_pairs_fast(a_texts, a_vectors, b_texts, b_vectors, fast_at)
    return scorer.score_pairs(a_texts, a_vectors, b_texts, b_vectors)


@dataclass(frozen=True, slots=True)
class ThresholdDecision:
    """Serve the nearest candidate when its cosine similarity reaches one threshold."""

    min_similarity: float = 0.9

    @property
    def scorer(self) -> PairScorer | None:
        """Cosine needs no scorer."""
        return None

    @property
    def fast_threshold(self) -> float | None:
        """Nothing to skip."""
        return None

    def nominate(self, query: str, candidates: Sequence[Candidate]) -> Nomination:
        """Top-1 by similarity, judged by its similarity."""
        if not candidates:
            return Nomination(None, 0.0)
        best = max(candidates, key=lambda c: c.similarity)
        return Nomination(best, best.similarity)

    def accepts(self, score: float) -> bool:
        """At or above the threshold."""
        return score >= self.min_similarity


# --- learned verifier decision (issue 6) -------------------------------------------


class PairScorer(Protocol):
    """Probability that a cached text answers the query (the verifier's interface)."""

    def score_pairs(
        self, a_texts: Sequence[str], a_vectors: Vector, b_texts: Sequence[str], b_vectors: Vector
    ) -> npt.NDArray[np.float64]:
        """One probability per pair (a_i, b_i): the batch form."""
        ...


@runtime_checkable
class FastPathScorer(PairScorer, Protocol):
    """A scorer with a cheap member that can vouch for a pair alone (the stack's MLP)."""

    def score_pairs_fast(
        self,
        a_texts: Sequence[str],
        a_vectors: Vector,
        b_texts: Sequence[str],
        b_vectors: Vector,
        fast_at: Sequence[float],
    ) -> npt.NDArray[np.float64]:
        """As ``score_pairs``; pair i scores 1 when the cheap member rates it ``>= fast_at[i]``."""
        ...


def normalised(text: str) -> str:
    """Case- and spacing-insensitive form used for the identical-text shortcut."""
    return " ".join(text.lower().split())


@dataclass(frozen=True, slots=True)
class VerifiedDecision:
    """Serve the nearest candidate only if the verifier's probability clears ``threshold``.

    The verifier gates the store's top-1 by cosine; it does not re-rank the
    top-k (measured on GPTCache's set: re-ranking five candidates by probability
    served 100 fewer right answers and 90 more wrong ones than gating the
    nearest). A candidate whose text equals the query (case and spacing aside)
    is served with probability 1 without the model. Candidates under
    ``min_similarity`` (a cheap floor; the request's own, when it sets one) are
    never served. With ``fast_threshold``, a :class:`FastPathScorer` scores 1
    (served) a pair its cheap member rates at or above it, without its
    expensive member.
    """

    verifier: PairScorer
    threshold: float
    min_similarity: float = 0.5
    fast_threshold: float | None = None

    @property
    def scorer(self) -> PairScorer | None:
        """The verifier."""
        return self.verifier

    def nominate(self, query: str, candidates: Sequence[Candidate]) -> Nomination:
        """An identical text (score 1), else the nearest above the floor, to be verified."""
        pool = [c for c in candidates if c.similarity >= self.min_similarity]
        if not pool:
            return Nomination(None, 0.0)
        key = normalised(query)
        for candidate in pool:
            if normalised(candidate.text) == key:
                return Nomination(candidate, 1.0)
        return Nomination(max(pool, key=lambda c: c.similarity), None)

    def accepts(self, score: float) -> bool:
        """The verifier's probability reaches the tenant's operating point."""
        return score >= self.threshold


class OperatingPoint(BaseModel):
    """A verifier threshold and the precision it was calibrated to reach."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    threshold: float = Field(ge=0.0, le=1.0)
    target_precision: float = Field(ge=0.0, le=1.0)
    # A stack's MLP probability at or above which a nominee is served without the
    # cross-encoder (None: every nominee is verified by both). Calibrated with the
    # threshold so that the two together keep the target precision.
    fast_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    # What calibration measured at this threshold, for the record.
    measured_precision: float | None = None
    measured_recall: float | None = None
    calibrated_on: str | None = None
    model: str | None = None


class OperatingPoints(BaseModel):
    """Per-tenant operating points with a default (the ``cache-tenants.yaml`` file)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default: OperatingPoint
    tenants: Mapping[str, OperatingPoint] = Field(default_factory=dict)

    def for_tenant(self, tenant_id: str) -> OperatingPoint:
        """The tenant's own point, else the default."""
        return self.tenants.get(tenant_id, self.default)

    @classmethod
    def load(cls, path: Path) -> OperatingPoints:
        """Read the YAML file (read once at start-up)."""
        return cls.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))

    def dump(self, path: Path) -> None:
        """Write the YAML file, tenants sorted, with a header comment."""
        body = self.model_dump(mode="json", exclude_none=True)
        body["tenants"] = dict(sorted(body["tenants"].items()))
        header = (
            "# Semantic-cache operating points: a threshold on the verifier's probability\n"
            "# per tenant and, for the stack, the MLP probability served without the\n"
            "# cross-encoder. Written by `semnexus cache calibrate`; see BENCHMARKS.md.\n"
        )
        path.write_text(header + yaml.safe_dump(body, sort_keys=False), encoding="utf-8")


@dataclass(slots=True)
class TenantDecisions:
    """One :class:`VerifiedDecision` per tenant, built lazily from the operating points."""

    scorer: PairScorer
    points: OperatingPoints
    _cache: dict[str, VerifiedDecision] = field(default_factory=dict)

    def for_tenant(self, tenant_id: str, min_similarity: float | None = None) -> HitDecision:
        """The tenant's decision; a request's own similarity floor narrows it further."""
        if min_similarity is not None:
            point = self.points.for_tenant(tenant_id)
            return VerifiedDecision(
                self.scorer, point.threshold, max(min_similarity, 0.5), point.fast_threshold
            )
        decision = self._cache.get(tenant_id)
        if decision is None:
            point = self.points.for_tenant(tenant_id)
            decision = VerifiedDecision(
                self.scorer, point.threshold, fast_threshold=point.fast_threshold
            )
            self._cache[tenant_id] = decision
        return decision
