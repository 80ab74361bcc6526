"""OpenTelemetry tracing, with W3C trace context carried in Kafka headers.

Each service calls :func:`configure_tracing` once in ``main()``; spans leave
over OTLP/HTTP in batches, so exporting never blocks an event. Across a Kafka
hop the producer writes ``traceparent`` (and ``tracestate``) headers with
:func:`inject_headers`, and the consumer continues the trace from them with
:func:`extract_context`, so one user request is one trace however many
services and failovers it crosses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from semnexus_shared.config import TelemetrySettings

Headers = Sequence[tuple[str, bytes]]

_PROPAGATOR = TraceContextTextMapPropagator()


class _HeaderGetter(Getter[Headers]):
    def get(self, carrier: Headers, key: str) -> list[str] | None:
        values = [v.decode("latin-1") for k, v in carrier if k == key]
        return values or None

    def keys(self, carrier: Headers) -> list[str]:
        return [k for k, _ in carrier]


class _HeaderSetter(Setter[list[tuple[str, bytes]]]):
    def set(self, carrier: list[tuple[str, bytes]], key: str, value: str) -> None:
        carrier[:] = [(k, v) for k, v in carrier if k != key]
        carrier.append((key, value.encode("latin-1")))


def configure_tracing(settings: TelemetrySettings, service: str) -> TracerProvider | None:
    """Install the global tracer provider exporting to OTLP/HTTP; None when disabled."""
    if not settings.enabled:
        return None
    # Imported here: the exporter pulls in protobuf, which tests without
    # telemetry never need.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint.rstrip("/") + "/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    trace.set_tracer_provider(provider)
    return provider


def extract_context(headers: Headers) -> otel_context.Context:
    """The trace context a producer put in these headers (empty context if none)."""
    return _PROPAGATOR.extract(headers, getter=_HeaderGetter())


def inject_headers(
    headers: Iterable[tuple[str, bytes]] = (), ctx: otel_context.Context | None = None
) -> list[tuple[str, bytes]]:
    """Headers plus ``traceparent`` for the current (or given) span's context."""
    carrier = list(headers)
    _PROPAGATOR.inject(carrier, context=ctx, setter=_HeaderSetter())
    return carrier


def trace_id_of(span: trace.Span) -> str:
    """The span's trace id as Jaeger shows it (32 hex digits), or '' when not sampled."""
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""
