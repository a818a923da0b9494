"""Argo's ``Backoff`` (``retryStrategy``) and ``rateLimit`` for trigger executions."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

from eventbridge.models.sensor import Backoff, RateLimit
from eventbridge.triggers._policy import parse_go_duration

__all__ = ["RateLimiter", "RetryPlan", "parse_go_duration"]


@dataclass(frozen=True, slots=True)
class RetryPlan:
    """How often and how patiently to run a trigger: ``attempts`` tries, waits growing by ``factor``."""

    attempts: int = 1
    first_delay: float = 1.0
    factor: float = 1.0
    jitter: float = 0.0

    @classmethod
    def from_backoff(cls, backoff: Backoff | None) -> RetryPlan:
        """Argo's ``retryStrategy``; without one a trigger is tried once."""
        if backoff is None:
            return cls()
        duration = backoff.duration
        if duration is None:
            first = 1.0
        elif isinstance(duration, int):
            first = duration / 1e9  # an integer is nanoseconds, like Go's time.Duration
        else:
            first = parse_go_duration(duration)
        return cls(
            attempts=max(1, backoff.steps or 1),
            first_delay=max(0.0, first),
            factor=backoff.factor if backoff.factor and backoff.factor > 0 else 1.0,
            jitter=max(0.0, backoff.jitter or 0.0),
        )

    def delay(self, attempt: int) -> float:
        """Wait before attempt ``attempt + 1`` (attempt counts from 1)."""
        base = self.first_delay * (self.factor ** (attempt - 1))
        if self.jitter:
            base += base * self.jitter * random.random()  # noqa: S311 - jitter, not security
        return base


_UNIT = {"Second": 1.0, "Minute": 60.0, "Hour": 3600.0}


class RateLimiter:
    """A leaky bucket like Argo's: executions are delayed to at most ``requestsPerUnit`` per unit,
    never dropped. ``None`` settings mean unlimited."""

    def __init__(self, rate_limit: RateLimit | None) -> None:
        self._interval = 0.0
        if rate_limit is not None and rate_limit.requests_per_unit:
            self._interval = _UNIT.get(rate_limit.unit or "Second", 1.0) / rate_limit.requests_per_unit
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if self._interval <= 0:
            return
        async with self._lock:
            now = time.monotonic()
            if self._next > now:
                await asyncio.sleep(self._next - now)
                now = self._next
            self._next = now + self._interval
