"""The API an application uses: publish a request, await its response.

::

    async with SemNexusClient(KafkaSettings(), tenant_id="acme") as client:
        answer = await client.complete("What is Kafka?", model_alias="chat")
        print(answer.text, answer.source.kind)

:meth:`SemNexusClient.complete` publishes a ``CompletionRequested`` keyed by
the request key (so identical prompts land on one partition and can be
coalesced) and waits for the ``CompletionResponded`` with the same request
id on the reply topic. :meth:`submit` is the fire-and-forget form;
:meth:`complete_many` sends many at once with bounded concurrency.

Errors (all rooted in :class:`~semnexus_shared.errors.SemNexusError`)::

    ClientError
    ├── ResponseTimeout     no response within the timeout (the request may
    │                       still be answered later; its id is on the error)
    └── RequestFailed       the gateway answered with an error status; carries
                            status, message and retry_after_ms when given
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterable, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from semnexus_shared.config import KafkaSettings, TopicSettings
from semnexus_shared.errors import SemNexusError
from semnexus_shared.events import (
    CachePolicy,
    CompletionRequested,
    CompletionResponded,
    Message,
    ResponseStatus,
    Role,
    Sampling,
    utc_now,
)
from semnexus_shared.scope import request_key
from semnexus_shared.serde import Codec, SchemaRegistry
from semnexus_shared.stream._pipeline import (
    REPLY_TOPIC_HEADER,
    REQUEST_ID_HEADER,
    TENANT_HEADER,
)
from semnexus_shared.topics import TopicMissing, TopicNames, partitions_of
from semnexus_shared.tracing import inject_headers


class ClientError(SemNexusError):
    """Root of the client's errors."""


class ResponseTimeout(ClientError):
    """No response arrived in time."""

    def __init__(self, request_id: str, timeout_s: float) -> None:
        super().__init__(f"no response to {request_id} within {timeout_s:g}s")
        self.request_id = request_id


class RequestFailed(ClientError):
    """The gateway answered with an error status."""

    def __init__(self, response: CompletionResponded) -> None:
        hint = f" (retry after {response.retry_after_ms} ms)" if response.retry_after_ms else ""
        super().__init__(f"{response.status.value}: {response.error_message or ''}{hint}")
        self.response = response
        self.status = response.status
        self.retry_after_ms = response.retry_after_ms


class SemNexusClient:
    """Publishes requests and awaits their responses; one per application process."""

    def __init__(
        self,
        kafka: KafkaSettings,
        tenant_id: str,
        *,
        topics: TopicSettings | None = None,
        reply_topic: str | None = None,
        codec: Codec | None = None,
    ) -> None:
        self._kafka = kafka
        self.tenant_id = tenant_id
        self._names = TopicNames(topics or TopicSettings())
        self.reply_topic = reply_topic or self._names.responses
        self._codec = codec or Codec(SchemaRegistry.load())
        self._pending: dict[str, asyncio.Future[CompletionResponded]] = {}
        self._producer: Any = None
        self._consumer: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._tracer = trace.get_tracer("semnexus.client")

    async def __aenter__(self) -> SemNexusClient:
        await self.start()
        return self

    async def __aexit__(
        self, *_exc: type[BaseException] | BaseException | TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect; responses published from now on are seen."""
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: PLC0415

        self._producer = AIOKafkaProducer(
            **self._kafka.client_args(),
            acks="all",
            enable_idempotence=True,
            linger_ms=1,
        )
        await self._producer.start()
        # No group: every client sees every partition of its reply topic from
        # now on and picks out its own request ids.
        self._consumer = AIOKafkaConsumer(
            **self._kafka.consumer_args(), group_id=None, enable_auto_commit=False
        )
        try:
            parts = await partitions_of(self._kafka, self.reply_topic)
        except TopicMissing as exc:
            raise ClientError(str(exc)) from exc
        await self._consumer.start()
        tps = [TopicPartition(self.reply_topic, p) for p in parts]
        self._consumer.assign(tps)
        await self._consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the positions now, before any request is sent
            await self._consumer.position(tp)
        self._reader = asyncio.create_task(self._read(), name="semnexus-client-responses")

    async def close(self) -> None:
        """Stop reading and flush what was published."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()
        for fut in self._pending.values():
            if not fut.done():
                fut.cancel()

    async def _read(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=500)
            for records in batches.values():
                for record in records:
                    fut = self._pending.get(_text(record.key))
                    if fut is None or fut.done():
                        continue
                    try:
                        response = self._codec.decode(record.value, CompletionResponded)
                    except SemNexusError:
                        continue
                    if not fut.done():
                        fut.set_result(response)

    def build(
        self,
        prompt: str | Sequence[Message],
        *,
        model_alias: str = "chat",
        system: str | None = None,
        temperature: float | None = 0.0,
        max_tokens: int | None = None,
        timeout_s: float = 30.0,
        cache: CachePolicy | None = None,
        metadata: dict[str, str] | None = None,
    ) -> CompletionRequested:
        """A request for this tenant; ``prompt`` is a user turn or a whole conversation."""
        messages: list[Message] = []
        if system:
            messages.append(Message(role=Role.SYSTEM, content=system))
        if isinstance(prompt, str):
            messages.append(Message(role=Role.USER, content=prompt))
        else:
            messages.extend(prompt)
        return CompletionRequested(
            request_id=str(uuid.uuid4()),
            tenant_id=self.tenant_id,
            messages=tuple(messages),
            model_alias=model_alias,
            sampling=Sampling(temperature=temperature),
            max_tokens=max_tokens,
            deadline=utc_now() + timedelta(seconds=timeout_s),
            cache=cache or CachePolicy(),
            reply_topic=self.reply_topic,
            metadata=metadata or {},
        )

    async def submit(self, request: CompletionRequested) -> str:
        """Publish without waiting for the answer (fire and forget); the request id."""
        with self._tracer.start_as_current_span(
            f"{self._names.requests} publish",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": self._names.requests,
                "semnexus.request_id": request.request_id,
                "semnexus.tenant_id": request.tenant_id,
            },
        ):
            headers = inject_headers(
                [
                    (REQUEST_ID_HEADER, request.request_id.encode()),
                    (TENANT_HEADER, request.tenant_id.encode()),
                    (REPLY_TOPIC_HEADER, (request.reply_topic or self.reply_topic).encode()),
                ]
            )
            await self._producer.send_and_wait(
                self._names.requests,
                self._codec.encode(request),
                key=request_key(request),
                headers=headers,
            )
        return request.request_id

    async def send(
        self, request: CompletionRequested, timeout_s: float = 30.0
    ) -> CompletionResponded:
        """Publish a built request and await its response; errors raise."""
        fut: asyncio.Future[CompletionResponded] = asyncio.get_running_loop().create_future()
        self._pending[request.request_id] = fut
        try:
            await self.submit(request)
            try:
                response = await asyncio.wait_for(fut, timeout_s)
            except TimeoutError as exc:
                raise ResponseTimeout(request.request_id, timeout_s) from exc
        finally:
            self._pending.pop(request.request_id, None)
        if response.status != ResponseStatus.OK:
            raise RequestFailed(response)
        return response

    async def complete(
        self, prompt: str | Sequence[Message], *, timeout_s: float = 30.0, **options: Any
    ) -> CompletionResponded:
        """Ask and wait: the response, or ResponseTimeout / RequestFailed."""
        return await self.send(self.build(prompt, timeout_s=timeout_s, **options), timeout_s)

    async def complete_many(
        self,
        requests: Iterable[CompletionRequested],
        *,
        concurrency: int = 100,
        timeout_s: float = 30.0,
    ) -> list[CompletionResponded | ClientError]:
        """Send many; each result is the response or the error it raised, in order."""
        gate = asyncio.Semaphore(concurrency)

        async def one(request: CompletionRequested) -> CompletionResponded | ClientError:
            async with gate:
                try:
                    return await self.send(request, timeout_s)
                except ClientError as exc:
                    return exc

        return list(await asyncio.gather(*(one(r) for r in requests)))


def _text(key: bytes | None) -> str:
    return key.decode("utf-8", "replace") if key else ""
