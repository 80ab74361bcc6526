"""The live state of one simulated provider.

Contract: ``ProviderState`` holds what the control API can change at run time
(faults, latency, rate-limit budget) next to what calls change (the rate
window, the prompts seen, which make later identical prompts report cached
input tokens). ``reset()`` returns it to its configuration with no faults, a
fresh rate window and no prompts seen. Each provider has its own RNG, seeded
from the simulator seed and the provider name, for latency samples and fault
dice. ``Simulator`` is every provider plus the shared ``CallLog``.
"""

from __future__ import annotations

import hashlib
import hmac
import random

from semnexus_simulator.calls import CallLog
from semnexus_simulator.clock import Clock
from semnexus_simulator.config import (
    Faults,
    LatencyConfig,
    ProviderConfig,
    RateLimitConfig,
    SimulatorConfig,
)
from semnexus_simulator.faults import FaultState
from semnexus_simulator.ratelimit import RateWindow


class ProviderState:
    """One provider: its configuration and everything that changes while serving."""

    def __init__(self, name: str, config: ProviderConfig, clock: Clock, seed: int) -> None:
        self.name = name
        self.config = config
        self._clock = clock
        digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
        self.rng = random.Random(int.from_bytes(digest[:8], "big"))
        self.faults = FaultState(config.faults, clock, self.rng)
        self.latency = config.latency
        self.window: RateWindow | None = None
        self.set_rate_limit(config.rate_limit)
        self.seen_prompts: set[str] = set()

    @property
    def wire(self) -> str:
        """The wire format's name."""
        return self.config.wire.value

    def accepts(self, key: str | None) -> bool:
        """Whether this API key may call the provider."""
        if self.config.auth == "none":
            return True
        if not key:
            return False
        if self.config.auth == "any":
            return True
        return any(
            hmac.compare_digest(key.encode(), allowed.get_secret_value().encode())
            for allowed in self.config.api_keys
        )

    def set_rate_limit(self, config: RateLimitConfig | None) -> None:
        """Replace the budget (None: no bookkeeping, no headers) with a fresh window."""
        self.window = RateWindow(config, self._clock) if config is not None else None

    def set_latency(self, config: LatencyConfig) -> None:
        """Replace the latency distribution."""
        self.latency = config

    def set_faults(self, faults: Faults) -> None:
        """Replace the fault plan, restarting its timers."""
        self.faults.set(faults)

    def first_byte_delay_s(self) -> float:
        """A latency sample, in seconds, to wait before answering."""
        latency = self.latency
        if latency.kind == "lognormal" and latency.median_ms is not None:
            return latency.median_ms * self.rng.lognormvariate(0.0, latency.sigma) / 1000
        return latency.ms / 1000

    def inter_chunk_delay_s(self) -> float:
        """Seconds to wait between two stream chunks."""
        return self.latency.inter_chunk_ms / 1000

    def remember(self, key: str) -> bool:
        """Record a prompt; true when it had been seen before."""
        seen = key in self.seen_prompts
        self.seen_prompts.add(key)
        return seen

    def reset(self) -> None:
        """Back to the configuration, without faults, with a fresh window."""
        self.faults.clear()
        self.latency = self.config.latency
        self.set_rate_limit(self.config.rate_limit)
        self.seen_prompts.clear()


class Simulator:
    """Every provider's state and the call log: what the control API acts on."""

    def __init__(self, config: SimulatorConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.providers = {
            name: ProviderState(name, provider, clock, config.seed)
            for name, provider in config.providers.items()
        }
        self.calls = CallLog(self.providers)

    def reset(self) -> None:
        """Zero the call counts and return every provider to its configuration, fault-free."""
        self.calls.reset()
        for provider in self.providers.values():
            provider.reset()
