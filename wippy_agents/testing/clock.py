"""A fake clock: ``sleep`` returns at once and advances time, recording every wait."""

from __future__ import annotations

import asyncio

__all__ = ["FakeClock"]


class FakeClock:
    """Deterministic time for tests; inject ``clock.sleep`` wherever code takes a sleep function.

        >>> clock = FakeClock(start=100.0)
        >>> clock.advance(5); clock.time()
        105.0
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self._now

    monotonic = time

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        """Record ``seconds``, advance the clock, and yield once to the loop (so it stays a real await)."""
        self.sleeps.append(seconds)
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)
