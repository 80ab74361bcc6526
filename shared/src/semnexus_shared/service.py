"""How every SemNexus service process starts: one function, the same for all four.

A service's ``__main__`` builds its settings and adapters and calls
:func:`run_service` with a ``build`` function that returns its pipelines (and
optionally the views and background services it needs). Logging, tracing,
the codec, topic names and the Kafka bus are set up here once, so the four
services differ only in their decisions.
"""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from semnexus_shared.config import ServiceSettings
from semnexus_shared.logs import configure_logging
from semnexus_shared.metrics import configure_metrics
from semnexus_shared.serde import Codec, SchemaRegistry
from semnexus_shared.stream import Pipeline
from semnexus_shared.topics import TopicNames
from semnexus_shared.tracing import configure_tracing


@dataclass(frozen=True)
class ServiceContext:
    """What a service's ``build`` function gets: settings, codec, topic names."""

    settings: ServiceSettings
    codec: Codec
    topics: TopicNames

    def pipeline(self, **kwargs: Any) -> Pipeline:
        """A :class:`Pipeline` with this service's codec and dead-letter topic filled in."""
        kwargs.setdefault("codec", self.codec)
        kwargs.setdefault("deadletter_topic", self.topics.deadletter)
        kwargs.setdefault("name", self.settings.service_name)
        return Pipeline(**kwargs)


@dataclass
class Wiring:
    """What ``build`` returns: pipelines, plus coroutines to start beside them.

    ``on_start`` coroutine functions run as tasks once the worker is up: views
    that follow compacted topics, an HTTP report server. They end with the
    process.
    """

    pipelines: Sequence[Pipeline]
    on_start: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)


def context_for(settings: ServiceSettings) -> ServiceContext:
    """Codec and topic names for these settings (schemas parsed once, here)."""
    codec = Codec(
        SchemaRegistry.load(settings.schemas_dir), max_message_bytes=settings.limits.max_event_bytes
    )
    return ServiceContext(settings=settings, codec=codec, topics=TopicNames(settings.topics))


def run_service(settings: ServiceSettings, build: Callable[[ServiceContext], Wiring]) -> NoReturn:
    """Configure telemetry, wire the service on the Kafka bus, and run until stopped."""
    from semnexus_shared.stream.kafka import FaustBus  # noqa: PLC0415  (faust only here)

    configure_logging(settings.log, settings.service_name)
    configure_tracing(settings.telemetry, settings.service_name)
    configure_metrics(settings.telemetry, settings.service_name)
    wiring = build(context_for(settings))
    bus = FaustBus(settings)
    for pipeline in wiring.pipelines:
        bus.attach(pipeline)
    for hook in wiring.on_start:
        bus.on_start(hook)
    # What exists now (libraries, schemas, models: about 160,000 objects in
    # cache-lookup) lives as long as the process. Frozen, it is left out of the
    # collector's full passes, which otherwise stopped the event loop for 70-120 ms
    # every few seconds under load (BENCHMARKS.md).
    gc.collect()
    gc.freeze()
    bus.run(loglevel="warning")
