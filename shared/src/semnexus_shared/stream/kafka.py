"""The Kafka bus: faust-streaming agents driving :class:`Pipeline` batches.

faust owns the consumer group, partition assignment, fetching and the offset
bookkeeping; this module adds what SemNexus needs on top:

- an idempotent producer (``acks=all``, ``enable_idempotence``) for every
  record a pipeline produces, through the ``semnexus://`` transport, which is
  faust's aiokafka transport with that setting changed, and the consumer's
  fetch wait taken from the settings instead of faust's fixed 1.5 s;
- events are acknowledged to faust only after :meth:`Pipeline.process`
  returned, that is after every record they produced was acknowledged, and
  faust commits only the contiguous prefix of acknowledged offsets, so a slow
  event never lets a later one's offset be committed ahead of it;
- a pipeline that crashes stops the process at once with its offsets
  uncommitted (faust would otherwise ack the failed batch on its way out).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import faust
import structlog
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types.auth import CredentialsT
from opentelemetry.metrics import CallbackOptions, Observation

from semnexus_shared.config import KafkaSettings, ServiceSettings
from semnexus_shared.metrics import meter
from semnexus_shared.stream._model import OutRecord, Record
from semnexus_shared.stream._pipeline import Pipeline

log = structlog.get_logger("semnexus.stream")

EXIT_CRASHED = 70  # EX_SOFTWARE: the supervisor restarts the process


class _IdempotentProducer(faust_aiokafka.Producer):
    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class _App(faust.App):
    """A faust app that also carries the consumer's fetch wait (faust has no setting for it)."""

    fetch_max_wait_ms: int = 1500


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust's consumer thread, with the fetch wait of :attr:`KafkaSettings.fetch_max_wait_s`.

    aiokafka keeps at most one fetch in flight per broker, and a fetch names
    only the partitions whose earlier records the service has taken. When a
    fetch goes out while some partitions' records still wait to be taken, and
    nothing new comes to the partitions it names, the broker holds it for the
    whole fetch wait; records that arrive meanwhile on the partitions it left
    out wait with it. faust fixes that wait at 1.5 s: in the bench's closed loop
    of 128 requests on one broker, whole windows stalled like this for 1.4 s in
    most runs (BENCHMARKS.md).
    """

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        if isinstance(self.app, _App):
            # Read by AIOKafkaConsumer.start() when it builds its fetcher.
            consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    """faust's aiokafka transport, idempotent producer, configured fetch wait (``semnexus://``)."""

    Producer = _IdempotentProducer
    Consumer = _Consumer


def broker_credentials(kafka: KafkaSettings) -> CredentialsT | None:
    """The settings' authentication as faust credentials (faust turns them into aiokafka's).

    faust tells SASL_SSL from SASL_PLAINTEXT by whether a TLS context is given,
    so the two forms connect exactly as :meth:`KafkaSettings.client_args` does.
    """
    context = kafka.ssl_context()
    if kafka.sasl_password is not None:
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password.get_secret_value(),
            ssl_context=context,
            mechanism=kafka.sasl_mechanism_in_use,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def crash_process(reason: str) -> NoReturn:
    """Exit now, before faust can commit anything of the failed batch."""
    log.critical("pipeline crashed; exiting with offsets uncommitted", reason=reason)
    sys.stdout.flush()
    os._exit(EXIT_CRASHED)


class _FaustProducer:
    def __init__(self, app: faust.App) -> None:
        self._app = app

    async def send(self, record: OutRecord) -> Awaitable[Any]:
        fut: Awaitable[Any] = await self._app.producer.send(
            record.topic, record.key, record.value, None, None, record.headers
        )
        return fut


def _record(event: Any) -> Record:
    msg = event.message
    headers = msg.headers or ()
    if isinstance(headers, Mapping):
        headers = list(headers.items())
    return Record(
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        key=msg.key,
        value=msg.value,
        headers=tuple((k, bytes(v or b"")) for k, v in headers),
        timestamp_ms=int(msg.timestamp * 1000) if msg.timestamp else None,
    )


class _Batch:
    """One agent's micro-batch: it starts with an event and closes when full or lingered.

    faust's ``take_events`` wakes every ``within`` seconds whether or not an
    event came: at cache-lookup's 2 ms linger, an idle process spent 15 % of a
    core on its agents' timers. Here nothing runs until an event arrives; the
    first event of a batch arms one timer, and the batch is processed when
    ``most`` events are in or ``linger`` has passed, like a Kafka producer's
    ``linger.ms``. One batch is processed at a time per agent; a full batch
    holds the agent (and so the partitions' flow into it) until it is done.
    A batch that only waits for deferred decisions (coalesced twins waiting,
    up to the coalescing window, for an answer in flight) keeps the turn for
    ``hold`` seconds more, then hands it to the next batch and finishes in the
    background. Holding first keeps batches large at saturation, where the
    answers a twin waits for come within a provider's usual latency; passing
    the turn on bounds what a slow or hung provider costs everyone else: in a
    spike of identical questions, parked twins would otherwise hold every
    agent of the process for the whole window.
    Events are acknowledged only after :meth:`Pipeline.process` returned
    (faust commits a partition only up to its first unacknowledged offset).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        producer: _FaustProducer,
        crash: Callable[[str], NoReturn],
        ack: Callable[[Any], Awaitable[bool]],
        hold: float = 0.0,
    ) -> None:
        self._pipeline = pipeline
        self._hold = hold
        self._producer = producer
        self._crash = crash
        self._ack = ack
        self._events: list[Any] = []
        self._turn = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._flushes: set[asyncio.Task[None]] = set()
        self._waiting: set[asyncio.Future[None]] = set()

    async def add(self, event: Any, most: int, linger: float) -> None:
        self._events.append(event)
        if len(self._events) >= most:
            await self.flush()
        elif len(self._events) == 1:
            self._timer = asyncio.get_running_loop().call_later(linger, self._lingered)

    def _lingered(self) -> None:
        self._timer = None
        task = asyncio.ensure_future(self.flush())
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def flush(self) -> None:
        async with self._turn:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            events, self._events = self._events, []
            if not events:
                return
            waiting: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done = asyncio.ensure_future(self._settle(events, waiting))
            try:
                await asyncio.wait({done, waiting}, return_when=asyncio.FIRST_COMPLETED)
                if not done.done() and self._hold > 0:
                    await asyncio.wait({done}, timeout=self._hold)
            except asyncio.CancelledError:
                done.cancel()
                raise
            if not done.done():
                # Only deferred decisions left: the turn passes, the batch ends in the background.
                self._waiting.add(done)
                done.add_done_callback(self._waiting.discard)

    async def _settle(self, events: list[Any], waiting: asyncio.Future[None]) -> None:
        def release() -> None:
            if not waiting.done():
                waiting.set_result(None)

        try:
            await self._pipeline.process(
                [_record(e) for e in events], self._producer, on_waiting=release
            )
            for event in events:
                await self._ack(event)
        except BaseException as exc:  # noqa: BLE001  (any failure must stop the process)
            self._crash(f"{self._pipeline.name}: {type(exc).__name__}: {exc}")


class FaustBus:
    """One faust app per service process; each attached pipeline is one agent."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        crash: Callable[[str], NoReturn] = crash_process,
    ) -> None:
        kafka = settings.kafka
        datadir = Path(tempfile.gettempdir()) / "semnexus-faust" / settings.service_name
        datadir.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self._crash = crash
        self.app = _App(
            settings.service_name,
            broker=[f"semnexus://{server}" for server in kafka.servers],
            broker_credentials=broker_credentials(kafka),
            key_serializer="raw",
            value_serializer="raw",
            web_enabled=False,
            topic_disable_leader=True,
            topic_allow_declare=False,
            producer_acks=-1,
            producer_linger=kafka.producer_linger_s,
            broker_commit_interval=kafka.commit_interval_s,
            broker_session_timeout=kafka.session_timeout_s,
            broker_max_poll_interval=kafka.max_poll_interval_s,
            broker_request_timeout=kafka.request_timeout_s,
            consumer_auto_offset_reset="earliest",
            stream_ack_exceptions=False,
            stream_ack_cancelled_tasks=False,
            stream_wait_empty=True,
            worker_redirect_stdouts=False,
            # faust keeps table state here; nothing of ours, so never the working dir
            datadir=str(datadir),
        )
        self.app.fetch_max_wait_ms = kafka.fetch_max_wait_ms
        self._producer = _FaustProducer(self.app)
        meter("semnexus.stream").create_observable_gauge(
            "semnexus_consumer_lag",
            callbacks=[self._observe_lag],
            unit="1",
            description="highwater minus committed offset, per assigned partition",
        )

    def _observe_lag(self, _options: CallbackOptions) -> Iterable[Observation]:
        consumer = getattr(self.app, "_consumer", None)
        if consumer is None:
            return []
        observations = []
        # faust keeps no public committed-offset accessor; this one is stable across 0.1x.
        committed = getattr(consumer, "_committed_offset", {})
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            done = committed.get(tp) or 0
            observations.append(
                Observation(
                    max(highwater - done, 0),
                    {
                        "stage": self.settings.service_name,
                        "topic": tp.topic,
                        "partition": str(tp.partition),
                    },
                )
            )
        return observations

    def attach(self, pipeline: Pipeline) -> None:
        """Run the pipeline as an agent over its source topics."""
        topic = self.app.topic(*pipeline.sources, key_serializer="raw", value_serializer="raw")
        producer, crash = self._producer, self._crash
        linger, hold = self.settings.kafka.batch_linger_s, self.settings.kafka.batch_hold_s

        async def batched(stream: Any) -> None:
            manual = stream.noack()
            batch = _Batch(pipeline, producer, crash, manual.ack, hold)
            async for event in manual.events():
                await batch.add(event, pipeline.max_batch, linger)

        async def one_by_one(stream: Any) -> None:
            async for event in stream.events():
                try:
                    await pipeline.process([_record(event)], producer)
                except BaseException as exc:  # noqa: BLE001  (any failure must stop the process)
                    crash(f"{pipeline.name}: {type(exc).__name__}: {exc}")

        body = batched if pipeline.max_batch > 1 else one_by_one
        body.__name__ = body.__qualname__ = pipeline.name.replace("-", "_").replace(".", "_")
        self.app.agent(topic, name=pipeline.name, concurrency=pipeline.concurrency)(body)

    def on_start(self, hook: Callable[[], Awaitable[Any]]) -> None:
        """Run ``hook()`` as a task of the worker once it has started."""

        async def task() -> None:
            await hook()

        task.__name__ = task.__qualname__ = getattr(hook, "__name__", "hook")
        self.app.task(task)

    def worker(self, loglevel: str = "warning") -> faust.Worker:
        """The faust worker for this bus, leaving logging as :mod:`semnexus_shared.logs` set it.

        By default faust's worker reconfigures logging and, for its terminal
        spinner, sets the root logger to DEBUG with a handler of its own: every
        aiokafka and faust debug call then builds a record (a few percent of a
        busy service's CPU) and the spinner writes cursor escapes into the JSON
        log stream.
        """
        worker = faust.Worker(
            self.app,
            loglevel=loglevel,
            quiet=True,
            redirect_stdouts=False,
            override_logging=False,
        )
        worker.spinner = None
        return worker

    def run(self, loglevel: str = "warning") -> NoReturn:
        """Start the faust worker in this process; returns only by exiting."""
        self.worker(loglevel).execute_from_commandline()
        raise SystemExit(0)  # pragma: no cover  (execute_from_commandline exits)
