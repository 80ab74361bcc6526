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

import ssl
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Section):
    """Where the brokers are, how to authenticate, and how every client behaves.

    Every Kafka client of SemNexus (the faust bus, the app client, views, the
    CLI, the ledger's rebuild, topic admin) connects with :meth:`client_args`,
    so one set of variables points all of them at a secured cluster.
    """

    bootstrap: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    # SASL only; None means PLAIN (Confluent Cloud); SCRAM for MSK and most self-run clusters.
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    # SSL and SASL_SSL: the CA bundle that signed the brokers' certificates
    # (None: the system's trust store).
    ssl_cafile: Path | None = None
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

    @model_validator(mode="after")
    def _auth_is_complete(self) -> KafkaSettings:
        sasl = self.security_protocol.startswith("SASL_")
        if sasl and (self.sasl_username is None or self.sasl_password is None):
            raise ValueError(
                f"kafka.security_protocol {self.security_protocol} needs kafka.sasl_username "
                "and kafka.sasl_password (SEMNEXUS_KAFKA__SASL_USERNAME, __SASL_PASSWORD)"
            )
        given = [
            name
            for name in ("sasl_mechanism", "sasl_username", "sasl_password")
            if getattr(self, name) is not None
        ]
        if given and not sasl:
            raise ValueError(
                f"kafka.{given[0]} is set but kafka.security_protocol is "
                f"{self.security_protocol}, which sends no credentials: set it to SASL_SSL "
                "(or SASL_PLAINTEXT)"
            )
        if self.ssl_cafile is not None and not self.uses_tls:
            raise ValueError(
                f"kafka.ssl_cafile is set but kafka.security_protocol is "
                f"{self.security_protocol}, which does not use TLS: set it to SSL or SASL_SSL"
            )
        return self

    @property
    def sasl_mechanism_in_use(self) -> str:
        """The SASL mechanism clients log in with (PLAIN when none is named)."""
        return self.sasl_mechanism or "PLAIN"

    @property
    def uses_tls(self) -> bool:
        """Whether connections to the brokers are encrypted."""
        return self.security_protocol in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for SSL and SASL_SSL (reads :attr:`ssl_cafile`), else ``None``."""
        if not self.uses_tls:
            return None
        cafile = str(self.ssl_cafile) if self.ssl_cafile is not None else None
        return ssl.create_default_context(cafile=cafile)

    def client_args(self) -> dict[str, Any]:
        """Keyword arguments that connect any aiokafka client to these brokers."""
        args: dict[str, Any] = {
            "bootstrap_servers": self.servers,
            "security_protocol": self.security_protocol,
        }
        if self.uses_tls:
            args["ssl_context"] = self.ssl_context()
        if self.sasl_password is not None:
            args["sasl_mechanism"] = self.sasl_mechanism_in_use
            args["sasl_plain_username"] = self.sasl_username
            args["sasl_plain_password"] = self.sasl_password.get_secret_value()
        return args

    def consumer_args(self) -> dict[str, Any]:
        """:meth:`client_args` plus the consumer-only settings (the fetch wait)."""
        return {**self.client_args(), "fetch_max_wait_ms": self.fetch_max_wait_ms}

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
