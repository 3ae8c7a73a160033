"""Per-credential token buckets: each key may spend ``rate`` units a second, ``burst`` at once."""

from __future__ import annotations

import time
from collections.abc import Callable

from feedback_service.domain.errors import RateLimitedError

_MAX_BUCKETS = 100_000


class RateLimiter:
    """A unit is one request, or one item of a batch. ``rate`` 0 turns limiting off."""

    def __init__(self, *, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._burst = max(burst, 1.0)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, as of)

    def charge(self, key: str, cost: float = 1.0) -> None:
        """Take ``cost`` units from ``key``'s bucket, or raise RateLimitedError saying when to retry."""
        if self._rate <= 0:
            return
        now = self._clock()
        tokens, as_of = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - as_of) * self._rate)
        cost = min(cost, self._burst)  # a request bigger than the burst waits for a full bucket
        if tokens < cost:
            self._buckets[key] = (tokens, now)
            raise RateLimitedError(
                f"rate limit of {self._rate:g}/s (burst {self._burst:g}) reached for this credential",
                retry_after_s=(cost - tokens) / self._rate,
            )
        if len(self._buckets) >= _MAX_BUCKETS and key not in self._buckets:
            self._forget_full(now)
        self._buckets[key] = (tokens - cost, now)

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled: they carry no state a fresh bucket would not."""
        self._buckets = {
            key: (tokens, as_of)
            for key, (tokens, as_of) in self._buckets.items()
            if tokens + (now - as_of) * self._rate < self._burst
        }
