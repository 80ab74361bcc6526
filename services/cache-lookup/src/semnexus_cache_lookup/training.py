"""Training the pair verifier (``semnexus cache train``), reproducibly.

Recipe: split the labelled pairs by question cluster (70 % train, 15 % val,
15 % test; :func:`~semnexus_cache_lookup.evaluation.split_by_cluster`), embed
every question with the frozen all-MiniLM-L6-v2 (cached on disk), build
:func:`~semnexus_cache_lookup.verifier.pair_features`, fit a one-hidden-layer
MLP with torch on train (fixed seed, one thread, deterministic algorithms),
keep the epoch with the best recall at precision 0.90 on val, calibrate the
operating points on val, and measure once on test. Writes
``<out>/<name>.npz`` (weights, no pickle) and ``<out>/<name>.json`` (recipe,
operating points, val and test figures).

torch is imported only here: serving needs numpy alone.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from semnexus_cache_lookup.embedder import Embedder
from semnexus_cache_lookup.evaluation import (
    LabelledPair,
    calibrate,
    precision_at_recall,
    recall_at_precision,
    split_by_cluster,
)
from semnexus_cache_lookup.verifier import (
    DEFAULT_MODEL,
    GUARD_NAMES,
    HASH_BUCKETS,
    Verifier,
    VerifierWeights,
    pair_features,
)

Matrix = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Recipe:
    """Everything that determines the trained weights besides the data."""

    seed: int = 20261204
    hidden: int = 128
    epochs: int = 6
    batch_size: int = 256
    learning_rate: float = 5e-4
    weight_decay: float = 1e-2
    dropout: float = 0.5
    split_seed: str = "semnexus"
    train_fraction: float = 0.7
    val_fraction: float = 0.15
    # Operating points are calibrated on val with a one-sided 95 % Wilson bound.
    confidence_z: float = 1.645


def featurise(pairs: list[LabelledPair], embedder: Embedder) -> tuple[Matrix, npt.NDArray[np.int8]]:
    """Feature rows and labels for ``pairs`` (query side = ``text_b``)."""
    a = embedder.embed([p.text_b for p in pairs])
    b = embedder.embed([p.text_a for p in pairs])
    features = pair_features([p.text_b for p in pairs], a, [p.text_a for p in pairs], b)
    return features, np.array([p.label for p in pairs], dtype=np.int8)


def _fit(
    recipe: Recipe,
    train: tuple[Matrix, npt.NDArray[np.int8]],
    val: tuple[Matrix, npt.NDArray[np.int8]],
    log: list[dict[str, Any]],
) -> VerifierWeights:
    import torch  # noqa: PLC0415  (training only; serving is numpy)

    torch.manual_seed(recipe.seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    x_train, y_train = train
    mean = x_train.mean(axis=0, keepdims=True)
    scale = x_train.std(axis=0, keepdims=True)
    scale = np.where(scale < 1e-3, 1.0, scale).astype(np.float32)
    # Hashed word indicators stay 0/1: standardising a rare bucket would blow it up.
    hashed = x_train.shape[1] - HASH_BUCKETS
    mean[:, hashed:] = 0.0
    scale[:, hashed:] = 1.0
    xt = torch.from_numpy((x_train - mean) / scale)
    yt = torch.from_numpy(y_train.astype(np.float32))
    first = torch.nn.Linear(xt.shape[1], recipe.hidden)
    second = torch.nn.Linear(recipe.hidden, 1)
    model = torch.nn.Sequential(first, torch.nn.ReLU(), torch.nn.Dropout(recipe.dropout), second)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    generator = torch.Generator().manual_seed(recipe.seed)
    best: tuple[float, VerifierWeights] | None = None
    for epoch in range(recipe.epochs):
        model.train()
        order = torch.randperm(len(xt), generator=generator)
        total = 0.0
        for start in range(0, len(xt), recipe.batch_size):
            idx = order[start : start + recipe.batch_size]
            optimiser.zero_grad()
            loss = loss_fn(model(xt[idx]).squeeze(1), yt[idx])
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
        weights = VerifierWeights(
            mean=mean.astype(np.float32),
            scale=scale,
            w1=first.weight.detach().numpy().T.copy(),
            b1=first.bias.detach().numpy().copy(),
            w2=second.weight.detach().numpy().T.copy(),
            b2=second.bias.detach().numpy().copy(),
        )
        model.eval()
        scores = weights.probabilities(val[0])
        # Precision at recall 0.5 picks the epoch: the top of the curve is too noisy.
        at_half = precision_at_recall(scores, val[1], 0.5)
        log.append(
            {
                "epoch": epoch + 1,
                "train_loss": round(total / len(xt), 4),
                "val_precision_at_r50": round(at_half, 4),
                "val_recall_at_p90": round(recall_at_precision(scores, val[1], 0.9).recall, 4),
            }
        )
        if best is None or at_half > best[0]:
            best = (at_half, weights)
    assert best is not None
    return best[1]


def _figures(
    scores: npt.NDArray[np.float64], labels: npt.NDArray[np.int8], thresholds: dict[str, float]
) -> dict[str, Any]:
    from semnexus_cache_lookup.evaluation import measure  # noqa: PLC0415

    out: dict[str, Any] = {"pairs": len(labels), "positives": int(labels.sum())}
    for name, threshold in thresholds.items():
        got = measure(scores, labels, threshold)
        out[f"at_{name}"] = {
            "threshold": round(threshold, 6),
            "precision": round(got.precision, 4),
            "recall": round(got.recall, 4),
            "hits": got.hits,
        }
    for target in (0.90, 0.95):
        best = recall_at_precision(scores, labels, target)
        out[f"oracle_recall_at_p{int(target * 100)}"] = round(best.recall, 4)
    for recall in (0.3, 0.5):
        out[f"precision_at_r{int(recall * 100)}"] = round(
            precision_at_recall(scores, labels, recall), 4
        )
    return out


def train(
    pairs: list[LabelledPair],
    embedder: Embedder,
    out_dir: Path,
    *,
    name: str = DEFAULT_MODEL,
    recipe: Recipe | None = None,
    source: str = "",
) -> dict[str, Any]:
    """Train, calibrate and measure; write the model files; return the metadata."""
    recipe = recipe or Recipe()
    started = time.perf_counter()
    split = split_by_cluster(pairs, (recipe.train_fraction, recipe.val_fraction), recipe.split_seed)
    train_set = featurise(split.train, embedder)
    val_set = featurise(split.val, embedder)
    test_set = featurise(split.test, embedder)
    log: list[dict[str, Any]] = []
    weights = _fit(recipe, train_set, val_set, log)
    val_scores = weights.probabilities(val_set[0])
    # An unreachable target comes out as threshold 1.0: only identical text is served.
    points = {
        f"p{round(p * 100)}": min(
            1.0, calibrate(val_scores, val_set[1], p, recipe.confidence_z).threshold
        )
        for p in (0.80, 0.85, 0.90, 0.95)
    }
    test_scores = weights.probabilities(test_set[0])
    cosine = 2 * 384  # the cosine column of pair_features
    baseline = {
        part: _figures(data[0][:, cosine].astype(np.float64), data[1], {})
        for part, data in (("val", val_set), ("test", test_set))
    }
    metadata: dict[str, Any] = {
        "name": name,
        "kind": "mlp-1-hidden on frozen all-MiniLM-L6-v2 pair features",
        "features": int(weights.w1.shape[0]),
        "feature_layout": {
            "u*v": 384,
            "|u-v|": 384,
            "guards": list(GUARD_NAMES),
            "difference_hash_buckets": HASH_BUCKETS,
        },
        "recipe": asdict(recipe),
        "data": {
            "source": source,
            "sha256": hashlib.sha256(
                "\n".join(f"{p.text_a}\t{p.text_b}\t{p.label}" for p in pairs).encode()
            ).hexdigest(),
            "train": len(split.train),
            "val": len(split.val),
            "test": len(split.test),
        },
        "operating_points": {k: round(v, 6) for k, v in points.items()},
        "val": _figures(val_scores, val_set[1], points),
        "test": _figures(test_scores, test_set[1], points),
        "cosine_baseline": baseline,
        "epochs": log,
        "train_seconds": round(time.perf_counter() - started, 1),
        "command": "semnexus cache train --pairs ../shared/data/qqp_dev.jsonl",
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    weights.save(out_dir / f"{name}.npz")
    (out_dir / f"{name}.json").write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    Verifier.load(name, out_dir)  # refuse to leave a model that does not load
    return metadata
