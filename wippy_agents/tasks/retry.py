"""Retry policies: per step (the step's own function) and for store writes.

A ``RetryPolicy`` is a value; ``delays()`` yields the backoff between
attempts. Two users:

* ``TaskContext.step(..., retry=RetryPolicy(...))`` retries the step's
  function; only the final outcome is journaled.
* ``retry_store(call, policy)`` retries a store call while the store raises
  ``StoreError`` (unreachable, locked, connection dropped), so a short outage
  makes a step wait instead of failing the task.

Example::

    policy = RetryPolicy(max_attempts=5, initial_delay=0.1, backoff=2.0, max_delay=2.0)
    list(policy.delays())  # [0.1, 0.2, 0.4, 0.8]
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterator, TypeVar

from ..errors import JournalCorrupt, StoreError, UsageError
from ..runtime.backoff import retry_async

__all__ = ["RetryPolicy", "NO_RETRY", "STORE_RETRY", "retry_store"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often and how patiently to try again.

    ``max_attempts`` counts the first try (1 means no retry). Delays grow by
    ``backoff`` from ``initial_delay`` up to ``max_delay``; ``jitter`` (0..1)
    spreads them by up to that fraction. Errors whose type is in
    ``non_retryable`` (default: ``UsageError`` — the caller's fault does not
    heal by waiting) end the attempts at once.
    """

    max_attempts: int = 3
    initial_delay: float = 0.1
    backoff: float = 2.0
    max_delay: float = 5.0
    jitter: float = 0.0
    non_retryable: tuple[type[BaseException], ...] = (UsageError,)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise UsageError(f"RetryPolicy.max_attempts must be >= 1, got {self.max_attempts!r}")
        if self.initial_delay < 0 or self.max_delay < 0 or self.backoff < 1:
            raise UsageError("RetryPolicy needs initial_delay >= 0, max_delay >= 0 and backoff >= 1")

    def delays(self) -> Iterator[float]:
        """The ``max_attempts - 1`` waits between attempts, in order."""
        delay = self.initial_delay
        for _ in range(self.max_attempts - 1):
            spread = delay * self.jitter * random.random()
            yield min(delay + spread, self.max_delay)
            delay = min(delay * self.backoff, self.max_delay)

    def retryable(self, exc: BaseException) -> bool:
        return not isinstance(exc, self.non_retryable)


NO_RETRY = RetryPolicy(max_attempts=1)

# About a minute of patience for an unreachable store before a task gives up
# locally (its lease then expires and some node resumes it later).
STORE_RETRY = RetryPolicy(max_attempts=40, initial_delay=0.05, backoff=1.6, max_delay=2.0, jitter=0.2)


async def retry_store(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy = STORE_RETRY,
    *,
    what: str = "store call",
    give_up: Callable[[BaseException], bool] = lambda exc: False,
) -> T:
    """Run ``call()`` until it does not raise ``StoreError``.

    Blocks for the policy's delays between attempts. Re-raises the last
    ``StoreError`` once the attempts are spent, and any other error at once;
    ``JournalCorrupt`` and any ``StoreError`` for which ``give_up(exc)`` is
    true are permanent (re-raised at once).
    """
    delays = policy.delays()

    def decide(exc: Exception, attempt: int) -> float | None:
        if not isinstance(exc, StoreError) or isinstance(exc, JournalCorrupt) or give_up(exc):
            return None  # not the store's outage, or bad data: does not heal by waiting
        delay = next(delays, None)
        if delay is not None:
            log.warning("%s failed, retrying in %.2fs: %s", what, delay, exc)
        return delay

    return await retry_async(call, decide)
