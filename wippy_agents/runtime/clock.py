"""``Clock``: where a node's durable code reads time and waits — the system's, or a test's fake.

A task's durable time (``ctx.now()``, the wake-up time of ``ctx.sleep``, a
signal's deadline) and its waits come from the node's clock, so a test can
hand ``Node(clock=FakeClock())`` (``wippy_agents.testing``) to the node and a
one-hour durable sleep returns at once with the right time journaled.
"""

from __future__ import annotations

import asyncio
import time as _time
from typing import Protocol

__all__ = ["Clock", "SystemClock", "SYSTEM_CLOCK"]


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on this clock (cancellable)."""
        ...


class SystemClock:
    """The real clock: ``time.time``, ``time.monotonic``, ``asyncio.sleep``."""

    time = staticmethod(_time.time)
    monotonic = staticmethod(_time.monotonic)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()
