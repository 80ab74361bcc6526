"""``semnexus-cache-lookup`` / ``python -m semnexus_cache_lookup``: run the service.

Builds the settings once, opens the vector store (creating the collection if
needed), loads the embedding model (``cache.embedder``: torch, or an ONNX export,
built on first start if ``make setup`` has not built it) and the hit decision, limits numpy's
BLAS threads (``cache.blas_threads``), then hands over to
:func:`~semnexus_shared.service.run_service`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from semnexus_cache_lookup.app import wiring
from semnexus_cache_lookup.config import CacheSettings, Settings
from semnexus_cache_lookup.embedder import open_embedder
from semnexus_cache_lookup.errors import CacheLookupMisconfigured
from semnexus_cache_lookup.policy import Decisions, ThresholdDecisions
from semnexus_cache_lookup.vectorstore import MilvusVectorStore, is_server_uri
from semnexus_shared.service import run_service


def open_store(cache: CacheSettings) -> MilvusVectorStore:
    """The Milvus (or Milvus Lite) store of these settings, collection ensured."""
    if not is_server_uri(cache.vector_uri):
        Path(cache.vector_uri).parent.mkdir(parents=True, exist_ok=True)
    store = MilvusVectorStore.configured(cache)
    asyncio.run(store.ensure())
    return store


def load_decisions(cache: CacheSettings) -> Decisions:
    """The configured hit decision: one cosine floor, or the learned verifier."""
    if cache.decision == "threshold":
        return ThresholdDecisions(cache.min_similarity)
    if cache.decision == "verifier":
        # Imported here: only this choice needs the verifier's weights and YAML.
        from semnexus_cache_lookup.decision import (  # noqa: PLC0415
            FastPathScorer,
            OperatingPoints,
            TenantDecisions,
        )
        from semnexus_cache_lookup.verifier import DEFAULT_MODEL, load_scorer  # noqa: PLC0415

        if cache.operating_points is None:
            raise CacheLookupMisconfigured("decision=verifier needs cache.operating_points")
        scorer = load_scorer(cache.verifier_model or DEFAULT_MODEL)
        points = OperatingPoints.load(cache.operating_points)
        for tenant, point in [("default", points.default), *points.tenants.items()]:
            # A threshold is a point on one model's score scale: another model's is meaningless.
            if point.model is not None and point.model != scorer.name:
                raise CacheLookupMisconfigured(
                    f"{cache.operating_points}: tenant {tenant!r} was calibrated for model "
                    f"{point.model!r}, the service runs {scorer.name!r}; run `semnexus cache "
                    "calibrate` for this model"
                )
            if point.fast_threshold is not None and not isinstance(scorer, FastPathScorer):
                raise CacheLookupMisconfigured(
                    f"{cache.operating_points}: tenant {tenant!r} has a fast_threshold, which "
                    f"only a stacked verifier can use; {scorer.name!r} is not one"
                )
        return TenantDecisions(scorer, points)
    raise CacheLookupMisconfigured(f"unknown decision {cache.decision!r}")


def limit_blas_threads(cache: CacheSettings) -> None:
    """Cap numpy's BLAS pool at ``cache.blas_threads`` for the life of the process."""
    if cache.blas_threads is not None:
        # Not used as a context manager: the limit stays until the process ends.
        threadpool_limits(cache.blas_threads, user_api="blas")


def main() -> None:
    """Entry point of the service process."""
    settings = Settings()
    cache = settings.cache
    limit_blas_threads(cache)
    embedder = open_embedder(cache.embedder, cache.embed_threads, cache.onnx_cache)
    if embedder.dimensions != settings.cache.dimensions:
        raise CacheLookupMisconfigured(
            f"embedder has {embedder.dimensions} dimensions, settings say "
            f"{settings.cache.dimensions}"
        )
    decisions = load_decisions(settings.cache)
    store = open_store(settings.cache)
    run_service(settings, wiring(settings, store, embedder, decisions))


if __name__ == "__main__":
    main()
