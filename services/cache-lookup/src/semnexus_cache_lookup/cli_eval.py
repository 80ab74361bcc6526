"""``semnexus cache eval | calibrate | train``: measure, tune and rebuild the hit decision.

- ``eval --pairs FILE.jsonl`` / ``eval --retrieval FILE.json``: run the
  service's hit-decision path (embedder → scoped store → decision) on labelled
  data; print the figures, then ONE line of JSON (see
  :mod:`semnexus_cache_lookup.evaluation` for both protocols).
- ``calibrate --pairs FILE --precision P [--tenant T]``: choose the verifier
  threshold that reaches precision P on the file's pairs and write it into the
  tenants file (``infra/cache-tenants.yaml``), as the default or for one tenant.
- ``train --pairs FILE``: rebuild the committed verifier model reproducibly.
- ``latency --retrieval FILE``: time the decision alone (embeddings given) on
  real top-5 candidate lists; prints p50/p99 in microseconds as JSON.

Dataset embeddings are memoised under ``--cache-dir`` (default
``.stack/cache/semnexus``, git-ignored) so only the first run pays for them.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console

from semnexus_cache_lookup.config import CacheSettings
from semnexus_cache_lookup.crossencoder import CrossEncoder
from semnexus_cache_lookup.decision import (
    HitDecision,
    OperatingPoint,
    OperatingPoints,
    ThresholdDecision,
    VerifiedDecision,
    decide,
)
from semnexus_cache_lookup.embedder import EmbedderKind
from semnexus_cache_lookup.evaluation import (
    CachedEmbedder,
    CandidateStore,
    LabelledPair,
    MemoryStore,
    MilvusCandidateStore,
    calibrate,
    calibrate_fast_path,
    evaluate_pairs,
    evaluate_retrieval,
    load_pairs,
    load_retrieval,
    measure,
    pair_scores,
    split_by_cluster,
)
from semnexus_cache_lookup.stacking import StackedScorer
from semnexus_cache_lookup.verifier import (
    CROSS_ENCODER_MODEL,
    DEFAULT_MODEL,
    MLP_MODEL,
    MODELS_DIR,
    STACK_MODEL,
    Verifier,
    load_scorer,
)

app = typer.Typer(
    help="Semantic-cache hit decision: evaluate, calibrate, train.", no_args_is_help=True
)
console = Console(stderr=True, soft_wrap=True)

DEFAULT_CACHE = Path(".stack/cache/semnexus")
# eval and calibrate embed as the service does by default; training uses torch's vectors.
SERVICE_EMBEDDER = CacheSettings().embedder
DEFAULT_TENANTS = Path("infra/cache-tenants.yaml")


class Part(StrEnum):
    """Which part of a split-by-cluster file to use."""

    ALL = "all"
    TRAIN = "train"
    VAL = "val"
    TEST = "test"


class StoreKind(StrEnum):
    """Which vector store the evaluation searches."""

    MEMORY = "memory"
    MILVUS_LITE = "milvus-lite"


class Kind(StrEnum):
    """Which decision to run."""

    VERIFIER = "verifier"
    COSINE = "cosine"


def _embedder(cache_dir: Path, kind: EmbedderKind = EmbedderKind.TORCH) -> CachedEmbedder:
    from semnexus_cache_lookup.embedder import open_embedder  # noqa: PLC0415

    # Each runtime keeps its own shards: torch's stay where they always were.
    folder = cache_dir if kind is EmbedderKind.TORCH else cache_dir / kind.value
    return CachedEmbedder(lambda: open_embedder(kind, threads=None), folder)


def _select(pairs: list[LabelledPair], part: Part) -> list[LabelledPair]:
    if part is Part.ALL:
        return pairs
    split = split_by_cluster(pairs)
    return {Part.TRAIN: split.train, Part.VAL: split.val, Part.TEST: split.test}[part]


def _points(
    tenants_file: Path, verifier: Verifier | CrossEncoder | StackedScorer
) -> OperatingPoints:
    if tenants_file.exists():
        return OperatingPoints.load(tenants_file)
    threshold = float(verifier.metadata["operating_points"]["p85"])
    return OperatingPoints(
        default=OperatingPoint(threshold=threshold, target_precision=0.85, model=verifier.name)
    )


@app.command("eval")
def evaluate(
    pairs: Path | None = typer.Option(None, "--pairs", help="labelled pairs, JSON lines"),
    retrieval: Path | None = typer.Option(None, "--retrieval", help="[{origin, similar}] JSON"),
    limit: int | None = typer.Option(None, "--limit", help="first N pairs/records only"),
    part: Part = typer.Option(Part.ALL, "--part", help="pairs: split-by-cluster part to use"),
    decision_kind: Kind = typer.Option(Kind.VERIFIER, "--decision"),
    threshold: float | None = typer.Option(None, help="override the operating point"),
    tenant: str = typer.Option("default", help="tenant whose operating point to use"),
    tenants_file: Path = typer.Option(DEFAULT_TENANTS, help="operating points file"),
    model: str = typer.Option(DEFAULT_MODEL, help="verifier model name in the models folder"),
    top_k: int = typer.Option(5, help="candidates the store returns per query"),
    cache_dir: Path = typer.Option(DEFAULT_CACHE, help="dataset embedding cache"),
    embedder_kind: EmbedderKind = typer.Option(
        SERVICE_EMBEDDER, "--embedder", help="runtime that embeds the dataset (the service's)"
    ),
    store_kind: StoreKind = typer.Option(
        StoreKind.MEMORY,
        "--store",
        help="memory (exact) or the service's Milvus adapter on Milvus Lite in a temp folder",
    ),
) -> None:
    """Run the hit decision on labelled data; the last line is one JSON object."""
    if (pairs is None) == (retrieval is None):
        raise typer.BadParameter("give exactly one of --pairs or --retrieval")
    decision: HitDecision
    if decision_kind is Kind.COSINE:
        point = threshold if threshold is not None else 0.9
        decision = ThresholdDecision(point)
        label = f"cosine ≥ {point:.4f}"
    else:
        verifier = load_scorer(model)
        # --threshold alone: that threshold, every nominee verified in full.
        fast: float | None = None
        if threshold is None:
            tenant_point = _points(tenants_file, verifier).for_tenant(tenant)
            point, fast = tenant_point.threshold, tenant_point.fast_threshold
        else:
            point = threshold
        decision = VerifiedDecision(verifier, point, fast_threshold=fast)
        label = f"verifier {verifier.name} p ≥ {point:.4f} (tenant {tenant})"
        if fast is not None:
            label += f", fast path MLP ≥ {fast:.4f}"
    label += f", {embedder_kind.value} embeddings"
    embedder = _embedder(cache_dir, embedder_kind)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        store: CandidateStore = MemoryStore()
        if store_kind is StoreKind.MILVUS_LITE:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            milvus = MilvusCandidateStore(str(folder / "eval.db"))
            stack.callback(milvus.close)
            store = milvus
        _run_eval(pairs, retrieval, limit, part, label, embedder, store, decision, top_k, started)


def _run_eval(
    pairs: Path | None,
    retrieval: Path | None,
    limit: int | None,
    part: Part,
    label: str,
    embedder: CachedEmbedder,
    store: CandidateStore,
    decision: HitDecision,
    top_k: int,
    started: float,
) -> None:
    if pairs is not None:
        chosen = _select(load_pairs(pairs), part)[:limit]
        report = evaluate_pairs(chosen, embedder, store, decision, top_k)
        console.print(
            f"operating point: {label}; {report.pairs} pairs ({part.value}), "
            f"{report.hits} hits, precision {report.precision:.4f}, "
            f"recall {report.recall:.4f} in {time.perf_counter() - started:.1f}s"
        )
        print(report.json_line())
        return
    assert retrieval is not None
    records = load_retrieval(retrieval, limit)
    result = evaluate_retrieval(records, embedder, store, decision, top_k=top_k)
    console.print(f"operating point: {label}; {len(records)} queries, top-{top_k}")
    console.print(
        f"text counting:   correct {result.correct}, wrong {result.wrong}, miss {result.miss}"
    )
    console.print(
        f"strict counting: correct {result.strict_correct}, "
        f"wrong {result.strict_wrong}, miss {result.miss} (GPTCache's)"
    )
    print(result.json_line())


@app.command("calibrate")
def calibrate_command(
    pairs: Path = typer.Option(..., "--pairs", help="labelled pairs, JSON lines"),
    precision: float = typer.Option(..., "--precision", help="target precision of hits"),
    tenant: str | None = typer.Option(None, help="tenant to set (default: the default point)"),
    part: Part = typer.Option(Part.ALL, "--part", help="split-by-cluster part to use"),
    confidence_z: float = typer.Option(1.645, help="Wilson bound z; 0 for the point estimate"),
    tenants_file: Path = typer.Option(DEFAULT_TENANTS, help="operating points file to update"),
    model: str = typer.Option(DEFAULT_MODEL, help="verifier model name"),
    cache_dir: Path = typer.Option(DEFAULT_CACHE, help="dataset embedding cache"),
    embedder_kind: EmbedderKind = typer.Option(
        SERVICE_EMBEDDER, "--embedder", help="runtime that embeds the dataset (the service's)"
    ),
    fast_recall_cost: float = typer.Option(
        0.01, help="stack only: the recall the MLP-only fast path may cost"
    ),
    no_fast_path: bool = typer.Option(
        False, "--no-fast-path", help="stack only: verify every nominee with both members"
    ),
) -> None:
    """Pick the verifier threshold reaching --precision and write it for the tenant.

    For a stack it also picks a fast threshold on the MLP: nominees rated at or
    above it are served without the cross-encoder, and the threshold is
    recalibrated so that the two together keep --precision.
    """
    verifier = load_scorer(model)
    chosen = _select(load_pairs(pairs), part)
    embedder = _embedder(cache_dir, embedder_kind)
    scores, labels = pair_scores(chosen, embedder, verifier)
    got = calibrate(scores, labels, precision, confidence_z)
    fast: float | None = None
    if isinstance(verifier, StackedScorer) and not no_fast_path and got.threshold <= 1.0:
        cheap, _ = pair_scores(chosen, embedder, verifier.mlp)
        fast, got = calibrate_fast_path(
            scores,
            cheap,
            labels,
            precision,
            confidence_z=confidence_z,
            max_recall_cost=fast_recall_cost,
        )
        if fast is not None:
            share = int((cheap >= fast).sum()) / max(got.hits, 1)
            console.print(
                f"fast path: MLP ≥ {fast:.4f} is served without the cross-encoder "
                f"({share:.0%} of the pairs served)"
            )
    if got.threshold > 1.0:
        console.print(
            f"[yellow]precision {precision} is out of reach on these pairs: "
            "threshold 1.0 serves identical text only"
        )
        got = measure(scores, labels, 1.0)
    point = OperatingPoint(
        threshold=round(got.threshold, 6),
        target_precision=precision,
        fast_threshold=None if fast is None else round(fast, 6),
        measured_precision=round(got.precision, 4),
        measured_recall=round(got.recall, 4),
        calibrated_on=f"{pairs.name}:{part.value} ({len(chosen)} pairs, "
        f"{datetime.now(UTC).date().isoformat()})",
        model=verifier.name,
    )
    current = _points(tenants_file, verifier)
    if tenant is None:
        updated = current.model_copy(update={"default": point})
    else:
        updated = current.model_copy(update={"tenants": {**current.tenants, tenant: point}})
    tenants_file.parent.mkdir(parents=True, exist_ok=True)
    updated.dump(tenants_file)
    console.print(
        f"{tenant or 'default'}: threshold {got.threshold:.4f} → precision "
        f"{got.precision:.4f}, recall {got.recall:.4f} on {len(chosen)} pairs; "
        f"wrote {tenants_file}"
    )
    print(
        json.dumps(
            {
                "tenant": tenant or "default",
                "threshold": point.threshold,
                "precision": point.measured_precision,
                "recall": point.measured_recall,
            }
        )
    )


class ModelKind(StrEnum):
    """Which verifier ``train`` builds."""

    CROSS_ENCODER = "cross-encoder"
    MLP = "mlp"
    STACK = "stack"


@app.command("train")
def train_command(
    pairs: Path = typer.Option(..., "--pairs", help="labelled pairs, JSON lines"),
    kind: ModelKind = typer.Option(ModelKind.CROSS_ENCODER, "--kind", help="which verifier"),
    out: Path = typer.Option(MODELS_DIR, help="folder for the model and <name>.json"),
    name: str | None = typer.Option(None, help="model name (default: the kind's shipped name)"),
    epochs: int | None = typer.Option(None, help="cross-encoder: passes over the train split"),
    threads: int | None = typer.Option(None, help="cross-encoder: torch threads"),
    implied: int = typer.Option(
        0,
        "--implied-per-question",
        help="cross-encoder: also train on pairs the labels imply, at most N per question",
    ),
    cache_dir: Path = typer.Option(DEFAULT_CACHE, help="dataset embedding cache (mlp)"),
) -> None:
    """Retrain a verifier reproducibly; prints val/test figures as JSON.

    The cross-encoder fine-tunes MiniLM on the train split (about 18 minutes an
    epoch on 2 cores), exports it to int8 ONNX and calibrates on val; the MLP
    takes seconds once the dataset is embedded; the stack (the service's
    default) fits its logistic layer and gate on val over the two committed
    members, in about two minutes.
    """
    # Imported here: training pulls in torch.
    from semnexus_cache_lookup import training  # noqa: PLC0415

    labelled = load_pairs(pairs)
    if kind is ModelKind.MLP:
        name = name or MLP_MODEL
        metadata = training.train(labelled, _embedder(cache_dir), out, name=name, source=pairs.name)
    elif kind is ModelKind.STACK:
        name = name or STACK_MODEL
        metadata = training.train_stack(
            labelled,
            _embedder(cache_dir),
            out,
            name=name,
            mlp_name=MLP_MODEL,
            cross_name=CROSS_ENCODER_MODEL,
            source=pairs.name,
        )
    else:
        name = name or CROSS_ENCODER_MODEL
        defaults = training.CrossEncoderRecipe()
        recipe = training.CrossEncoderRecipe(
            epochs=epochs or defaults.epochs,
            threads=threads or defaults.threads,
            implied_per_question=implied,
        )
        metadata = training.train_cross_encoder(
            labelled, out, name=name, recipe=recipe, source=pairs.name, progress=console.print
        )
    console.print(f"trained {name} in {metadata['train_seconds']}s → {out}")
    print(json.dumps({"operating_points": metadata["operating_points"], "test": metadata["test"]}))


@app.command("latency")
def latency_command(
    retrieval: Path = typer.Option(..., "--retrieval", help="[{origin, similar}] JSON"),
    rounds: int = typer.Option(3, help="passes over the queries"),
    top_k: int = typer.Option(5, help="candidates per query"),
    model: str = typer.Option(DEFAULT_MODEL, help="verifier model name"),
    cache_dir: Path = typer.Option(DEFAULT_CACHE, help="dataset embedding cache"),
) -> None:
    """Time VerifiedDecision.decide per query beyond the embedding (always verifies)."""
    records = load_retrieval(retrieval)
    embedder = _embedder(cache_dir)
    store = MemoryStore()
    for i, record in enumerate(records):
        store.insert("bench", f"{i}", record.origin, embedder.embed([record.origin])[0])
    queries = [(r.similar, embedder.embed([r.similar])[0]) for r in records]
    asks = [(q, v, store.search("bench", v, top_k)) for q, v in queries]
    decision = VerifiedDecision(load_scorer(model), threshold=0.5, min_similarity=0.0)
    timings: list[float] = []
    for _ in range(rounds):
        for query, vector, candidates in asks:
            started = time.perf_counter()
            decide(decision, query, vector, candidates)
            timings.append(time.perf_counter() - started)
    micros = sorted(t * 1e6 for t in timings)
    p50, p99 = micros[len(micros) // 2], micros[int(len(micros) * 0.99)]
    console.print(
        f"decide() on top-{top_k}: p50 {p50:.0f} µs, p99 {p99:.0f} µs over {len(micros)} calls"
    )
    print(json.dumps({"p50_us": round(p50), "p99_us": round(p99), "calls": len(micros)}))


if __name__ == "__main__":
    app()
