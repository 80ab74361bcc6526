"""The learned pair verifier: is a cached question the same question as the query?

Input: the two texts and their frozen all-MiniLM-L6-v2 vectors (already computed:
the query's for the search, the candidate's stored in the vector store). Output:
a probability. Nothing here embeds text or touches a model hub.

Features (:func:`pair_features`), symmetric in the two sides:

- ``u*v`` and ``|u-v|`` (384 each): where the embeddings agree and disagree;
- cosine similarity;
- lexical guards (:func:`guards`): number mismatch, negation mismatch,
  capitalised-name mismatch, question-word mismatch, token and content-token
  Jaccard, length ratio, unmatched content words;
- the words only one side has, hashed into :data:`HASH_BUCKETS` buckets, so the
  model learns which differences are harmless ("some", "good") and which change
  the question ("ten", "without").

A one-hidden-layer MLP (weights in ``models/<name>.npz``, metadata beside it in
``<name>.json``) maps them to a probability; inference is plain numpy, under a
millisecond for five candidates. ``semnexus cache train`` reproduces the file.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from semnexus_cache_lookup.crossencoder import CrossEncoder
    from semnexus_cache_lookup.stacking import StackedScorer

Vector = npt.NDArray[np.float32]
Matrix = npt.NDArray[np.float32]

MLP_MODEL = "qqp-minilm-verifier-v1"
CROSS_ENCODER_MODEL = "qqp-minilm-cross-v1"
STACK_MODEL = "qqp-minilm-stack-v1"
# What the service and the CLI load unless told otherwise.
DEFAULT_MODEL = STACK_MODEL
MODELS_DIR = Path(__file__).parent / "models"
HASH_BUCKETS = 1024
GUARD_NAMES = (
    "cosine",
    "number_mismatch",
    "number_one_side",
    "negation_mismatch",
    "name_mismatch",
    "question_word_mismatch",
    "first_word_mismatch",
    "token_jaccard",
    "content_jaccard",
    "length_ratio",
    "unmatched_content",
    "unmatched_content_max",
    "identical",
)

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_CAPITALISED = re.compile(r"(?<![.?!]\s)(?<!^)\b[A-Z][a-zA-Z0-9]+")
_NEGATIONS = frozenset(
    {
        "not",
        "no",
        "never",
        "without",
        "nor",
        "none",
        "nothing",
        "cannot",
        "cant",
        "dont",
        "doesnt",
        "didnt",
        "isnt",
        "arent",
        "wasnt",
        "werent",
        "wont",
        "shouldnt",
        "couldnt",
        "wouldnt",
        "hasnt",
        "havent",
        "against",
        "non",
        "anti",
    }
)
_QUESTION_WORDS = frozenset(
    {"what", "why", "how", "who", "whom", "whose", "when", "where", "which"}
)
_STOPWORDS = frozenset(
    {
        "a",
        "an",
        "the",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "do",
        "does",
        "did",
        "i",
        "me",
        "my",
        "you",
        "your",
        "we",
        "our",
        "it",
        "its",
        "to",
        "of",
        "in",
        "on",
        "at",
        "for",
        "with",
        "and",
        "or",
        "can",
        "could",
        "should",
        "would",
        "will",
        "shall",
        "may",
        "might",
        "some",
        "any",
        "that",
        "this",
        "these",
        "those",
        "there",
        "from",
        "by",
        "as",
        "about",
        "into",
        "if",
        "so",
        "get",
        "one",
        "s",
        "am",
        "has",
        "have",
        "had",
        "they",
        "them",
        "their",
        "he",
        "she",
        "his",
        "her",
        "best",
        "good",
        "ways",
        "way",
        "much",
        "many",
    }
)


def tokens(text: str) -> list[str]:
    """Lower-case word tokens with apostrophes folded ("don't" → "dont")."""
    return [t.replace("'", "") for t in _TOKEN.findall(text.lower())]


def _numbers(text: str) -> frozenset[str]:
    return frozenset(n.replace(",", "") for n in _NUMBER.findall(text))


def _names(text: str) -> frozenset[str]:
    return frozenset(m.lower() for m in _CAPITALISED.findall(text.strip()))


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    union = a | b
    return len(a & b) / len(union) if union else 1.0


def guards(a: str, b: str) -> list[float]:
    """The lexical guard features of a pair, in :data:`GUARD_NAMES` order (cosine excluded)."""
    ta, tb = tokens(a), tokens(b)
    sa, sb = frozenset(ta), frozenset(tb)
    ca, cb = sa - _STOPWORDS, sb - _STOPWORDS
    na, nb = _numbers(a), _numbers(b)
    names_a, names_b = _names(a), _names(b)
    # A name only counts as missing when the other side lacks it even lower-cased.
    name_mismatch = bool((names_a - sb) or (names_b - sa))
    neg_a = sum(t in _NEGATIONS or (t.endswith("nt") and t[:-2] in {"do", "is", "ca"}) for t in ta)
    neg_b = sum(t in _NEGATIONS or (t.endswith("nt") and t[:-2] in {"do", "is", "ca"}) for t in tb)
    qa, qb = sa & _QUESTION_WORDS, sb & _QUESTION_WORDS
    first_a = next((t for t in ta if t in _QUESTION_WORDS), "")
    first_b = next((t for t in tb if t in _QUESTION_WORDS), "")
    unmatched = len(ca - cb) + len(cb - ca)
    longer = max(len(ta), len(tb))
    return [
        float(na != nb),
        float(bool(na) != bool(nb)),
        float((neg_a > 0) != (neg_b > 0)),
        float(name_mismatch),
        float(qa != qb),
        float(first_a != first_b),
        _jaccard(sa, sb),
        _jaccard(ca, cb),
        min(len(ta), len(tb)) / longer if longer else 1.0,
        min(unmatched, 10) / 10.0,
        min(max(len(ca - cb), len(cb - ca)), 10) / 10.0,
        float(" ".join(ta) == " ".join(tb)),
    ]


def _bucket(word: str) -> int:
    return zlib.crc32(word.encode("utf-8")) % HASH_BUCKETS


def difference_buckets(a: str, b: str) -> list[int]:
    """Hash buckets of the words only one side has (symmetric difference)."""
    sa, sb = frozenset(tokens(a)), frozenset(tokens(b))
    return sorted({_bucket(w) for w in sa ^ sb})


def pair_features(
    a_texts: Sequence[str], a_vectors: Matrix, b_texts: Sequence[str], b_vectors: Matrix
) -> Matrix:
    """One feature row per pair (a_i, b_i); vectors are L2-normalised rows."""
    u = np.asarray(a_vectors, dtype=np.float32)
    v = np.asarray(b_vectors, dtype=np.float32)
    n = len(a_texts)
    dims = u.shape[1]
    width = 2 * dims + len(GUARD_NAMES) + HASH_BUCKETS
    out = np.zeros((n, width), dtype=np.float32)
    out[:, :dims] = u * v
    out[:, dims : 2 * dims] = np.abs(u - v)
    out[:, 2 * dims] = np.einsum("ij,ij->i", u, v)
    base = 2 * dims + 1
    hashed = 2 * dims + len(GUARD_NAMES)
    for i, (a, b) in enumerate(zip(a_texts, b_texts, strict=True)):
        out[i, base:hashed] = guards(a, b)
        out[i, [hashed + k for k in difference_buckets(a, b)]] = 1.0
    return out


@dataclass(frozen=True, slots=True)
class VerifierWeights:
    """The MLP: standardise, dense+ReLU, dense+sigmoid."""

    mean: Matrix
    scale: Matrix
    w1: Matrix
    b1: Matrix
    w2: Matrix
    b2: Matrix

    def probabilities(self, features: Matrix) -> npt.NDArray[np.float64]:
        """Forward pass in float32, probabilities in float64."""
        x = (features - self.mean) / self.scale
        hidden = np.maximum(x @ self.w1 + self.b1, 0.0)
        logits = (hidden @ self.w2 + self.b2).astype(np.float64).ravel()
        return 1.0 / (1.0 + np.exp(-logits))

    def save(self, path: Path) -> None:
        """Write the weights as a plain ``.npz`` (no pickle)."""
        np.savez_compressed(
            path, mean=self.mean, scale=self.scale, w1=self.w1, b1=self.b1, w2=self.w2, b2=self.b2
        )

    @classmethod
    def load(cls, path: Path) -> VerifierWeights:
        """Read weights written by :meth:`save`, refusing pickled objects."""
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k], dtype=np.float32) for k in z.files}
        return cls(**arrays)


class Verifier:
    """Scores (query, cached text) pairs; satisfies ``decision.PairScorer``."""

    def __init__(self, weights: VerifierWeights, metadata: dict[str, Any]) -> None:
        self.weights = weights
        self.metadata = metadata
        expected = int(metadata["features"]) if "features" in metadata else weights.w1.shape[0]
        if weights.w1.shape[0] != expected:
            raise ValueError(
                f"verifier expects {expected} features, weights have {weights.w1.shape[0]}"
            )

    @property
    def name(self) -> str:
        """The model's name (its file stem)."""
        return str(self.metadata.get("name", MLP_MODEL))

    @classmethod
    def load(cls, name: str = MLP_MODEL, directory: Path = MODELS_DIR) -> Verifier:
        """Load ``<directory>/<name>.npz`` and its ``.json`` metadata."""
        metadata = json.loads((directory / f"{name}.json").read_text(encoding="utf-8"))
        return cls(VerifierWeights.load(directory / f"{name}.npz"), metadata)

    def score(
        self, query: str, query_vector: Vector, texts: Sequence[str], vectors: Matrix
    ) -> npt.NDArray[np.float64]:
        """Probability per candidate that it asks the same question as ``query``."""
        if not texts:
            return np.zeros(0, dtype=np.float64)
        q = np.broadcast_to(np.asarray(query_vector, dtype=np.float32), vectors.shape)
        return self.score_pairs([query] * len(texts), q, texts, vectors)

    def score_pairs(
        self, a_texts: Sequence[str], a_vectors: Matrix, b_texts: Sequence[str], b_vectors: Matrix
    ) -> npt.NDArray[np.float64]:
        """Probability per pair (batch form, used by evaluation and calibration)."""
        return self.weights.probabilities(pair_features(a_texts, a_vectors, b_texts, b_vectors))


def load_scorer(
    name: str = DEFAULT_MODEL, directory: Path = MODELS_DIR
) -> Verifier | CrossEncoder | StackedScorer:
    """The named verifier: a cross-encoder (``.onnx``), the MLP (``.npz``) or a stack (JSON)."""
    from semnexus_cache_lookup.crossencoder import GRAPH_SUFFIX, CrossEncoder  # noqa: PLC0415
    from semnexus_cache_lookup.stacking import StackedScorer  # noqa: PLC0415

    if (directory / f"{name}{GRAPH_SUFFIX}").is_file():
        return CrossEncoder.load(name, directory)
    if (directory / f"{name}.npz").is_file():
        return Verifier.load(name, directory)
    described = directory / f"{name}.json"
    if described.is_file() and json.loads(described.read_text(encoding="utf-8")).get("kind") == (
        "stack"
    ):
        return StackedScorer.load(name, directory)
    raise FileNotFoundError(f"no verifier model {name!r} in {directory} (.onnx, .npz or stack)")
