"""``LuaWorkers`` counts the resumes it could not answer within ``SPIN`` (the loop then awaited them)."""

from __future__ import annotations

import threading

from wippy_agents.lua.workers import SPIN, LuaWorkers


class _State:
    deadline = float("inf")  # never late: the watchdog leaves these jobs alone
    abandoned = False

    def kill(self) -> None:
        pass


async def test_a_resume_longer_than_the_spin_is_awaited_and_counted():
    workers = LuaWorkers(1)
    release = threading.Event()
    assert await workers.run(_State(), lambda: 1) == 1
    assert workers.jobs == 1  # (a cold thread may miss the spin: not asserted)
    before = workers.awaited
    # held past SPIN for sure: the loop stops waiting synchronously and awaits the answer
    assert await workers.run(_State(), lambda: release.wait(max(0.2, SPIN * 100)) or 2) == 2
    assert workers.awaited == before + 1
    assert workers.jobs == 2
