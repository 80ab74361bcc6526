"""Header parsing, cooldown clamps, the circuit breaker and the rate-limit floor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from semnexus_provider_worker.calls import Answer, Completed, Failed, RateLimits
from semnexus_provider_worker.config import HealthSettings, RateLimitFloor
from semnexus_provider_worker.health import HealthTracker
from semnexus_provider_worker.ratelimits import parse_duration, read_limits
from semnexus_shared.events import AttemptOutcome, FinishReason, HealthState, Usage

from .conftest import ManualClock

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("20ms", 0.02),
        ("1.5s", 1.5),
        ("6m0s", 360.0),
        ("1h2m3s", 3723.0),
        ("2m", 120.0),
        ("soon-ish", None),
        ("-6m0s", None),
        ("9999999h0m0s", None),
        ("", None),
    ],
)
def test_openai_durations(text: str, seconds: float | None) -> None:
    """OpenAI reset durations parse to seconds; garbage, negative and absurd ones to None."""
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_retry_after_forms() -> None:
    """retry-after-ms wins over retry-after; retry-after may be seconds or an HTTP date."""
    assert read_limits({"retry-after-ms": "1500", "retry-after": "9"}, NOW).retry_after_s == 1.5
    assert read_limits({"retry-after": "7"}, NOW).retry_after_s == 7.0
    date = "Thu, 01 Jan 2026 12:00:30 GMT"
    assert read_limits({"retry-after": date}, NOW).retry_after_s == 30.0
    assert read_limits({"retry-after": "-5"}, NOW).retry_after_s is None


def test_anthropic_headers() -> None:
    """Anthropic counts and RFC 3339 resets are read; the smallest token count wins."""
    limits = read_limits(
        {
            "anthropic-ratelimit-requests-remaining": "3",
            "anthropic-ratelimit-requests-reset": "2026-01-01T12:00:20Z",
            "anthropic-ratelimit-tokens-remaining": "900",
            "anthropic-ratelimit-input-tokens-remaining": "400",
            "anthropic-ratelimit-tokens-reset": "2026-01-01T12:01:00Z",
        },
        NOW,
    )
    assert (limits.remaining_requests, limits.remaining_tokens) == (3, 400)
    assert (limits.reset_requests_s, limits.reset_tokens_s) == (20.0, 60.0)


def failed(outcome: AttemptOutcome, **limits: float) -> Failed:
    """A failure with the given parsed limits."""
    return Failed(outcome, outcome.value, 5, 500, RateLimits(**limits))  # type: ignore[arg-type]


def completed(**limits: float) -> Completed:
    """A success with the given parsed limits."""
    answer = Answer("hi", FinishReason.STOP, Usage(input_tokens=1, output_tokens=1), "m")
    return Completed(answer, 200, 5, RateLimits(**limits))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("asked", "got"), [(30.0, 30.0), (0.0, 1.0), (None, 10.0), (100000.0, 300.0)]
)
def test_429_cooldown_is_clamped(asked: float | None, got: float) -> None:
    """A 429 cools the provider for its retry-after, clamped into [min, max]."""
    tracker = HealthTracker(HealthSettings(), lambda: NOW)
    event = tracker.observe(
        "openai",
        failed(AttemptOutcome.RATE_LIMITED, retry_after_s=asked)
        if asked is not None
        else failed(AttemptOutcome.RATE_LIMITED),
    )
    assert event is not None
    assert event.state is HealthState.COOLING_DOWN
    assert event.cooldown_until == NOW + timedelta(seconds=got)
    assert tracker.blocked_until("openai") == NOW + timedelta(seconds=got)


def test_429_without_retry_after_uses_the_exhausted_reset() -> None:
    """No retry-after: the reset of the exhausted limit decides the cooldown."""
    tracker = HealthTracker(HealthSettings(), lambda: NOW)
    event = tracker.observe(
        "openai",
        failed(
            AttemptOutcome.RATE_LIMITED,
            remaining_requests=5,
            reset_requests_s=2,
            remaining_tokens=0,
            reset_tokens_s=45,
        ),
    )
    assert event is not None
    assert event.cooldown_until == NOW + timedelta(seconds=45)


def test_repeated_429s_publish_once() -> None:
    """Hundreds of 429s with the same cooldown make one health event."""
    tracker = HealthTracker(HealthSettings(), lambda: NOW)
    events = [
        tracker.observe("openai", failed(AttemptOutcome.RATE_LIMITED, retry_after_s=30))
        for _ in range(200)
    ]
    assert sum(e is not None for e in events) == 1


def test_circuit_opens_after_repeated_5xx_and_closes_on_success() -> None:
    """N server errors in a row open the circuit; after it, one success closes it."""
    clock = ManualClock()
    settings = HealthSettings(failure_threshold=3, circuit_open_s=30)
    tracker = HealthTracker(settings, clock)
    events = [tracker.observe("llama", failed(AttemptOutcome.SERVER_ERROR)) for _ in range(3)]
    assert events[:2] == [None, None]
    opened = events[2]
    assert opened is not None
    assert opened.state is HealthState.CIRCUIT_OPEN
    assert opened.cooldown_until == clock() + timedelta(seconds=30)
    assert tracker.blocked_until("llama") is not None
    clock.advance(31)
    assert tracker.blocked_until("llama") is None  # half-open: a call may go through
    closed = tracker.observe("llama", completed())
    assert closed is not None
    assert closed.state is HealthState.HEALTHY


def test_half_open_failure_reopens_at_once() -> None:
    """A failure of the first call after the open period reopens the circuit."""
    clock = ManualClock()
    tracker = HealthTracker(HealthSettings(failure_threshold=2, circuit_open_s=10), clock)
    for _ in range(2):
        tracker.observe("llama", failed(AttemptOutcome.TIMEOUT))
    clock.advance(11)
    event = tracker.observe("llama", failed(AttemptOutcome.TIMEOUT))
    assert event is not None
    assert event.state is HealthState.CIRCUIT_OPEN


def test_remaining_under_the_floor_cools_down_until_reset() -> None:
    """A success leaving fewer requests than the floor reports cooling down until the reset."""
    tracker = HealthTracker(
        HealthSettings(), lambda: NOW, {"openai": RateLimitFloor(requests=5, tokens=1000)}
    )
    assert (
        tracker.observe(
            "openai", completed(remaining_requests=50, remaining_tokens=9000, reset_requests_s=20)
        )
        is None
    )
    event = tracker.observe(
        "openai", completed(remaining_requests=4, remaining_tokens=9000, reset_requests_s=20)
    )
    assert event is not None
    assert event.state is HealthState.COOLING_DOWN
    assert event.cooldown_until == NOW + timedelta(seconds=20)
    assert event.remaining_requests == 4
