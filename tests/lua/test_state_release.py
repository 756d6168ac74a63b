"""SPEC §5: a process's Lua state is released when the process dies (not when Python's
cycle collector gets to it): an RSS soak with 1,000 live Lua processes and 2,000 crashes."""

from __future__ import annotations

import gc
import logging

from tests.lua.proc_helpers import close_rig, make_rig, wait_until


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


async def test_rss_soak_1000_alive_2000_crashes_grows_at_most_20_mb(caplog):
    caplog.set_level(logging.CRITICAL, logger="wippy_agents.lua.process_driver")  # 2,000 crash lines
    rig = await make_rig()
    gc_was = gc.isenabled()
    gc.disable()  # what is measured is what reference counting alone gives back
    try:
        rig.add("app:idle", "process.inbox():receive()")
        rig.add("app:crash", "local t = {} for i = 1, 200 do t[i] = ('x'):rep(100) .. i end error('crash ' .. #t)")
        for _ in range(1000):
            await rig.spawn("app:idle")
        for _ in range(200):  # warm up allocator pools
            await rig.spawn("app:crash")
        await wait_until(lambda: len(rig.exits) >= 200, timeout=60)
        before = _rss()
        pids = [await rig.spawn("app:crash") for _ in range(2000)]
        await wait_until(lambda: all(p in rig.exits for p in pids), timeout=120)
        grown = (_rss() - before) / 2**20
        print(f"\nRSS growth after 2,000 crashes next to 1,000 idle Lua processes: {grown:.1f} MB")
        assert grown <= 20
    finally:
        if gc_was:
            gc.enable()
        await close_rig(rig)
