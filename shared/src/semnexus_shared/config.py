"""Settings shared by every SemNexus process.

One frozen pydantic-settings object per process, built once in ``main()`` and
passed down; nothing reads the environment anywhere else. Every variable has
the ``SEMNEXUS_`` prefix and ``__`` nests, for example
``SEMNEXUS_KAFKA__BOOTSTRAP=10.0.0.5:9092`` or ``SEMNEXUS_TELEMETRY__ENABLED=false``.

A service extends :class:`ServiceSettings` with its own fields; the shared
sections (Kafka, topics, telemetry, logging, limits) keep the same names in
every service, so one ``.env`` can configure the whole pipeline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Section):
    """Where the brokers are and how every producer and consumer behaves."""

    bootstrap: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    # Offsets are committed this often, always only up to fully produced events.
    commit_interval_s: float = 1.0
    session_timeout_s: float = 30.0
    # A partition's events wait at most this long to fill a micro-batch.
    batch_linger_s: float = 0.005
    # A micro-batch left waiting only for coalesced twins keeps its agent this
    # much longer, then lets the agent's next batch run (see stream.kafka._Batch).
    batch_hold_s: float = Field(default=0.25, ge=0.0)
    max_poll_interval_s: float = 300.0
    request_timeout_s: float = 30.0
    # How long a producer waits for more records before it sends: 0 sends at
    # once, and records that come while a send is in flight still share the next.
    producer_linger_s: float = Field(default=0.0, ge=0.0)
    # How long the broker may hold a consumer's fetch that finds nothing new.
    # While one fetch is out to a broker, aiokafka sends that broker no other,
    # and a fetch leaves out the partitions whose records the service has not
    # taken yet; records that then arrive there wait for it (faust's 1.5 s made
    # whole closed-loop windows wait 1.4 s). See stream.kafka._ConsumerThread.
    fetch_max_wait_s: float = Field(default=0.1, gt=0.0)

    @property
    def fetch_max_wait_ms(self) -> int:
        """:attr:`fetch_max_wait_s` in the unit aiokafka takes."""
        return round(self.fetch_max_wait_s * 1000)

    @property
    def servers(self) -> list[str]:
        """The bootstrap list as host:port strings."""
        return [s.strip() for s in self.bootstrap.split(",") if s.strip()]


class TopicSettings(_Section):
    """Topic naming: a prefix isolates one pipeline (a test, a region) from another."""

    prefix: str = ""
    replication_factor: int = 1
    providers: tuple[str, ...] = ("openai", "anthropic", "llama")


class TelemetrySettings(_Section):
    """OpenTelemetry export. Prompt and answer text stay out of spans unless enabled."""

    enabled: bool = True
    otlp_endpoint: str = "http://127.0.0.1:4318"
    capture_content: bool = False
    # Prometheus scrape endpoint (/metrics); None records metrics without serving them.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"


class LogSettings(_Section):
    """structlog JSON lines on stdout."""

    level: str = "INFO"
    json_lines: bool = True


class LimitSettings(_Section):
    """Bounds that keep bad input from costing memory or time."""

    max_event_bytes: int = 1_048_576


class ServiceSettings(BaseSettings):
    """The sections every service has; services subclass and add their own."""

    model_config = SettingsConfigDict(
        env_prefix="SEMNEXUS_",
        env_nested_delimiter="__",
        frozen=True,
        extra="ignore",
    )

    service_name: str = "semnexus"
    # Where the Avro schema files are; None finds the repository's schemas/.
    schemas_dir: Path | None = None
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    log: LogSettings = Field(default_factory=LogSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)

    # A service whose latency or throughput wants another micro-batch linger than
    # KafkaSettings' default sets this; SEMNEXUS_KAFKA__BATCH_LINGER_S still wins.
    default_batch_linger_s: ClassVar[float | None] = None

    @model_validator(mode="before")
    @classmethod
    def _service_linger(cls, data: Any) -> Any:
        linger = cls.default_batch_linger_s
        if linger is None or not isinstance(data, dict):
            return data
        kafka = data.get("kafka")
        if kafka is None:
            return {**data, "kafka": {"batch_linger_s": linger}}
        if isinstance(kafka, dict) and "batch_linger_s" not in kafka:
            return {**data, "kafka": {**kafka, "batch_linger_s": linger}}
        return data
