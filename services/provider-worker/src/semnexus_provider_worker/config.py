"""Settings of the provider-worker, and the providers file it serves from.

Contract: :class:`WorkerSettings` is built once in ``main()`` from
``SEMNEXUS_*`` variables (for example ``SEMNEXUS_CONCURRENCY=256``,
``SEMNEXUS_SERVE='["openai"]'``, ``SEMNEXUS_PROVIDERS_FILE=/etc/semnexus/providers.yaml``).
:func:`load_providers` reads the ``providers`` section of the providers file
(the ``aliases`` section is the router's) and resolves each provider's API key
from the environment variable its ``api_key_env`` names, into a ``SecretStr``
that is never logged. Keys are read here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from semnexus_provider_worker.errors import CatalogError
from semnexus_shared.config import ServiceSettings

__all__ = [
    "HealthSettings",
    "Provider",
    "ProviderKind",
    "ProviderSettings",
    "RateLimitFloor",
    "Timeouts",
    "WorkerSettings",
    "load_providers",
]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ProviderKind(StrEnum):
    """The wire format a provider speaks."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    OPENAI_COMPATIBLE = "openai_compatible"


class Timeouts(_Section):
    """Upper bounds of one call; the request's deadline lowers each of them."""

    connect_s: float = Field(default=2.0, gt=0)
    read_s: float = Field(default=30.0, gt=0)
    write_s: float = Field(default=10.0, gt=0)
    pool_s: float = Field(default=5.0, gt=0)
    total_s: float = Field(default=60.0, gt=0)


class RateLimitFloor(_Section):
    """Below these remaining counts the provider is reported cooling down until its reset."""

    requests: int = Field(default=0, ge=0)
    tokens: int = Field(default=0, ge=0)


class ProviderSettings(_Section):
    """One provider as the providers file declares it (no secret in here)."""

    kind: ProviderKind
    base_url: str
    api_key_env: str | None = None
    timeouts: Timeouts = Timeouts()
    max_in_flight: int = Field(default=128, ge=1)
    stream: bool = False
    stall_timeout_s: float = Field(default=10.0, gt=0)
    rate_limit_floor: RateLimitFloor = RateLimitFloor()
    anthropic_version: str = "2023-06-01"
    default_max_tokens: int = Field(default=1024, ge=1)


@dataclass(frozen=True, slots=True)
class Provider:
    """A provider ready to call: its settings and its resolved API key."""

    name: str
    settings: ProviderSettings
    api_key: SecretStr | None


class _ProvidersFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")  # aliases belong to the router

    providers: dict[str, ProviderSettings]


class HealthSettings(_Section):
    """Cooldown clamps and the circuit breaker."""

    # Any cooldown a provider asks for is clamped into [min, max]: a bogus or
    # negative header must neither cause a hot retry loop nor park a provider.
    min_cooldown_s: float = Field(default=1.0, gt=0)
    max_cooldown_s: float = Field(default=300.0, gt=0)
    default_cooldown_s: float = Field(default=10.0, gt=0)
    overloaded_cooldown_s: float = Field(default=5.0, gt=0)
    failure_threshold: int = Field(default=5, ge=1)
    circuit_open_s: float = Field(default=30.0, gt=0)
    # A new health event is published only when the state changes or the
    # cooldown moves by more than this; hundreds of 429s make one event.
    republish_margin_s: float = Field(default=1.0, ge=0)


class WorkerSettings(ServiceSettings):
    """Everything the provider-worker process is configured with."""

    service_name: str = "provider-worker"
    providers_file: Path = Path("infra/providers.yaml")
    # Providers this process serves; empty means every provider in topics.providers.
    serve: tuple[str, ...] = ()
    concurrency: int = Field(default=128, ge=1)
    max_attempts: int = Field(default=3, ge=1)
    reply_topics_allowed: tuple[str, ...] = ()
    exhausted_retry_ms: int = Field(default=1000, ge=0)
    health: HealthSettings = Field(default_factory=HealthSettings)

    def served(self) -> tuple[str, ...]:
        """The provider names this process consumes calls for."""
        return self.serve or self.topics.providers


def load_providers(
    path: Path, environ: Mapping[str, str], names: tuple[str, ...] | None = None
) -> dict[str, Provider]:
    """The providers of ``path`` (only ``names`` if given), keys resolved from ``environ``."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        declared = _ProvidersFile.model_validate(data or {}).providers
    except (OSError, ValueError, ValidationError, yaml.YAMLError) as exc:
        raise CatalogError(f"cannot load providers file {path}: {exc}") from exc
    wanted = names if names is not None else tuple(declared)
    missing = [n for n in wanted if n not in declared]
    if missing:
        raise CatalogError(f"{path} declares no provider named {', '.join(missing)}")
    out: dict[str, Provider] = {}
    for name in wanted:
        settings = declared[name]
        key = environ.get(settings.api_key_env) if settings.api_key_env else None
        out[name] = Provider(name, settings, SecretStr(key) if key else None)
    return out
