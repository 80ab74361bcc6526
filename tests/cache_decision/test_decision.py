"""The verified hit decision and the per-tenant operating points."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from semnexus_cache_lookup.decision import (
    Candidate,
    OperatingPoint,
    OperatingPoints,
    TenantDecisions,
    ThresholdDecision,
    VerifiedDecision,
    decide,
)

_V = np.full(4, 0.5, dtype=np.float32)


class _Table:
    """A scorer that returns a fixed probability per candidate text."""

    def __init__(self, table: dict[str, float]) -> None:
        self.table = table
        self.calls = 0

    def score_pairs(
        self,
        a_texts: Sequence[str],
        a_vectors: npt.NDArray[np.float32],
        b_texts: Sequence[str],
        b_vectors: npt.NDArray[np.float32],
    ) -> npt.NDArray[np.float64]:
        self.calls += 1
        return np.array([self.table[t] for t in b_texts], dtype=np.float64)


def _c(text: str, similarity: float) -> Candidate:
    return Candidate(entry_id=text, text=text, vector=_V, similarity=similarity)


def test_verifies_the_nearest_candidate_only() -> None:
    """The verifier gates the store's top-1; a farther candidate it likes is not served."""
    decision = VerifiedDecision(_Table({"near": 0.3, "far": 0.99}), threshold=0.8)
    assert decide(decision, "q", _V, [_c("far", 0.93), _c("near", 0.97)]) == (None, 0.3)
    table = _Table({"near": 0.9, "far": 0.99})
    chosen, score = decide(
        VerifiedDecision(table, threshold=0.8), "q", _V, [_c("far", 0.93), _c("near", 0.97)]
    )
    assert chosen is not None
    assert (chosen.text, score) == ("near", 0.9)


def test_misses_below_threshold() -> None:
    """A best probability under the threshold is a miss, reported with its score."""
    decision = VerifiedDecision(_Table({"near": 0.7}), threshold=0.8)
    assert decide(decision, "q", _V, [_c("near", 0.99)]) == (None, 0.7)


def test_identical_text_is_served_without_the_model() -> None:
    """Same text up to case and spacing is a hit with probability 1."""
    scorer = _Table({})
    decision = VerifiedDecision(scorer, threshold=0.99)
    chosen, score = decide(decision, "What is  AI?", _V, [_c("what is ai?", 0.99)])
    assert chosen is not None
    assert score == 1.0
    assert scorer.calls == 0


def test_request_similarity_floor_drops_candidates() -> None:
    """Candidates under the request's min_similarity are never served."""
    decision = VerifiedDecision(_Table({"far": 0.99}), threshold=0.5, min_similarity=0.8)
    assert decide(decision, "q", _V, [_c("far", 0.6)]) == (None, 0.0)


def test_threshold_decision_is_top1_cosine() -> None:
    """The cosine baseline serves the nearest candidate at or above its threshold."""
    assert decide(ThresholdDecision(0.9), "q", _V, [_c("a", 0.91)])[0] is not None
    assert decide(ThresholdDecision(0.9), "q", _V, [_c("a", 0.89)])[0] is None


def test_operating_points_round_trip_and_fall_back(tmp_path: Path) -> None:
    """The tenants file round-trips; an unknown tenant gets the default point."""
    points = OperatingPoints(
        default=OperatingPoint(threshold=0.8, target_precision=0.9),
        tenants={"bank": OperatingPoint(threshold=0.95, target_precision=0.99)},
    )
    path = tmp_path / "cache-tenants.yaml"
    points.dump(path)
    loaded = OperatingPoints.load(path)
    assert loaded == points
    decisions = TenantDecisions(_Table({"x": 0.9}), loaded)
    assert decide(decisions.for_tenant("bank"), "q", _V, [_c("x", 0.9)])[0] is None
    assert decide(decisions.for_tenant("shop"), "q", _V, [_c("x", 0.9)])[0] is not None


def test_the_service_refuses_a_point_calibrated_for_another_model(tmp_path: Path) -> None:
    """A threshold belongs to one model's scale: a mismatched tenants file stops the start."""
    from semnexus_cache_lookup.__main__ import load_decisions  # noqa: PLC0415
    from semnexus_cache_lookup.config import CacheSettings  # noqa: PLC0415
    from semnexus_cache_lookup.errors import CacheLookupMisconfigured  # noqa: PLC0415
    from semnexus_cache_lookup.verifier import DEFAULT_MODEL  # noqa: PLC0415

    path = tmp_path / "cache-tenants.yaml"
    OperatingPoints(
        default=OperatingPoint(threshold=0.8, target_precision=0.9, model=DEFAULT_MODEL),
        tenants={"bank": OperatingPoint(threshold=0.9, target_precision=0.95, model="other-v9")},
    ).dump(path)
    with pytest.raises(CacheLookupMisconfigured, match="other-v9"):
        load_decisions(CacheSettings(operating_points=path))
    OperatingPoints(
        default=OperatingPoint(threshold=0.8, target_precision=0.9, model=DEFAULT_MODEL)
    ).dump(path)
    assert load_decisions(CacheSettings(operating_points=path)).scorer is not None


class _FastTable(_Table):
    """A stack stand-in: pairs whose cheap score reaches their fast threshold score 1."""

    def __init__(self, table: dict[str, float], cheap: dict[str, float]) -> None:
        super().__init__(table)
        self.cheap = cheap
        self.fast_calls: list[list[float]] = []

    def score_pairs_fast(
        self,
        a_texts: Sequence[str],
        a_vectors: npt.NDArray[np.float32],
        b_texts: Sequence[str],
        b_vectors: npt.NDArray[np.float32],
        fast_at: Sequence[float],
    ) -> npt.NDArray[np.float64]:
        self.fast_calls.append(list(fast_at))
        full = self.score_pairs(a_texts, a_vectors, b_texts, b_vectors)
        sure = np.array([self.cheap[t] for t in b_texts]) >= np.asarray(fast_at)
        return np.where(sure, 1.0, full)


def test_a_tenants_fast_threshold_reaches_the_scorer() -> None:
    """The tenant's fast threshold is handed to a fast-path scorer; without one it is not."""
    scorer = _FastTable({"near": 0.5}, cheap={"near": 0.9})
    points = OperatingPoints(
        default=OperatingPoint(threshold=0.8, target_precision=0.85),
        tenants={"fast": OperatingPoint(threshold=0.8, target_precision=0.85, fast_threshold=0.85)},
    )
    decisions = TenantDecisions(scorer, points)
    chosen, score = decide(decisions.for_tenant("fast"), "q", _V, [_c("near", 0.9)])
    assert (chosen is not None, score) == (True, 1.0)
    assert scorer.fast_calls == [[0.85]]
    # The request's own floor keeps the tenant's fast path.
    assert decisions.for_tenant("fast", 0.7).fast_threshold == 0.85
    # A tenant without a fast threshold: the plain scorer, and the full score decides.
    assert decide(decisions.for_tenant("other"), "q", _V, [_c("near", 0.9)]) == (None, 0.5)
    assert scorer.fast_calls == [[0.85]]


def test_the_service_refuses_a_fast_threshold_its_verifier_cannot_use(tmp_path: Path) -> None:
    """Only a stack has a cheap member to be sure with; the MLP alone is refused."""
    from semnexus_cache_lookup.__main__ import load_decisions  # noqa: PLC0415
    from semnexus_cache_lookup.config import CacheSettings  # noqa: PLC0415
    from semnexus_cache_lookup.errors import CacheLookupMisconfigured  # noqa: PLC0415
    from semnexus_cache_lookup.verifier import MLP_MODEL  # noqa: PLC0415

    path = tmp_path / "cache-tenants.yaml"
    point = OperatingPoint(threshold=0.8, target_precision=0.9, fast_threshold=0.9, model=MLP_MODEL)
    OperatingPoints(default=point).dump(path)
    settings = CacheSettings(operating_points=path, verifier_model=MLP_MODEL)
    with pytest.raises(CacheLookupMisconfigured, match="fast_threshold"):
        load_decisions(settings)


def test_the_shipped_points_give_the_stack_a_fast_path() -> None:
    """infra/cache-tenants.yaml loads in the service, every point with its fast threshold."""
    from semnexus_cache_lookup.__main__ import load_decisions  # noqa: PLC0415
    from semnexus_cache_lookup.config import CacheSettings  # noqa: PLC0415

    decisions = load_decisions(CacheSettings())
    assert isinstance(decisions, TenantDecisions)
    for tenant in ("default-tenant", "demo"):
        decision = decisions.for_tenant(tenant)
        assert isinstance(decision, VerifiedDecision)
        assert decision.fast_threshold is not None
        assert decision.threshold < decision.fast_threshold < 1.0
