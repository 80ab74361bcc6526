"""Whether a semantic neighbour may be served as the answer to a query.

The vector store returns the nearest entries of the query's scope as
:class:`Candidate` rows (text, stored vector, cosine similarity, best first). A
:class:`HitDecision` looks at the query and those candidates and returns the one
to serve, or ``None`` for a miss, together with the score that decided it
(cosine for :class:`ThresholdDecision`, the verifier's probability for
:class:`VerifiedDecision`). Decisions are pure: no I/O, no clock.

:class:`ThresholdDecision` is one global cosine threshold, kept as the baseline
that ``semnexus cache eval`` compares against. :class:`VerifiedDecision` scores
each candidate with a learned pair verifier (:mod:`semnexus_cache_lookup.verifier`)
and serves the most probable one only when its probability clears the tenant's
operating point; :class:`OperatingPoints` holds those per-tenant thresholds (the
file ``semnexus cache calibrate`` writes, ``infra/cache-tenants.yaml``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

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


class HitDecision(Protocol):
    """Picks the candidate to serve, or none; returns it with its deciding score."""

    def decide(
        self, query: str, query_vector: Vector, candidates: Sequence[Candidate]
    ) -> tuple[Candidate | None, float]:
        """The candidate to serve (``None``: miss) and the score behind the choice."""
        ...


@dataclass(frozen=True, slots=True)
class ThresholdDecision:
    """Serve the nearest candidate when its cosine similarity reaches one threshold."""

    min_similarity: float = 0.9

    def decide(
        self, query: str, query_vector: Vector, candidates: Sequence[Candidate]
    ) -> tuple[Candidate | None, float]:
        """Top-1 by similarity, served at or above the threshold."""
        if not candidates:
            return None, 0.0
        best = max(candidates, key=lambda c: c.similarity)
        return (best if best.similarity >= self.min_similarity else None), best.similarity


# --- learned verifier decision (issue 6) -------------------------------------------


class PairScorer(Protocol):
    """Probability that a cached text answers the query (the verifier's interface)."""

    def score(
        self, query: str, query_vector: Vector, texts: Sequence[str], vectors: Vector
    ) -> npt.NDArray[np.float64]:
        """One probability per candidate row."""
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
    never served.
    """

    scorer: PairScorer
    threshold: float
    min_similarity: float = 0.5

    def decide(
        self, query: str, query_vector: Vector, candidates: Sequence[Candidate]
    ) -> tuple[Candidate | None, float]:
        """The nearest candidate if verified, else a miss; with its probability."""
        pool = [c for c in candidates if c.similarity >= self.min_similarity]
        if not pool:
            return None, 0.0
        key = normalised(query)
        for candidate in pool:
            if normalised(candidate.text) == key:
                return candidate, 1.0
        best = max(pool, key=lambda c: c.similarity)
        probability = float(
            self.scorer.score(query, query_vector, [best.text], best.vector[np.newaxis, :])[0]
        )
        return (best if probability >= self.threshold else None), probability


class OperatingPoint(BaseModel):
    """A verifier threshold and the precision it was calibrated to reach."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    threshold: float = Field(ge=0.0, le=1.0)
    target_precision: float = Field(ge=0.0, le=1.0)
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
            "# per tenant. Written by `semnexus cache calibrate`; see BENCHMARKS.md.\n"
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
            return VerifiedDecision(self.scorer, point.threshold, max(min_similarity, 0.5))
        decision = self._cache.get(tenant_id)
        if decision is None:
            point = self.points.for_tenant(tenant_id)
            decision = VerifiedDecision(self.scorer, point.threshold)
            self._cache[tenant_id] = decision
        return decision
