"""A clock that moves only when a test says so, for the simulator and the services alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class ManualClock:
    """Monotonic seconds for the simulator, UTC ``now`` (or calling it) for the services."""

    def __init__(self) -> None:
        self.seconds = 1000.0
        self.origin = datetime(2026, 1, 1, tzinfo=UTC)

    def monotonic(self) -> float:
        """The simulator's monotonic reading."""
        return self.seconds

    def now(self) -> datetime:
        """UTC wall time moving with the monotonic reading."""
        return self.origin + timedelta(seconds=self.seconds - 1000.0)

    def __call__(self) -> datetime:
        """The services' clock: UTC now."""
        return self.now()

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.seconds += seconds
