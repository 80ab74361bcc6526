"""The simulator's configuration: which providers it serves and how they behave.

Contract: ``SimulatorConfig`` is the whole, validated configuration, built once
in ``main()`` (from a YAML or JSON file via ``load_config``, or the defaults)
and passed down. Every model forbids unknown keys, so a typo in a config file
or in a control-API body is an error, not a silently ignored setting. The same
``Faults``, ``LatencyConfig`` and ``RateLimitConfig`` models are the JSON bodies
of the control API.

File format (YAML or JSON, the same keys)::

    seed: 7                       # seeds fault dice and latency samples
    providers:
      openai:                     # served under /openai
        wire: openai              # openai | anthropic | openai_compatible
        auth: keys                # none | any (any non-empty key) | keys
        api_keys: [sk-test]
        models: [gpt-4o-mini]
        latency: {kind: lognormal, median_ms: 300, p99_ms: 1500, inter_chunk_ms: 10}
        rate_limit: {requests: 500, tokens: 200000, window_s: 60}
        faults: {server_error: {rate: 0.05, status: 502}}

Raises ``ConfigError`` (see ``errors``) when a file cannot be read or parsed.
"""

from __future__ import annotations

import json
import math
import re
from enum import StrEnum
from pathlib import Path
from typing import Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from semnexus_simulator.errors import ConfigError

_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Wire(StrEnum):
    """The wire format a simulated provider speaks."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    OPENAI_COMPATIBLE = "openai_compatible"


class LatencyConfig(_Model):
    """How long a provider takes: before the response, and between stream chunks."""

    kind: Literal["fixed", "lognormal"] = "fixed"
    ms: float = Field(default=0.0, ge=0)
    median_ms: float | None = Field(default=None, gt=0)
    p99_ms: float | None = Field(default=None, gt=0)
    inter_chunk_ms: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _lognormal_needs_quantiles(self) -> Self:
        if self.kind == "lognormal":
            if self.median_ms is None or self.p99_ms is None:
                raise ValueError("lognormal latency needs median_ms and p99_ms")
            if self.p99_ms < self.median_ms:
                raise ValueError("p99_ms must be at least median_ms")
        return self

    @property
    def sigma(self) -> float:
        """The lognormal shape parameter that puts p99 where configured."""
        if self.median_ms is None or self.p99_ms is None:
            return 0.0
        z99 = 2.3263478740408408  # standard normal 99th percentile
        return math.log(self.p99_ms / self.median_ms) / z99


class RateLimitConfig(_Model):
    """A fixed-window budget of requests and tokens (input plus output)."""

    requests: int = Field(default=500, ge=1)
    tokens: int = Field(default=200_000, ge=1)
    window_s: float = Field(default=60.0, gt=0)


class RateLimitFault(_Model):
    """Answer 429 for ``for_s`` seconds from when the fault was set."""

    for_s: float = Field(gt=0)
    retry_after_s: float = Field(default=1.0, ge=0)
    retry_after_ms: bool = False


class ServerErrorFault(_Model):
    """Answer ``status`` (a 5xx) with probability ``rate``."""

    rate: float = Field(ge=0, le=1)
    status: int = Field(default=500, ge=500, le=599)


class OverloadedFault(_Model):
    """Answer overloaded (529 on Anthropic, 503 on OpenAI wires) with probability ``rate``."""

    rate: float = Field(default=1.0, ge=0, le=1)


class HangFault(_Model):
    """Accept, then answer nothing for ``for_s`` seconds (None: until the client leaves)."""

    for_s: float | None = Field(default=None, gt=0)
    rate: float = Field(default=1.0, ge=0, le=1)


class StallFault(_Model):
    """A stream sends ``after_chunks`` events, then waits ``for_s`` (None: until disconnect)."""

    after_chunks: int = Field(ge=0)
    for_s: float | None = Field(default=None, gt=0)


class BogusHeadersFault(_Model):
    """Rate-limit and retry-after headers carry unusable values."""

    mode: Literal["garbage", "negative", "huge"] = "garbage"


class ForcedStatusFault(_Model):
    """Answer ``status`` in the provider's error format for the next ``count`` calls (None: all)."""

    status: int = Field(ge=400, le=599)
    count: int | None = Field(default=None, ge=1)


class Faults(_Model):
    """The scripted faults of one provider; every kind is optional and they combine."""

    rate_limit: RateLimitFault | None = None
    server_error: ServerErrorFault | None = None
    overloaded: OverloadedFault | None = None
    hang: HangFault | None = None
    stall_stream: StallFault | None = None
    bogus_headers: BogusHeadersFault | None = None
    forced_status: ForcedStatusFault | None = None


class ProviderConfig(_Model):
    """One simulated provider."""

    wire: Wire
    auth: Literal["none", "any", "keys"] = "any"
    api_keys: tuple[SecretStr, ...] = ()
    models: tuple[str, ...] = ()
    latency: LatencyConfig = LatencyConfig()
    rate_limit: RateLimitConfig | None = None
    faults: Faults = Faults()

    @model_validator(mode="after")
    def _keys_mode_needs_keys(self) -> Self:
        if self.auth == "keys" and not self.api_keys:
            raise ValueError("auth 'keys' needs at least one entry in api_keys")
        return self


def _default_providers() -> dict[str, ProviderConfig]:
    return {
        "openai": ProviderConfig(
            wire=Wire.OPENAI,
            models=("gpt-4o-mini", "gpt-4o"),
            rate_limit=RateLimitConfig(requests=500, tokens=200_000, window_s=60),
        ),
        "anthropic": ProviderConfig(
            wire=Wire.ANTHROPIC,
            models=("claude-3-5-haiku-latest", "claude-sonnet-4-0"),
            rate_limit=RateLimitConfig(requests=50, tokens=50_000, window_s=60),
        ),
        "llama": ProviderConfig(
            wire=Wire.OPENAI_COMPATIBLE,
            auth="none",
            models=("meta-llama/Llama-3.1-8B-Instruct",),
        ),
    }


class SimulatorConfig(_Model):
    """Every provider the simulator serves, by the path prefix it is mounted under."""

    seed: int = 0
    providers: dict[str, ProviderConfig] = Field(default_factory=_default_providers)

    @model_validator(mode="after")
    def _names_are_path_segments(self) -> Self:
        for name in self.providers:
            if not re.match(_NAME_PATTERN, name) or name == "_sim":
                raise ValueError(f"provider name {name!r} must match {_NAME_PATTERN}")
        return self


def load_config(path: Path) -> SimulatorConfig:
    """Read and validate a YAML (``.yaml``/``.yml``) or JSON configuration file."""
    try:
        raw = path.read_text(encoding="utf-8")
        data: object = yaml.safe_load(raw) if path.suffix in {".yaml", ".yml"} else json.loads(raw)
        return SimulatorConfig.model_validate(data or {})
    except (OSError, ValueError, ValidationError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot load simulator config {path}: {exc}") from exc
