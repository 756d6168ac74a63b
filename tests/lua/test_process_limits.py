"""Lua processes under limits: per resume slice, a clean abnormal exit, the node unharmed."""

from __future__ import annotations

import pytest

from tests.lua.proc_helpers import close_rig, make_rig, wait_until


@pytest.fixture
async def rig():
    r = await make_rig()
    yield r
    await close_rig(r)


async def _exit_error(rig, pid: str) -> str:
    await wait_until(lambda: rig.procs.result_of(pid, "normal") != {})
    return rig.procs.result_of(pid, "normal").get("error", "")


async def test_an_endless_loop_ends_the_process_with_the_instruction_limit(rig):
    rig.add("app:spin", "while true do end", limits={"instructions": 100_000})
    rig.add("app:echo", "local m = process.inbox():receive(); process.send(m:from(), 'pong', m:payload())")
    pid = await rig.spawn("app:spin")
    assert "instruction limit" in await _exit_error(rig, pid)
    echo = await rig.spawn("app:echo")
    rig.node.process(rig.collector).send(echo, "ping", 7)
    assert (await rig.report())[1] == 7  # the node and other processes are unharmed


async def test_a_pcall_cannot_swallow_the_limit_in_a_process(rig):
    rig.add("app:spin", "for i = 1, 100 do pcall(function() while true do end end) end return 'escaped'",
            limits={"instructions": 100_000})
    pid = await rig.spawn("app:spin")
    assert "instruction limit" in await _exit_error(rig, pid)


async def test_limits_apply_per_resume_slice_not_to_the_whole_life(rig):
    # each slice computes ~60k instructions; five slices are far over the 100k budget in total
    rig.add("app:worker", """
      for round = 1, 5 do
        local x = 0
        for i = 1, 20000 do x = x + i end
        time.after("1ms"):receive()
      end
      return "done"
    """, modules=["time"], limits={"instructions": 100_000})
    pid = await rig.spawn("app:worker")
    await wait_until(lambda: rig.procs.result_of(pid, "x") != {"error": "x"})
    assert rig.procs.result_of(pid, "normal") == {"value": "done"}


async def test_waiting_is_not_computing_for_the_wall_clock_limit(rig):
    rig.add("app:patient", "time.after('300ms'):receive(); return 'awake'", modules=["time"],
            limits={"timeout": "100ms"})
    pid = await rig.spawn("app:patient")
    await wait_until(lambda: rig.procs.result_of(pid, "x") != {"error": "x"}, timeout=10)
    assert rig.procs.result_of(pid, "normal") == {"value": "awake"}


async def test_a_memory_bomb_ends_the_process_cleanly(rig):
    rig.add("app:bomb", "local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1024) .. i end",
            limits={"memory": "8MiB"})
    pid = await rig.spawn("app:bomb")
    assert "memory" in await _exit_error(rig, pid)


async def test_a_non_data_payload_is_a_clean_error_for_send(rig):
    rig.add("app:fnsend", """
      local c = ...
      local ok, err = process.send(c, "x", {f = function() end})
      process.send(c, "r", {ok = ok == nil, err = err})
    """)
    await rig.spawn("app:fnsend", rig.collector)
    p = (await rig.report())[1]
    assert p["ok"] is True and "function" in p["err"]
