"""The default verifier: a cheap gate, then the cross-encoder, combined by one logistic layer.

Three signals see different things: cosine (what the bi-encoder thinks), the
MLP verifier (:mod:`~semnexus_cache_lookup.verifier`: embedding products plus
lexical guards for numbers, negations, names, question words) and the
cross-encoder (:mod:`~semnexus_cache_lookup.crossencoder`: both texts read
together). Measured on the QQP test split, each alone reaches about the same
precision at recall 0.5 (0.84); combined they do better than any one (see
BENCHMARKS.md). :class:`StackedScorer` computes

    p = sigmoid(w_ce * logit(cross-encoder) + w_cos * cosine + w_mlp * logit(mlp) + b)

with the weights fit by logistic regression on the validation split (the same
split the members picked their epochs on; the test split stays unseen).

The cascade: the MLP and cosine cost microseconds, the cross-encoder a
transformer pass. A pair whose MLP probability is under ``gate`` scores 0
without the cross-encoder; ``gate`` is chosen on val so that it drops at most
``gate_recall_loss`` of the pairs the stack would serve at its strictest
calibrated point. Most non-duplicates (the bulk of a busy cache's near
neighbours) stop there.

The stack is a JSON file (``models/<name>.json``, kind ``stack``) naming its
two members; ``semnexus cache train --kind stack`` fits it from the committed
members in seconds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from semnexus_cache_lookup.crossencoder import CrossEncoder
from semnexus_cache_lookup.verifier import Verifier

Matrix = npt.NDArray[np.float32]
Scores = npt.NDArray[np.float64]

_EPS = 1e-6


def logit(p: Scores) -> Scores:
    """log(p / (1 - p)), clipped away from 0 and 1."""
    q = np.clip(p, _EPS, 1 - _EPS)
    return np.asarray(np.log(q / (1 - q)), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class StackWeights:
    """The logistic layer over (cross-encoder logit, cosine, MLP logit) and the gate."""

    cross: float
    cosine: float
    mlp: float
    bias: float
    gate: float

    def combine(self, cross_logit: Scores, cosine: Scores, mlp: Scores) -> Scores:
        """Probabilities from the three signals (no gating)."""
        z = self.cross * cross_logit + self.cosine * cosine + self.mlp * logit(mlp) + self.bias
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


def fit_logistic(features: npt.NDArray[np.float64], labels: npt.NDArray[np.int8]) -> Scores:
    """Weights then bias of a logistic regression (Newton's method, a little L2)."""
    x = np.hstack([features, np.ones((len(features), 1))])
    y = labels.astype(np.float64)
    w = np.zeros(x.shape[1])
    ridge = 1e-3 * np.eye(x.shape[1])
    ridge[-1, -1] = 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        gradient = x.T @ (p - y) + ridge @ w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + ridge
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


class StackedScorer:
    """Probability that two questions are the same: gate, cross-encoder, logistic layer."""

    def __init__(
        self,
        mlp: Verifier,
        cross: CrossEncoder,
        weights: StackWeights,
        metadata: dict[str, Any],
    ) -> None:
        self.mlp = mlp
        self.cross = cross
        self.weights = weights
        self.metadata = metadata

    @property
    def name(self) -> str:
        """The stack's name (its file stem)."""
        return str(self.metadata["name"])

    @classmethod
    def load(cls, name: str, directory: Path) -> StackedScorer:
        """Load ``<directory>/<name>.json`` and the two members it names."""
        metadata = json.loads((directory / f"{name}.json").read_text(encoding="utf-8"))
        members = metadata["members"]
        return cls(
            Verifier.load(members["mlp"], directory),
            CrossEncoder.load(members["cross_encoder"], directory),
            StackWeights(**metadata["weights"]),
            metadata,
        )

    def score_pairs(
        self, a_texts: Sequence[str], a_vectors: Matrix, b_texts: Sequence[str], b_vectors: Matrix
    ) -> Scores:
        """One probability per pair; gated-out pairs score 0 without the cross-encoder."""
        return self.score_pairs_fast(
            a_texts, a_vectors, b_texts, b_vectors, [math.inf] * len(a_texts)
        )

    def score_pairs_fast(
        self,
        a_texts: Sequence[str],
        a_vectors: Matrix,
        b_texts: Sequence[str],
        b_vectors: Matrix,
        fast_at: Sequence[float],
    ) -> Scores:
        """As :meth:`score_pairs`; a pair the MLP rates ``>= fast_at[i]`` scores 1 at once.

        The operating point's fast threshold is calibrated so that such pairs keep
        the tenant's precision; half the hits at the default point skip the
        cross-encoder, its largest cost (BENCHMARKS.md).
        """
        if not a_texts:
            return np.zeros(0, dtype=np.float64)
        mlp = self.mlp.score_pairs(a_texts, a_vectors, b_texts, b_vectors)
        cosine = np.einsum(
            "ij,ij->i", np.asarray(a_vectors, np.float64), np.asarray(b_vectors, np.float64)
        )
        out = np.zeros(len(a_texts), dtype=np.float64)
        sure = mlp >= np.asarray(fast_at, dtype=np.float64)
        out[sure] = 1.0
        passed = [int(i) for i in np.flatnonzero((mlp >= self.weights.gate) & ~sure)]
        if passed:
            cross = self.cross.logits([a_texts[i] for i in passed], [b_texts[i] for i in passed])
            out[passed] = self.weights.combine(cross, cosine[passed], mlp[passed])
        return out
