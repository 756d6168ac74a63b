"""The one retry helper: exponential backoff with jitter, and a retry loop around an async call.

Used by the store retries of tasks (``tasks.retry.retry_store``), the restart
delays of Lua services and the model retries after a stream started
(``llm.retry``); the SDKs retry what fails before a model's stream starts
with the same delays (``llm.providers._sdk``). Pure asyncio, no imports of ours.

    >>> backoff_delay(2, base=0.5, cap=10, jitter=0)
    2.0
"""

from __future__ import annotations

import asyncio
import random
from typing import Any, Awaitable, Callable, TypeVar

__all__ = ["backoff_delay", "retry_async", "plural"]

T = TypeVar("T")


def backoff_delay(attempt: int, *, base: float, cap: float, jitter: float = 0.5,
                  rand: Callable[[], float] = random.random) -> float:
    """Delay before retry number ``attempt`` (0-based): ``base * 2**attempt`` capped at ``cap``.

    ``jitter`` (0..1) is the share of the delay that is random ("equal jitter" at 0.5): waits still
    grow, but callers that failed together do not retry together. ``jitter=0`` is deterministic.
    """
    delay = min(cap, base * (2 ** min(attempt, 64)))
    return delay * (1 - jitter) + rand() * delay * jitter


async def retry_async(call: Callable[[], Awaitable[T]], decide: Callable[[Exception, int], float | None], *,
                      sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> T:
    """``await call()`` until it succeeds; after a failure ``decide(exc, attempt)`` (attempt 0-based) returns
    the seconds to wait before trying again, ``None`` to re-raise ``exc``, or raises an error of its own."""
    attempt = 0
    while True:
        try:
            return await call()
        except Exception as exc:
            delay = decide(exc, attempt)
            if delay is None:
                raise
        await sleep(delay)
        attempt += 1


def plural(n: int, word: str) -> str:
    """``1 attempt``, ``3 attempts``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
