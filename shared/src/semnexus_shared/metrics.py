"""OpenTelemetry metrics, exposed for Prometheus scraping.

:func:`configure_metrics` installs a meter provider whose readings are served
on ``/metrics`` at ``telemetry.metrics_port`` (no port: metrics are recorded
but not exposed, which is what tests use). The runner records, per stage:

- ``semnexus_events_handled_total{stage, topic, outcome}``
- ``semnexus_event_latency_seconds{stage}`` (histogram)
- ``semnexus_consumer_lag{stage, topic, partition}`` (gauge, from the consumer's
  highwater and committed offsets)

Services add their own instruments through :func:`meter` (cache hits and
misses, provider latency and errors, failovers, cost).
"""

from __future__ import annotations

from opentelemetry import metrics
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource

from semnexus_shared.config import TelemetrySettings


def configure_metrics(settings: TelemetrySettings, service: str) -> MeterProvider:
    """Install the global meter provider; serve ``/metrics`` when a port is set."""
    readers = []
    if settings.metrics_port:
        # Adapter imports: prometheus only where metrics are exposed.
        from opentelemetry.exporter.prometheus import PrometheusMetricReader  # noqa: PLC0415
        from prometheus_client import start_http_server  # noqa: PLC0415

        start_http_server(settings.metrics_port, addr=settings.metrics_host)
        readers.append(PrometheusMetricReader())
    provider = MeterProvider(
        metric_readers=readers, resource=Resource.create({"service.name": service})
    )
    metrics.set_meter_provider(provider)
    return provider


def meter(name: str = "semnexus") -> Meter:
    """The meter instruments are created on (a no-op until configured)."""
    return metrics.get_meter(name)
