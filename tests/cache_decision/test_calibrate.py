"""Choosing a threshold for a target precision, and splitting data by question cluster."""

from __future__ import annotations

import numpy as np

from semnexus_cache_lookup.evaluation import (
    LabelledPair,
    calibrate,
    calibrate_fast_path,
    implied_pairs,
    measure,
    split_by_cluster,
    with_fast_path,
)


def _synthetic(n: int = 4000, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.4).astype(np.int8)
    scores = np.clip(rng.normal(0.35 + 0.35 * labels, 0.15), 0.0, 1.0)
    return scores, labels


def test_calibrate_reaches_the_target_with_the_most_recall() -> None:
    """The chosen threshold reaches the precision; any lower threshold does not."""
    scores, labels = _synthetic()
    got = calibrate(scores, labels, 0.9)
    assert got.precision >= 0.9
    lower = np.sort(np.unique(scores[scores < got.threshold]))[-50:]
    assert all(measure(scores, labels, float(t)).precision < 0.9 for t in lower)


def test_wilson_bound_is_more_conservative() -> None:
    """Calibrating on the lower confidence bound gives a higher threshold, less recall."""
    scores, labels = _synthetic()
    point = calibrate(scores, labels, 0.9)
    bounded = calibrate(scores, labels, 0.9, confidence_z=1.645)
    assert bounded.threshold >= point.threshold
    assert bounded.precision >= 0.9
    assert bounded.recall <= point.recall


def test_unreachable_target_serves_nothing() -> None:
    """When no threshold reaches the precision, the point serves no pair at all."""
    scores, labels = _synthetic()
    got = calibrate(scores, labels, 1.01)
    assert got.hits == 0


def test_the_fast_path_keeps_the_target_and_most_of_the_recall() -> None:
    """A cheap, noisier score vouches for its surest pairs; both thresholds keep the promises."""
    scores, labels = _synthetic()
    rng = np.random.default_rng(7)
    cheap = np.clip(scores + rng.normal(0.0, 0.08, len(scores)), 0.0, 1.0)
    alone = calibrate(scores, labels, 0.85)
    fast, got = calibrate_fast_path(scores, cheap, labels, 0.85, max_recall_cost=0.02)
    assert fast is not None
    assert got.precision >= 0.85
    assert got.recall >= alone.recall - 0.02
    decided = with_fast_path(scores, cheap, fast)
    assert measure(decided, labels, got.threshold) == got
    # The lowest fast threshold that keeps the recall: one step lower costs more.
    lower = calibrate(with_fast_path(scores, cheap, fast - 0.01), labels, 0.85)
    assert fast - 0.01 < calibrate(cheap, labels, 0.85).threshold or (
        lower.recall < alone.recall - 0.02
    )


def test_no_fast_path_when_the_cheap_score_cannot_keep_the_target() -> None:
    """A cheap score that never reaches the precision gets no fast threshold."""
    scores, labels = _synthetic()
    noise = np.random.default_rng(3).random(len(scores))
    fast, got = calibrate_fast_path(scores, noise, labels, 0.85, confidence_z=1.645)
    assert fast is None
    assert got == calibrate(scores, labels, 0.85, confidence_z=1.645)


def test_split_by_cluster_keeps_each_question_in_one_part() -> None:
    """No question appears in two parts, and the split does not depend on file order."""
    rng = np.random.default_rng(3)
    questions = [f"question {i}?" for i in range(600)]
    pairs = [
        LabelledPair(questions[a], questions[b], int(rng.random() < 0.5))
        for a, b in rng.integers(0, 600, size=(400, 2))
    ]
    split = split_by_cluster(pairs, (0.6, 0.2))
    seen = [
        {t for p in part for t in (p.text_a, p.text_b)}
        for part in (split.train, split.val, split.test)
    ]
    assert not (seen[0] & seen[1])
    assert not (seen[0] & seen[2])
    assert not (seen[1] & seen[2])
    assert len(split.train) + len(split.val) + len(split.test) == len(pairs)
    assert split.val
    assert split.test
    again = split_by_cluster(list(reversed(pairs)), (0.6, 0.2))
    assert set(again.test) == set(split.test)


def _implied(pairs: list[LabelledPair], per_question: int = 10) -> dict[frozenset[str], int]:
    return {frozenset((p.text_a, p.text_b)): p.label for p in implied_pairs(pairs, per_question)}


def test_implied_pairs_follow_transitivity() -> None:
    """A~B and B~C imply A~C; A~B and A≁D imply B≁D; nothing already labelled comes back."""
    pairs = [
        LabelledPair("a?", "b?", 1),
        LabelledPair("b?", "c?", 1),
        LabelledPair("a?", "d?", 0),
    ]
    assert _implied(pairs) == {
        frozenset(("a?", "c?")): 1,
        frozenset(("b?", "d?")): 0,
        frozenset(("c?", "d?")): 0,
    }


def test_contradicting_labels_imply_nothing() -> None:
    """A cluster holding a label-0 pair (noise in the labels) is not extended either way."""
    pairs = [
        LabelledPair("a?", "b?", 1),
        LabelledPair("b?", "c?", 1),
        LabelledPair("c?", "a?", 0),
        LabelledPair("a?", "d?", 0),
        LabelledPair("e?", "e?", 0),  # a question "unlike itself": a contradiction too
    ]
    assert _implied(pairs) == {}


def test_a_large_cluster_adds_a_bounded_number_of_pairs() -> None:
    """Twenty questions that all mean the same imply 190 pairs; the cap keeps per_question each."""
    hub = "hub?"
    pairs = [LabelledPair(hub, f"spoke {i}?", 1) for i in range(19)]
    got = implied_pairs(pairs, per_question=2)
    assert len(got) == 2 * 20
    assert all(p.label == 1 for p in got)
    assert len({frozenset((p.text_a, p.text_b)) for p in got}) == len(got)
    assert not {frozenset((p.text_a, p.text_b)) for p in got} & {
        frozenset((p.text_a, p.text_b)) for p in pairs
    }
    assert implied_pairs(list(pairs), per_question=2) == got  # the same draw every run
    assert len(implied_pairs(pairs, per_question=0)) == 0
