"""``semnexus cache eval`` / ``calibrate``: their last line is one JSON object.

The dataset embeddings come from a pre-filled embedding cache, so the real
embedding model is never loaded here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from semnexus_cache_lookup.cli_eval import SERVICE_EMBEDDER, app
from semnexus_cache_lookup.decision import OperatingPoints
from semnexus_cache_lookup.evaluation import CachedEmbedder

_PAIRS = [
    ("How do I learn Python?", "How can I learn Python?", 1),
    ("How do I learn Java?", "What is the capital of France?", 0),
    ("Why is the sky blue?", "Why is the sky blue?", 1),
]


def _no_model() -> CachedEmbedder:
    raise AssertionError("the embedding model must not load: every text is cached")


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """An embedding cache holding a deterministic vector for every text used below."""
    texts = sorted({t for a, b, _ in _PAIRS for t in (a, b)})
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(len(texts), 384)).astype(np.float32)
    vectors[texts.index("How can I learn Python?")] = vectors[texts.index("How do I learn Python?")]
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    directory = tmp_path / "embeddings"
    # eval and calibrate embed with the service's runtime, which keeps its own shards.
    CachedEmbedder(_no_model, directory / SERVICE_EMBEDDER.value).remember(texts, vectors)
    return directory


def test_eval_pairs_ends_with_one_json_line(tmp_path: Path, cache_dir: Path) -> None:
    """--pairs prints figures, then a JSON line with precision, recall, hits and pairs."""
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(json.dumps({"text_a": a, "text_b": b, "label": y}) + "\n" for a, b, y in _PAIRS)
    )
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--pairs",
            str(pairs),
            "--cache-dir",
            str(cache_dir),
            "--tenants-file",
            str(tmp_path / "no.yaml"),
        ],
    )
    assert result.exit_code == 0, result.output
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(last) == {"precision", "recall", "hits", "pairs"}
    assert last["pairs"] == 3
    assert last["hits"] >= 1  # the identical pair is always served


def test_eval_retrieval_ends_with_one_json_line(tmp_path: Path, cache_dir: Path) -> None:
    """--retrieval prints both countings, then a JSON line with correct, wrong and miss."""
    records = tmp_path / "mock.json"
    records.write_text(json.dumps([{"origin": a, "similar": b} for a, b, _ in _PAIRS]))
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--retrieval",
            str(records),
            "--cache-dir",
            str(cache_dir),
            "--decision",
            "cosine",
        ],
    )
    assert result.exit_code == 0, result.output
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"correct", "wrong", "miss"} <= set(last)
    assert last["correct"] + last["wrong"] + last["miss"] == 3


def test_calibrate_writes_the_tenant_point(tmp_path: Path, cache_dir: Path) -> None:
    """calibrate writes a threshold for the tenant and keeps the default point."""
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(json.dumps({"text_a": a, "text_b": b, "label": y}) + "\n" for a, b, y in _PAIRS)
    )
    tenants = tmp_path / "cache-tenants.yaml"
    result = CliRunner().invoke(
        app,
        [
            "calibrate",
            "--pairs",
            str(pairs),
            "--precision",
            "0.9",
            "--tenant",
            "acme",
            "--confidence-z",
            "0",
            "--cache-dir",
            str(cache_dir),
            "--tenants-file",
            str(tenants),
        ],
    )
    assert result.exit_code == 0, result.output
    points = OperatingPoints.load(tenants)
    assert points.tenants["acme"].target_precision == 0.9
    assert points.tenants["acme"].measured_precision == 1.0
    assert points.default.threshold == points.for_tenant("other").threshold
