"""A test service on the real runner: consumes CompletionRequested, emits CacheInvalidated.

Run as a separate process by the Kafka tests (so it can be SIGKILLed)::

    python tests/kafka/echo_worker.py --source P.in --dest P.out --batch 50

It appends each handled request id to ``--handled-log`` (one line each,
flushed) so a test can count repeats after a crash.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

import structlog

from semnexus_shared.config import ServiceSettings
from semnexus_shared.events import CacheInvalidated, CompletionRequested, InvalidationTarget
from semnexus_shared.logs import configure_logging
from semnexus_shared.serde import Codec, SchemaRegistry
from semnexus_shared.stream import Inbound, Pipeline, Route, for_each
from semnexus_shared.stream.kafka import FaustBus
from semnexus_shared.tracing import configure_tracing

log = structlog.get_logger("echo_worker")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", required=True)
    parser.add_argument("--dest", required=True)
    parser.add_argument("--deadletter", required=True)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--handled-log", type=Path)
    args = parser.parse_args()

    settings = ServiceSettings()
    configure_logging(settings.log, settings.service_name)
    configure_tracing(settings.telemetry, settings.service_name)
    handled = args.handled_log.open("a", buffering=1) if args.handled_log else None

    async def echo(inbound: Inbound[CompletionRequested]) -> Sequence[object]:
        if args.delay_ms:
            await asyncio.sleep(args.delay_ms / 1000)
        if handled is not None:
            handled.write(inbound.event.request_id + "\n")
        return [
            CacheInvalidated(
                request_id=inbound.event.request_id,
                tenant_id=inbound.event.tenant_id,
                target=InvalidationTarget.TENANT,
            )
        ]

    bus = FaustBus(settings)
    bus.attach(
        Pipeline(
            name=settings.service_name,
            sources=[args.source],
            handler=for_each(echo),
            routes={CacheInvalidated: Route(args.dest, key=lambda e: e.request_id.encode())},
            codec=Codec(SchemaRegistry.load(), max_message_bytes=settings.limits.max_event_bytes),
            deadletter_topic=args.deadletter,
            event_type=CompletionRequested,
            max_batch=args.batch,
            concurrency=args.concurrency,
        )
    )

    async def report_logging() -> None:
        # What the worker left of logging once started (tests read it from stdout).
        root = logging.getLogger()
        log.warning(
            "worker started",
            root_level=logging.getLevelName(root.getEffectiveLevel()),
            aiokafka_debug=logging.getLogger("aiokafka").isEnabledFor(logging.DEBUG),
            root_handlers=len(root.handlers),
        )

    bus.on_start(report_logging)
    bus.run(loglevel="warning")


if __name__ == "__main__":
    main()
