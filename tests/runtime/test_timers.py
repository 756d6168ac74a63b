"""The call-deadline wheel: one loop timer per slot, entries removed on completion, never early."""

from __future__ import annotations

import asyncio

from wippy_agents.runtime.timers import SLOTS_PER_SECOND, TIMED_OUT, Deadlines

from .helpers import echo


async def test_many_calls_share_one_loop_timer_per_slot_and_leave_no_entries(node):
    pid = node.spawn(echo)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for i in range(200):
        assert await node.call(pid, "q", i, timeout=30.0) == i
    elapsed = loop.time() - t0
    wheel = node._deadlines
    assert wheel.pending() == 0
    assert len(wheel._handles) == len(wheel.slots) <= elapsed * SLOTS_PER_SECOND + 2


async def test_a_slot_fires_no_earlier_than_its_deadline():
    loop = asyncio.get_running_loop()
    wheel = Deadlines(loop)
    fut = loop.create_future()
    deadline = loop.time() + 0.02
    i = int(deadline * SLOTS_PER_SECOND) + 1
    wheel.open(i)[1] = fut
    assert await asyncio.wait_for(fut, 2) is TIMED_OUT
    assert loop.time() >= deadline
    assert wheel.slots == {} and wheel._handles == {}


async def test_close_cancels_every_timer():
    loop = asyncio.get_running_loop()
    wheel = Deadlines(loop)
    fut = loop.create_future()
    wheel.open(int((loop.time() + 0.01) * SLOTS_PER_SECOND) + 1)[1] = fut
    wheel.close()
    later = loop.create_future()
    loop.call_at(loop.time() + 0.03, later.set_result, None)  # well past the slot
    await asyncio.wait_for(later, 2)
    assert not fut.done()
