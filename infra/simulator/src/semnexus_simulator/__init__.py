"""SemNexus provider simulator: OpenAI, Anthropic and OpenAI-compatible wire
formats over HTTP, with deterministic answers, rate-limit bookkeeping, latency
and scripted faults, steered at run time through ``/_sim``.

Public names: ``create_app``, ``SimulatorConfig``, ``ProviderConfig``,
``Faults``, ``LatencyConfig``, ``RateLimitConfig``, ``Wire``, ``load_config``,
``ConfigError``, ``SimulatorError``. Run it with ``python -m semnexus_simulator``.
"""

from semnexus_simulator.app import create_app
from semnexus_simulator.config import (
    Faults,
    LatencyConfig,
    ProviderConfig,
    RateLimitConfig,
    SimulatorConfig,
    Wire,
    load_config,
)
from semnexus_simulator.errors import ConfigError, SimulatorError

__all__ = [
    "ConfigError",
    "Faults",
    "LatencyConfig",
    "ProviderConfig",
    "RateLimitConfig",
    "SimulatorConfig",
    "SimulatorError",
    "Wire",
    "create_app",
    "load_config",
]
