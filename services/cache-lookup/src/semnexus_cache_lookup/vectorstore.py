"""The cache's vector store: a small protocol, and its Milvus adapter.

:class:`VectorStore` is what handlers use; :class:`MilvusVectorStore`
implements it with pymilvus ``MilvusClient``, and the same code serves Milvus
Lite (a file path as URI: unit tests, a laptop) and a Milvus server or cluster
(``http://host:19530``).

Contract:

- :meth:`ensure` creates the collection idempotently: primary key ``id`` (the
  exact key), every scope field, ``scope_hash``, prompt, answer, usage,
  provider/model, ``created_at``/``expires_at`` (epoch ms), the vector, and
  the same vector again as text (``vector_b64``: base64 of float32
  little-endian, see below); ``tenant_id`` is the partition key (a tenant's
  search touches only its partitions). Index: COSINE on normalised vectors,
  HNSW on a server, AUTOINDEX on Milvus Lite. Consistency is the configured level (Strong by
  default, so an invalidation is seen by the next lookup).
- :meth:`search` takes all the query vectors of one scope and runs ONE search
  filtered by exact equality on the tenant and the scope hash and
  ``expires_at > now``; callers still check every candidate's scope in Python.
- Searches and gets read the vector from ``vector_b64``, never from the
  vector field. A search that outputs a vector field makes Milvus 2.3 fetch
  it in a second pass by primary key: measured here on 10,000 entries, one
  top-5 search cost the server 5.3-6.0 ms of CPU with the vector and
  3.1-3.7 ms with its text copy (the client 1.2-1.3 against 1.0 ms). The
  verifier needs each nominee's vector, so every semantic lookup paid that
  pass. A collection created before this field existed has no
  ``vector_b64``: :meth:`ensure` notices, and reads the vector field as
  before (slower, same answers).
- Every call is blocking in pymilvus, so each runs on one of the store's own
  ``threads`` (``cache.store_threads``) and the event loop stays responsive. A failed call
  raises :class:`~semnexus_cache_lookup.errors.VectorStoreUnavailable`
  (retryable).
- Writes are delete-then-insert by id (see :meth:`upsert` for why not upsert).
- Deletes take a ``before`` time and drop only entries stored at or before
  it, so replaying an old invalidation (the topic is compacted, a new consumer
  group reads it all) never drops answers stored after it.
- Text fields are VARCHAR (at most 65,535 bytes): prompts are cut to fit;
  an answer that does not fit is not stored (:data:`MAX_TEXT_BYTES`).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
import structlog

from semnexus_cache_lookup.entry import CacheEntry
from semnexus_cache_lookup.errors import VectorStoreUnavailable
from semnexus_shared.events import CacheScope, FinishReason, Usage
from semnexus_shared.scope import scope_hash

if TYPE_CHECKING:
    from semnexus_cache_lookup.config import CacheSettings

__all__ = ["MAX_TEXT_BYTES", "MilvusVectorStore", "ScoredEntry", "VectorStore"]

log = structlog.get_logger("semnexus.cache_lookup")

Vectors = npt.NDArray[np.float32]
ScoredEntry = tuple[CacheEntry, float]
T = TypeVar("T")

MAX_TEXT_BYTES = 65_535
_SCOPE_FIELDS = (
    "tenant_id",
    "model_alias",
    "system_hash",
    "history_hash",
    "tools_format_hash",
    "sampling_bucket",
)
_PAYLOAD_FIELDS = [
    *_SCOPE_FIELDS,
    "scope_hash",
    "prompt",
    "answer",
    "finish_reason",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "provider",
    "model",
    "request_id",
    "created_at",
    "expires_at",
]
# Base64 of float32 LE: 2,048 characters for 384 dimensions.
_VECTOR_TEXT = "vector_b64"


class VectorStore(Protocol):
    """Where cache entries live: exact lookups, scoped searches, writes, deletes."""

    async def ensure(self) -> None:
        """Create the collection and its index if missing."""
        ...

    async def get(self, ids: Sequence[str]) -> dict[str, CacheEntry]:
        """The entries with these ids that exist (expired ones included)."""
        ...

    async def search(
        self, scope: CacheScope, vectors: Vectors, top_k: int, now: datetime
    ) -> list[list[ScoredEntry]]:
        """For each vector, up to ``top_k`` live entries of ``scope``, most similar first."""
        ...

    async def upsert(self, entries: Sequence[CacheEntry]) -> None:
        """Write entries (each with its vector), replacing any with the same id."""
        ...

    async def delete_tenant(self, tenant_id: str, before: datetime) -> None:
        """Drop every entry of a tenant stored before ``before``."""
        ...

    async def delete_scope(self, scope: CacheScope, before: datetime) -> None:
        """Drop every entry of one scope stored before ``before``."""
        ...

    async def delete_entry(self, tenant_id: str, entry_id: str, before: datetime) -> None:
        """Drop one entry stored before ``before``, only if it belongs to ``tenant_id``."""
        ...

    async def purge_expired(self, now: datetime) -> None:
        """Drop every entry whose TTL has passed."""
        ...

    async def count_by_tenant(self) -> dict[str, int]:
        """Number of stored entries per tenant (expired but not yet purged included)."""
        ...


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def literal(text: str) -> str:
    """A Milvus expression string literal (backslashes and quotes escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _fit(text: str) -> str:
    data = text.encode("utf-8")
    if len(data) <= MAX_TEXT_BYTES:
        return text
    return data[:MAX_TEXT_BYTES].decode("utf-8", "ignore")


def vector_text(vector: npt.ArrayLike) -> str:
    """A vector as the text ``vector_b64`` stores: base64 of float32 little-endian."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def vector_text_length(dimensions: int) -> int:
    """Characters of :func:`vector_text` for a vector of ``dimensions`` (base64 of 4 bytes each)."""
    return 4 * ((4 * dimensions + 2) // 3)


def vector_from_text(text: str) -> Vectors:
    """The inverse of :func:`vector_text`."""
    return np.frombuffer(base64.b64decode(text), dtype="<f4").astype(np.float32)


def _floats(vectors: npt.ArrayLike) -> Any:
    """Vectors as pymilvus takes them: (lists of) Python floats, by ``tolist``.

    A ``float()`` per element cost four times as much (0.30 against 0.07 ms for 8 vectors).
    """
    return np.asarray(vectors, dtype=np.float32).tolist()


def _row(entry: CacheEntry, *, with_text: bool = True) -> dict[str, Any]:
    if entry.vector is None:
        raise ValueError(f"entry {entry.id} has no vector")
    text = {_VECTOR_TEXT: vector_text(entry.vector)} if with_text else {}
    return {
        "id": entry.id,
        **entry.scope.model_dump(mode="json"),
        "scope_hash": scope_hash(entry.scope),
        "prompt": _fit(entry.prompt),
        "answer": entry.answer,
        "finish_reason": entry.finish_reason.value,
        "input_tokens": entry.usage.input_tokens,
        "output_tokens": entry.usage.output_tokens,
        "cached_input_tokens": entry.usage.cached_input_tokens,
        "provider": entry.provider,
        "model": entry.model,
        "request_id": entry.request_id,
        "created_at": _ms(entry.created_at),
        "expires_at": _ms(entry.expires_at),
        "vector": _floats(entry.vector),
        **text,
    }


def _entry(row: Mapping[str, Any]) -> CacheEntry:
    text = row.get(_VECTOR_TEXT)
    vector = vector_from_text(text) if text is not None else row.get("vector")
    return CacheEntry(
        id=str(row["id"]),
        scope=CacheScope(**{f: str(row[f]) for f in _SCOPE_FIELDS}),
        prompt=str(row["prompt"]),
        answer=str(row["answer"]),
        finish_reason=FinishReason(row["finish_reason"]),
        usage=Usage(
            input_tokens=int(row["input_tokens"]),
            output_tokens=int(row["output_tokens"]),
            cached_input_tokens=int(row["cached_input_tokens"]),
        ),
        provider=str(row["provider"]),
        model=str(row["model"]),
        request_id=str(row["request_id"]),
        created_at=_at(int(row["created_at"])),
        expires_at=_at(int(row["expires_at"])),
        vector=None if vector is None else np.asarray(vector, dtype=np.float32),
    )


def is_server_uri(uri: str) -> bool:
    """Whether the URI names a Milvus server (else a Milvus Lite file)."""
    return uri.startswith(("http://", "https://", "tcp://", "grpc://"))


class MilvusVectorStore:
    """:class:`VectorStore` on pymilvus ``MilvusClient`` (Milvus Lite or a server)."""

    @classmethod
    def configured(cls, cache: CacheSettings) -> MilvusVectorStore:
        """The store the settings name (the service and the CLI open the same one)."""
        return cls(
            cache.vector_uri,
            cache.collection,
            cache.dimensions,
            token=cache.vector_token,
            consistency=cache.consistency,
            partition_key=cache.partition_key,
            threads=cache.store_threads,
        )

    def __init__(
        self,
        uri: str,
        collection: str,
        dimensions: int,
        *,
        token: str | None = None,
        consistency: str = "auto",
        partition_key: bool = True,
        threads: int = 2,
    ) -> None:
        from pymilvus import MilvusClient  # noqa: PLC0415  (adapter import, at construction)

        self.uri = uri
        self.collection = collection
        self.dimensions = dimensions
        self.partition_key = partition_key
        self.server = is_server_uri(uri)
        # "auto": Bounded on a server. Session made every read wait until this
        # client's latest write (a fill, 20 a second under load) was visible:
        # about 290 ms a lookup, against 3 ms Bounded (BENCHMARKS.md). Bounded
        # reads may miss entries written in the last `common.gracefulTime`
        # (the local stack sets 500 ms): a fresh entry is served a moment
        # later, an invalidation takes effect as late; twins in flight are
        # answered from the fill itself, not from a read. Milvus Lite has one
        # replica and no Session or Bounded machinery: Strong costs nothing.
        if consistency == "auto":
            consistency = "Bounded" if self.server else "Strong"
        self.consistency = consistency
        kwargs: dict[str, Any] = {"uri": uri}
        if token:
            kwargs["token"] = token
        self._client: Any = MilvusClient(**kwargs)
        self._threads = ThreadPoolExecutor(threads, thread_name_prefix="semnexus-milvus")
        # Until ensure() finds an older collection without the vector's text copy.
        self._with_text = True

    @property
    def _outputs(self) -> list[str]:
        return [*_PAYLOAD_FIELDS, _VECTOR_TEXT if self._with_text else "vector"]

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        from pymilvus.exceptions import MilvusException  # noqa: PLC0415  (adapter import)

        try:
            call = functools.partial(fn, *args, **kwargs)
            return await asyncio.get_running_loop().run_in_executor(self._threads, call)
        except MilvusException as exc:
            raise VectorStoreUnavailable(f"milvus {fn.__name__}: {exc}") from exc

    async def ensure(self) -> None:
        """Create the collection (partition key, index) if it does not exist."""
        await self._call(self._ensure)

    def _ensure(self) -> None:
        client = self._client
        if client.has_collection(self.collection):
            fields = client.describe_collection(self.collection)["fields"]
            self._with_text = any(f["name"] == _VECTOR_TEXT for f in fields)
            if not self._with_text:
                log.warning(
                    "vector store: collection has no vector_b64 field; reading vectors "
                    "from the vector field (each search costs Milvus a second pass); "
                    "a new collection gets the field",
                    collection=self.collection,
                )
            client.load_collection(self.collection)
            # A Milvus server that has just restarted reports an existing collection
            # loaded but holds its first read until it has recovered it (111 s for the
            # local stack's much-rewritten collection). Reading once here keeps the
            # service out of its consumer group until then, instead of taking
            # requests whose lookups would queue behind that read.
            started = time.perf_counter()
            client.get(self.collection, ids=["semnexus-readiness-probe"], output_fields=["id"])
            waited = time.perf_counter() - started
            if waited > 1.0:
                log.info(
                    "vector store: first read served",
                    collection=self.collection,
                    waited_s=round(waited, 1),
                )
            return
        client.create_collection(
            self.collection,
            schema=self.schema(),
            index_params=self._index(),
            consistency_level=self.consistency,
        )
        client.load_collection(self.collection)

    def schema(self, *, with_text: bool = True) -> Any:
        """The collection's fields (``with_text=False``: as created before ``vector_b64``)."""
        from pymilvus import DataType, MilvusClient  # noqa: PLC0415  (adapter import)

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field(
            "tenant_id", DataType.VARCHAR, max_length=128, is_partition_key=self.partition_key
        )
        for name in _SCOPE_FIELDS[1:]:
            schema.add_field(name, DataType.VARCHAR, max_length=256)
        schema.add_field("scope_hash", DataType.VARCHAR, max_length=64)
        schema.add_field("prompt", DataType.VARCHAR, max_length=MAX_TEXT_BYTES)
        schema.add_field("answer", DataType.VARCHAR, max_length=MAX_TEXT_BYTES)
        schema.add_field("finish_reason", DataType.VARCHAR, max_length=32)
        for name in ("input_tokens", "output_tokens", "cached_input_tokens"):
            schema.add_field(name, DataType.INT64)
        schema.add_field("provider", DataType.VARCHAR, max_length=128)
        schema.add_field("model", DataType.VARCHAR, max_length=256)
        schema.add_field("request_id", DataType.VARCHAR, max_length=256)
        schema.add_field("created_at", DataType.INT64)
        schema.add_field("expires_at", DataType.INT64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dimensions)
        if with_text:
            length = vector_text_length(self.dimensions)
            schema.add_field(_VECTOR_TEXT, DataType.VARCHAR, max_length=length)
        return schema

    def _index(self) -> Any:
        index = self._client.prepare_index_params()
        if self.server:
            index.add_index(
                field_name="vector",
                index_type="HNSW",
                metric_type="COSINE",
                params={"M": 16, "efConstruction": 200},
            )
        else:
            index.add_index(field_name="vector", index_type="AUTOINDEX", metric_type="COSINE")
        return index

    async def get(self, ids: Sequence[str]) -> dict[str, CacheEntry]:
        """Primary-key lookup of many ids in one call."""
        if not ids:
            return {}
        rows = await self._call(
            self._client.get,
            self.collection,
            ids=list(dict.fromkeys(ids)),
            output_fields=self._outputs,
        )
        return {str(r["id"]): _entry(r) for r in rows}

    async def search(
        self, scope: CacheScope, vectors: Vectors, top_k: int, now: datetime
    ) -> list[list[ScoredEntry]]:
        """One filtered ANN search for all of one scope's query vectors."""
        if len(vectors) == 0:
            return []
        expression = (
            f"tenant_id == {literal(scope.tenant_id)}"
            f" and scope_hash == {literal(scope_hash(scope))}"
            f" and expires_at > {_ms(now)}"
        )
        params: dict[str, Any] = {"metric_type": "COSINE"}
        if self.server:
            params["params"] = {"ef": max(64, top_k)}
        results = await self._call(
            self._client.search,
            self.collection,
            data=_floats(vectors),
            filter=expression,
            limit=top_k,
            output_fields=self._outputs,
            search_params=params,
        )
        return [
            [(_entry({"id": hit["id"], **hit["entity"]}), float(hit["distance"])) for hit in hits]
            for hits in results
        ]

    async def upsert(self, entries: Sequence[CacheEntry]) -> None:
        """Insert or replace the entries in one call."""
        if not entries:
            return
        # delete + insert, not upsert: Milvus 2.3.5's upsert misroutes rows of a
        # partition-key collection (a tenant filter then never finds them). Between
        # the two calls a lookup can only miss, never get a wrong answer.
        rows = [_row(e, with_text=self._with_text) for e in entries]
        ids = ", ".join(literal(r["id"]) for r in rows)
        await self._call(self._client.delete, self.collection, filter=f"id in [{ids}]")
        await self._call(self._client.insert, self.collection, rows)

    async def _delete(self, expression: str) -> None:
        await self._call(self._client.delete, self.collection, filter=expression)

    async def delete_tenant(self, tenant_id: str, before: datetime) -> None:
        """Delete by exact tenant equality."""
        await self._delete(f"tenant_id == {literal(tenant_id)} and created_at <= {_ms(before)}")

    async def delete_scope(self, scope: CacheScope, before: datetime) -> None:
        """Delete by tenant and scope hash."""
        await self._delete(
            f"tenant_id == {literal(scope.tenant_id)}"
            f" and scope_hash == {literal(scope_hash(scope))} and created_at <= {_ms(before)}"
        )

    async def delete_entry(self, tenant_id: str, entry_id: str, before: datetime) -> None:
        """Delete one id, guarded by its tenant."""
        await self._delete(
            f"id == {literal(entry_id)} and tenant_id == {literal(tenant_id)}"
            f" and created_at <= {_ms(before)}"
        )

    async def purge_expired(self, now: datetime) -> None:
        """Delete everything past its TTL."""
        await self._delete(f"expires_at <= {_ms(now)}")

    async def count_by_tenant(self) -> dict[str, int]:
        """Walk the tenant column once with a query iterator."""
        return await self._call(self._count_by_tenant)

    def _count_by_tenant(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        iterator = self._client.query_iterator(
            self.collection, batch_size=1000, filter="expires_at >= 0", output_fields=["tenant_id"]
        )
        try:
            while rows := iterator.next():
                for row in rows:
                    tenant = str(row["tenant_id"])
                    counts[tenant] = counts.get(tenant, 0) + 1
        finally:
            iterator.close()
        return counts

    async def close(self) -> None:
        """Close the client (Milvus Lite flushes its file) and let the store's threads end."""
        await self._call(self._client.close)
        self._threads.shutdown(wait=False)
