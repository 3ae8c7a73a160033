"""Retries with exponential backoff and full jitter, honouring the server's RetryInfo.

Which calls may be retried, and on which codes, is decided by the caller (the client): a call is
retried only when repeating it cannot store or change anything twice.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc

from feedback_client.errors import FeedbackError

Result = TypeVar("Result")

# Transient failures: the server was unreachable or restarting, asked the caller to slow down, or the
# call ran out of time. Repeating an idempotent call on them is safe.
TRANSIENT_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})
IDEMPOTENT_RETRY_CODES = TRANSIENT_CODES | {grpc.StatusCode.DEADLINE_EXCEEDED}
# For calls that are not idempotent (update, delete): only refusals that happen before the server does
# anything. RESOURCE_EXHAUSTED comes from the rate limiter or a full write queue, both before any write.
NON_IDEMPOTENT_RETRY_CODES = frozenset({grpc.StatusCode.RESOURCE_EXHAUSTED})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry.

    The n-th retry waits a random time between 0 and ``min(max_backoff_s, initial_backoff_s *
    multiplier**n)`` ("full jitter"), but never less than the server's RetryInfo delay. Retrying
    stops after ``max_attempts`` attempts (None: no limit) or once ``max_elapsed_s`` have passed
    since the first attempt (None: no limit), whichever comes first.
    """

    max_attempts: int | None = 5
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 5.0
    multiplier: float = 2.0
    max_elapsed_s: float | None = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1 (or None for no limit), got {self.max_attempts}")
        if self.initial_backoff_s <= 0 or self.max_backoff_s < self.initial_backoff_s or self.multiplier < 1:
            raise ValueError("need 0 < initial_backoff_s <= max_backoff_s and multiplier >= 1")

    def backoff_s(self, retry_number: int, error: FeedbackError | None = None) -> float:
        """Seconds to wait before retry ``retry_number`` (0 for the first retry)."""
        ceiling = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier**retry_number)
        delay = random.uniform(0, ceiling)  # noqa: S311 - jitter, not a secret
        if error is not None and error.retry_delay_s is not None:
            delay = max(delay, error.retry_delay_s)
        return delay

    def allows(self, attempts_made: int, started: float, next_delay_s: float) -> bool:
        """Whether another attempt fits the attempt and time budgets."""
        if self.max_attempts is not None and attempts_made >= self.max_attempts:
            return False
        return self.max_elapsed_s is None or time.monotonic() + next_delay_s - started <= self.max_elapsed_s


async def call_with_retry(
    attempt: Callable[[], Awaitable[Result]],
    policy: RetryPolicy,
    retry_codes: frozenset[grpc.StatusCode],
) -> Result:
    """Run ``attempt`` until it succeeds, fails with a code outside ``retry_codes``, or the policy gives up.

    Raises the last FeedbackError.
    """
    started = time.monotonic()
    attempts_made = 0
    while True:
        try:
            return await attempt()
        except FeedbackError as error:
            attempts_made += 1
            if error.code not in retry_codes:
                raise
            delay = policy.backoff_s(attempts_made - 1, error)
            if not policy.allows(attempts_made, started, delay):
                raise
            await asyncio.sleep(delay)
