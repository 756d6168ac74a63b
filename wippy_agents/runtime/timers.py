"""Call deadlines on a coarse timer wheel: one loop timer per 10 ms slot, not one per call.

A ``loop.call_at`` handle costs a Python object, a heap push and a cancel per
call — most of a call's overhead — and ``wait_for`` is worse (a task per
call). A call instead puts its reply future into the dict of the slot its
deadline falls in and deletes it when it completes (both O(1)); one loop timer
per slot resolves whatever is left with ``TIMED_OUT``. Deadlines therefore
fire up to one slot late, never early.
"""

from __future__ import annotations

import asyncio
from typing import Callable

__all__ = ["Deadlines", "TIMED_OUT", "SLOTS_PER_SECOND"]

SLOTS_PER_SECOND = 100  # 10 ms resolution


class _TimedOut:
    __slots__ = ()

    def __repr__(self) -> str:
        return "TIMED_OUT"


TIMED_OUT = _TimedOut()  # the result a timed-out future gets; the caller turns it into CallTimeout


class Deadlines:
    """Slots of pending futures keyed by call ref.

    The caller does the hot path inline::

        i = int((wheel.now() + timeout) * SLOTS_PER_SECOND) + 1
        entries = wheel.slots.get(i)
        if entries is None:
            entries = wheel.open(i)
        entries[ref] = fut      # ... and `del entries[ref]` when done

    Never blocks; ``close`` cancels every loop timer.
    """

    __slots__ = ("_loop", "slots", "_handles", "now")

    def __init__(self, loop: asyncio.AbstractEventLoop, clock: Callable[[], float] | None = None) -> None:
        self._loop = loop
        self.now = clock or loop.time  # must be the clock loop.call_at uses
        self.slots: dict[int, dict[object, asyncio.Future]] = {}
        self._handles: dict[int, asyncio.TimerHandle] = {}

    def open(self, i: int) -> dict[object, asyncio.Future]:
        """Create slot ``i`` and the one loop timer that expires it."""
        entries: dict[object, asyncio.Future] = {}
        self.slots[i] = entries
        self._handles[i] = self._loop.call_at(i / SLOTS_PER_SECOND, self._fire, i)
        return entries

    def _fire(self, i: int) -> None:
        self._handles.pop(i, None)
        for fut in self.slots.pop(i, {}).values():
            if not fut.done():
                fut.set_result(TIMED_OUT)

    def pending(self) -> int:
        """How many deadlines are armed (not ``__len__``: the wheel must stay truthy)."""
        return sum(len(entries) for entries in self.slots.values())

    def close(self) -> None:
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()
        self.slots.clear()
