"""SPEC §5: Lua never stalls the node.  A ticker on the event loop keeps ticking
while Lua computes (a 10^8-instruction loop, a C ``table.sort`` of 10^6 items,
the exponential pattern shapes), and a call stuck in a C function past its
wall clock is answered at once, its state discarded, its late CPU reported.

The bounds are generous (a shared 2-core machine); ``-s`` prints the figures.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.lua.proc_helpers import close_rig, make_rig, wait_until
from wippy_agents.errors import LuaError, LuaLimitExceeded
from wippy_agents.lua import LuaState
from wippy_agents.lua.driver import drive
from wippy_agents.lua.limits import Limits
from wippy_agents.lua.workers import GRACE, LuaWorkers

MAX_GAP = 0.25  # generous: the target is 50 ms, the machine is shared


class Ticker:
    """Ticks every 10 ms on the loop and keeps the largest gap between two ticks."""

    def __init__(self) -> None:
        self.max_gap = 0.0
        self.ticks = 0
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            self.max_gap = max(self.max_gap, now - last - 0.01)
            self.ticks += 1
            last = now

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0.02)
        return self

    async def __aexit__(self, *exc) -> None:
        assert self._task is not None
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task


def fn_entry(code: str, **data):
    return {"id": "app.test:fn", "kind": "function.lua", "meta": {},
            "data": {"source": "return {handler = function(a) " + code + " end}", **data}}


LOOP = "local n = 0 for i = 1, 1e9 do n = n + i end return n"  # stopped by the 10^8 budget
SORT = ("local t = {} for i = 1, 1000000 do t[i] = (i * 7919) % 1000003 end "
        "table.sort(t) return t[1] < t[2]")
SHAPES = {
    "optional x n": 'string.match(("a"):rep(28), ("a?"):rep(28) .. ("a"):rep(28))',
    "many backtracking quantifiers": 'string.find(("a"):rep(40), ("a*"):rep(20) .. "b")',
    "optional classes": 'string.match(("ab"):rep(20), ("[ab]?"):rep(40) .. ("[ab]"):rep(40))',
    "optional then lazy": 'string.match(("x"):rep(30), ("x?"):rep(30) .. ".-" .. ("x"):rep(30) .. "$")',
}


async def test_a_long_lua_loop_does_not_stall_the_loop(host):
    async with Ticker() as ticker:
        with pytest.raises(LuaLimitExceeded, match="instruction limit"):
            await host.call_function(fn_entry(LOOP), {})
    print(f"\n10^8-instruction loop: max ticker gap {ticker.max_gap * 1e3:.1f} ms over {ticker.ticks} ticks")
    assert ticker.ticks >= 5  # the loop ran while Lua computed
    assert ticker.max_gap < MAX_GAP


async def test_a_big_c_sort_does_not_stall_the_loop(host):
    async with Ticker() as ticker:
        assert await host.call_function(fn_entry(SORT), {}) is True
    print(f"\ntable.sort of 10^6: max ticker gap {ticker.max_gap * 1e3:.1f} ms over {ticker.ticks} ticks")
    assert ticker.max_gap < MAX_GAP


@pytest.mark.parametrize("shape", list(SHAPES))
async def test_exponential_pattern_shapes_are_refused_at_once(host, shape):
    started = time.monotonic()
    async with Ticker() as ticker:
        with pytest.raises(LuaError, match="too complex"):
            await host.call_function(fn_entry(SHAPES[shape]), {})
    took = time.monotonic() - started
    print(f"\n{shape}: refused in {took * 1e3:.1f} ms, max ticker gap {ticker.max_gap * 1e3:.1f} ms")
    assert took < 2.0 and ticker.max_gap < MAX_GAP


def test_the_guard_still_lets_ordinary_patterns_through():
    state = LuaState(Limits(timeout=5.0))
    env = state.new_env("t")
    chunk = state.load('return function() return string.match("  key = value ", "^%s*(%w+)%s*=%s*(%w*)%s*$"), '
                       'string.find(("x"):rep(5000) .. "y", "x?y") '
                       '.. (("a,b,,c"):gsub(",?", "")) end', "t", env)
    thread = state.new_thread(state.ctl[b"run_entry"])
    state.start(time.monotonic() + 5)
    out = state.step_slice(thread, None, chunk, None, env)
    assert out == (b"done", b"key", b"5000abc")  # match truncated to its first value


async def test_a_call_stuck_in_c_is_answered_at_its_deadline_and_its_state_discarded():
    # the guard is switched off for this state so that a pattern can run for seconds in C
    workers = LuaWorkers(1)
    state = LuaState(Limits(timeout=0.2), pattern_steps=2**62)
    env = state.new_env("stuck")
    chunk = state.load('return function() return string.match(("a"):rep(24), ("a?"):rep(24) .. ("a"):rep(24)) end',
                       "stuck", env)
    thread = state.new_thread(state.ctl[b"run_entry"])
    started = time.monotonic()
    deadline = started + 0.2
    state.start(deadline)
    async with Ticker() as ticker:
        with pytest.raises(LuaLimitExceeded, match="C function"):
            await drive(state, thread, (chunk, None, env), _no_ops, deadline=deadline, who="stuck", workers=workers)
        answered = time.monotonic() - started
        assert state.abandoned and state.closed and not state.reusable
        # the pool keeps serving: a replacement worker runs the next call at once
        other = LuaState(Limits(timeout=1.0))
        oenv = other.new_env("other")
        ochunk = other.load("return function() return 42 end", "other", oenv)
        othread = other.new_thread(other.ctl[b"run_entry"])
        other.start(time.monotonic() + 1)
        assert await drive(other, othread, (ochunk, None, oenv), _no_ops, deadline=time.monotonic() + 1,
                           who="other", workers=workers) == [42]
    print(f"\nstuck C call answered after {answered * 1e3:.0f} ms (limit 200 ms), "
          f"max ticker gap {ticker.max_gap * 1e3:.1f} ms")
    assert answered < 0.2 + GRACE + 0.3
    assert workers.abandoned == 1
    await wait_until(lambda: workers.stuck_cpu > 0, timeout=60)
    print(f"the stuck worker burned {workers.stuck_cpu:.2f} s of CPU after its deadline")


async def _no_ops(op, args):
    raise AssertionError(f"unexpected host op {op}")


async def test_a_lua_process_computing_leaves_other_processes_running():
    rig = await make_rig()
    try:
        rig.add("app:busy", "local n = 0 for i = 1, 1e9 do n = n + i end")
        rig.add("app:echo", "local c = ... for i = 1, 20 do process.send(c, 'tick', i) time.sleep('10ms') end",
                modules=["time"])
        async with Ticker() as ticker:
            await rig.spawn("app:busy")
            await rig.spawn("app:echo", rig.collector)
            for i in range(1, 21):
                topic, n, _ = await rig.report()
                assert (topic, n) == ("tick", i)
        assert ticker.max_gap < MAX_GAP
    finally:
        await close_rig(rig)


async def test_log_lines_before_a_limit_are_kept_with_the_time_they_were_written(host, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="wippy_agents.lua.log")
    code = ('log.info("before the loop", {n = 1}); local t0 = os.clock() while os.clock() - t0 < 0.3 do end '
            'log.warn("after 0.3 s"); while true do end')
    started = time.time()
    with pytest.raises(LuaLimitExceeded, match="instruction limit"):
        await host.call_function(fn_entry(code, modules=["log"], limits={"instructions": 80_000_000}), {})
    ended = time.time()
    lines = {r.getMessage(): r for r in caplog.records if r.name == "wippy_agents.lua.log"}
    assert set(lines) == {"before the loop", "after 0.3 s"}
    first, second = lines["before the loop"], lines["after 0.3 s"]
    assert started <= first.created < second.created <= ended
    assert second.created - first.created >= 0.25  # stamped when written, not when flushed
    assert first.fields == {"n": 1}


async def test_killing_a_process_inside_a_long_c_call_neither_waits_for_it_nor_stalls_the_loop():
    rig = await make_rig()
    try:
        rig.add("app:sorter", "local c = ... local t = {} for i = 1, 2000000 do t[i] = (i * 7919) % 1000003 end "
                              "process.send(c, 'sorting', {}) table.sort(t) process.send(c, 'sorted', {})")
        async with Ticker() as ticker:
            pid = await rig.spawn("app:sorter", rig.collector)
            assert (await rig.report())[0] == "sorting"
            t0 = time.monotonic()
            assert await rig.procs.terminate(pid) is True
            await wait_until(lambda: pid in rig.exits)
            took = time.monotonic() - t0
        print(f"\nkilled inside table.sort: exited after {took * 1e3:.1f} ms, max ticker gap {ticker.max_gap * 1e3:.1f} ms")
        assert rig.exits[pid] == "killed" and took < MAX_GAP and ticker.max_gap < MAX_GAP
        assert "sorted" not in rig.queued_topics()
    finally:
        await close_rig(rig)


async def test_heartbeats_keep_the_lease_while_a_workflows_lua_computes(tmp_path, caplog):
    # Node a runs a workflow whose Lua computes for longer than the lease; node b, on the
    # same store, claims expired leases.  The heartbeats keep running, so a keeps the task.
    import yaml

    from wippy_agents.app import App

    app_dir = tmp_path / "app"
    (app_dir / "src").mkdir(parents=True)
    (app_dir / "wippy.yaml").write_text(yaml.safe_dump({"sources": ["src"], "store": f"sqlite:///{tmp_path}/s.db"}))
    import logging

    caplog.set_level(logging.INFO, logger="wippy_agents.lua.log")
    busy = ("return {handler = function() log.info('busy run starts') local t0, n = os.clock(), 0 "
            "while os.clock() - t0 < 1.2 do n = n + 1 end return n > 0 end}")
    (app_dir / "src" / "app.yaml").write_text(yaml.safe_dump({"namespace": "app", "entries": [
        {"name": "busy", "kind": "workflow.lua", "source": busy, "modules": ["log"],
         "limits": {"instructions": 10**10}}]}))
    import threading

    b_ready, b_stop = threading.Event(), threading.Event()

    async def node_b() -> None:  # another node: its own thread and event loop, the same store
        b = await App.open(str(app_dir), node="b", lease_seconds=0.6, heartbeat_seconds=0.1, claim_interval=0.05)
        b_ready.set()
        try:
            while not b_stop.is_set():
                await asyncio.sleep(0.02)
        finally:
            await b.close()

    b_thread = threading.Thread(target=asyncio.run, args=(node_b(),), daemon=True)
    b_thread.start()
    a = await App.open(str(app_dir), node="a", lease_seconds=0.6, heartbeat_seconds=0.1, claim_interval=0)
    try:
        assert await asyncio.to_thread(b_ready.wait, 20)
        assert await a.workflows.run("app:busy", None, task_id="lease1", timeout=20) is True
        task = await a.tasks.get("lease1")
        assert task.status == "succeeded"  # b never took it over: a kept renewing the lease
    finally:
        b_stop.set()
        await asyncio.to_thread(b_thread.join, 20)
        await a.close()
    runs = [r for r in caplog.records if r.getMessage() == "busy run starts"]
    assert len(runs) == 1  # node b never ran it
