"""Reading providers' rate-limit and retry headers into :class:`RateLimits`.

Contract: :func:`read_limits` understands

- ``retry-after-ms`` (milliseconds) and ``retry-after`` (seconds, or an HTTP
  date), the former winning;
- OpenAI's ``x-ratelimit-remaining-{requests,tokens}`` and
  ``x-ratelimit-reset-{requests,tokens}`` durations ("20ms", "1.5s", "6m0s",
  "1h2m3s");
- Anthropic's ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-remaining``
  and ``-reset`` RFC 3339 times (the smallest remaining token count wins).

A value that does not parse, is negative, or is absurd is ``None``: callers
fall back to a default and clamp (see ``health``), so a bogus header can
neither cause a hot retry loop nor park a provider forever. Parsing never
raises.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from semnexus_provider_worker.calls import RateLimits

__all__ = ["parse_count", "parse_duration", "parse_moment", "read_limits"]

_DURATION = re.compile(
    r"^(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m(?!s))?"
    r"(?:(?P<s>\d+(?:\.\d+)?)s)?(?:(?P<ms>\d+(?:\.\d+)?)ms)?$"
)
# Counts beyond this are not real limits (and would not fit an Avro long).
_MAX_COUNT = 2**53
# Seconds beyond this are not real resets (about a year); treated as unusable.
_MAX_SECONDS = 366 * 24 * 3600.0


def _seconds(value: float) -> float | None:
    if math.isfinite(value) and 0 <= value <= _MAX_SECONDS:
        return value
    return None


def parse_count(text: str | None) -> int | None:
    """A non-negative integer header, or ``None``."""
    if text is None:
        return None
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return value if 0 <= value <= _MAX_COUNT else None


def parse_duration(text: str | None) -> float | None:
    """Seconds of an OpenAI-style duration ("20ms", "6m0s"), or ``None``."""
    if not text:
        return None
    match = _DURATION.match(text.strip())
    if match is None or not any(match.groups()):
        return None
    parts = {k: float(v) for k, v in match.groupdict().items() if v is not None}
    total = (
        parts.get("h", 0.0) * 3600
        + parts.get("m", 0.0) * 60
        + parts.get("s", 0.0)
        + parts.get("ms", 0.0) / 1000
    )
    return _seconds(total)


def parse_moment(text: str | None, now: datetime) -> float | None:
    """Seconds from ``now`` until an RFC 3339 time (0 if past), or ``None``."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        delta = (moment - now).total_seconds()
    except OverflowError:  # pragma: no cover - datetime arithmetic stays in range
        return None
    return _seconds(max(delta, 0.0))


def _retry_after(headers: Mapping[str, str], now: datetime) -> float | None:
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            value = _seconds(float(ms) / 1000)
        except ValueError:
            value = None
        if value is not None:
            return value
    text = headers.get("retry-after")
    if text is None:
        return None
    try:
        return _seconds(float(text))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return _seconds(max((moment - now).total_seconds(), 0.0))


def _min(*values: int | None) -> int | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def read_limits(headers: Mapping[str, str], now: datetime) -> RateLimits:
    """Everything usable the headers say about limits; ``headers`` keys lowercase."""
    anthropic = "anthropic-ratelimit-requests-remaining" in headers or any(
        k.startswith("anthropic-ratelimit-") for k in headers
    )
    if anthropic:
        prefix = "anthropic-ratelimit-"
        tokens = ("tokens", "input-tokens", "output-tokens")
        reset_tokens = [parse_moment(headers.get(f"{prefix}{t}-reset"), now) for t in tokens]
        known_resets = [r for r in reset_tokens if r is not None]
        return RateLimits(
            remaining_requests=parse_count(headers.get(f"{prefix}requests-remaining")),
            remaining_tokens=_min(
                *(parse_count(headers.get(f"{prefix}{t}-remaining")) for t in tokens)
            ),
            reset_requests_s=parse_moment(headers.get(f"{prefix}requests-reset"), now),
            reset_tokens_s=max(known_resets) if known_resets else None,
            retry_after_s=_retry_after(headers, now),
        )
    return RateLimits(
        remaining_requests=parse_count(headers.get("x-ratelimit-remaining-requests")),
        remaining_tokens=parse_count(headers.get("x-ratelimit-remaining-tokens")),
        reset_requests_s=parse_duration(headers.get("x-ratelimit-reset-requests")),
        reset_tokens_s=parse_duration(headers.get("x-ratelimit-reset-tokens")),
        retry_after_s=_retry_after(headers, now),
    )
