"""Benchmark: calling a trivial function.lua entry from Python (issue 4).

Measures, in one run on this machine, the cost per call of:

* ``LuaHost.call_function`` with a brand-new sandboxed runtime per call
  (``pool_size=0``) and with pooled runtimes (``pool_size=8``: reuse with
  fresh environment, module and library tables, see ``wippy_agents/lua/pool.py``);
* ``funcs.call`` of one Lua function from another (two calls, one host op);
* peers: bare ``lupa.lua54`` (new unsandboxed runtime per call, and one reused
  runtime), and a plain Python ``async def`` call;
* the count hook's cost: a 10^6-iteration loop sandboxed vs bare lupa.

Off the event loop (issue 13): every resume runs on a Lua worker thread.
Same-run peers: the pooled call run inline on the loop (the old design, which
stalls the loop while Lua computes), the largest gap of a 10 ms ticker while
a 10^8-instruction call runs (workers vs inline), and 4 CPU-bound calls
started together vs one after another (wall clock; 2 cores here).

Target (issue 4): <= 100 us per call including state creation.
Run: ``.venv/bin/python bench/lua.py [--n 3000]``.

Times are CPU time of this process (``time.process_time``): nothing here
waits, and on a shared machine wall-clock time mostly measures the neighbours
(two runs a minute apart differed by 2x).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time

import lupa.lua54

from wippy_agents.errors import LuaLimitExceeded
from wippy_agents.lua import LuaHost, LuaState, Services, UNGUARDED
from wippy_agents.lua.workers import LuaWorkers

TRIVIAL = "return {handler = function(a) return a end}"
ENTRY = {"id": "bench:echo", "kind": "function.lua", "meta": {}, "data": {"source": TRIVIAL, "method": "handler"}}
CALLER = {"id": "bench:caller", "kind": "function.lua", "meta": {},
          "data": {"source": "return {handler = function(a) return funcs.call('bench:echo', a) end}",
                   "method": "handler", "modules": ["funcs"]}}
IDLE_BARE_US = 30.0
LOOP = "local n = 0 for i = 1, 1000000 do n = n + i end return n"


CLOCK = time.process_time
BUSY = {"id": "bench:busy", "kind": "function.lua", "meta": {},
        "data": {"source": "return function() local n = 0 for i = 1, 1e9 do n = n + i end end", "method": None,
                 "limits": {"instructions": 60_000_000}}}
HUGE = {"id": "bench:huge", "kind": "function.lua", "meta": {},
        "data": {"source": "return function() local n = 0 for i = 1, 1e9 do n = n + i end end", "method": None}}


class InlineWorkers(LuaWorkers):
    """The old design, as a peer: the resume runs on the event loop itself."""

    async def run(self, state, fn, *args, timeout=None):
        if timeout is not None:
            state.deadline = time.monotonic() + timeout
        return fn(*args)


async def max_gap_while(coro) -> float:
    """Largest lateness of a 10 ms ticker on the loop while ``coro`` runs (ms)."""
    worst = 0.0
    stop = False

    async def tick():
        nonlocal worst
        last = time.monotonic()
        while not stop:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            worst = max(worst, now - last - 0.01)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.02)
    try:
        await coro
    except LuaLimitExceeded:
        pass
    stop = True
    await ticker
    return worst * 1e3


async def wall(coro_fn) -> float:
    t0 = time.perf_counter()
    try:
        await coro_fn()
    except LuaLimitExceeded:
        pass
    return time.perf_counter() - t0


async def per_call(fn, n: int, rounds: int = 5) -> float:
    """Median over ``rounds`` of the mean CPU microseconds per call."""
    for _ in range(min(n, 200)):
        await fn()
    samples = []
    for _ in range(rounds):
        gc.collect()
        t0 = CLOCK()
        for _ in range(n):
            await fn()
        samples.append((CLOCK() - t0) / n * 1e6)
    return statistics.median(samples)


async def main(n: int) -> None:
    entries = {"bench:echo": ENTRY, "bench:caller": CALLER}

    async def get_entry(entry_id, *, actor=None):
        return entries.get(entry_id)

    services = Services(get_entry=get_entry, guard=UNGUARDED)
    fresh = LuaHost(services=services, pool_size=0)
    pooled = LuaHost(services=services, pool_size=8)
    args = {"x": 1}

    async def bare_lupa_new():
        lua = lupa.lua54.LuaRuntime(register_eval=False, register_builtins=False, encoding=None)
        return lua.execute(TRIVIAL.encode())[b"handler"](1)

    shared = lupa.lua54.LuaRuntime(encoding=None)
    handler = shared.execute(TRIVIAL.encode())[b"handler"]

    async def bare_lupa_reused():
        return handler(1)

    async def python_call():
        async def handler(a):
            return a
        return await handler(args)

    rows = [
        ("call_function, new sandboxed state per call", await per_call(lambda: fresh.call_function(ENTRY, args), n)),
        ("call_function, pooled state (reused)", await per_call(lambda: pooled.call_function(ENTRY, args), n)),
        ("funcs.call Lua->Lua (2 calls), pooled", await per_call(lambda: pooled.call_function(CALLER, args), n)),
        ("funcs.call Lua->Lua (2 calls), fresh", await per_call(lambda: fresh.call_function(CALLER, args), n)),
        ("peer: bare lupa.lua54, new runtime per call", await per_call(bare_lupa_new, n)),
        ("peer: bare lupa.lua54, reused runtime", await per_call(bare_lupa_reused, n)),
        ("peer: plain Python async call", await per_call(python_call, n)),
    ]
    t0 = CLOCK()
    for _ in range(20):
        LuaState()
    state_us = (CLOCK() - t0) / 20 * 1e6
    hooked = await per_call(lambda: pooled.call_function(
        {"id": "bench:loop", "kind": "function.lua", "meta": {}, "data": {"source": "return function() " + LOOP + " end", "method": None}}), 3, 3)
    bare = await per_call(lambda: asyncio.sleep(0, shared.execute(LOOP.encode())), 3, 3)

    base = rows[4][1]
    print(f"{'case':48s} {'us/call':>10s} {'vs bare lupa new':>17s}")
    for name, us in rows:
        print(f"{name:48s} {us:10.1f} {us / base:16.2f}x")
    print(f"{'LuaState() creation alone':48s} {state_us:10.1f}")
    print(f"{'10^6-iteration loop: sandboxed (count hook)':48s} {hooked / 1000:9.1f}ms {hooked / bare:16.2f}x bare")
    target = rows[1][1]
    print(f"\ntarget <= 100 us per call: pooled {target:.1f} us -> {'MET' if target <= 100 else 'NOT MET'}; "
          f"fresh {rows[0][1]:.1f} us -> {'MET' if rows[0][1] <= 100 else 'NOT MET'}")
    # The machines are shared: scale by the bare-runtime peer, measured at ~30 us
    # on an idle machine (ARCHITECTURE.md), to read the figures without the load.
    scale = IDLE_BARE_US / base
    print(f"scaled to an idle machine (bare new runtime = {IDLE_BARE_US:.0f} us, x{scale:.2f}): "
          f"pooled ~{target * scale:.0f} us, fresh ~{rows[0][1] * scale:.0f} us, "
          f"funcs.call pooled ~{rows[2][1] * scale:.0f} us")
    print(f"pool: created {pooled.pool.created}, reused {pooled.pool.reused}")

    # -- off the event loop ------------------------------------------------------
    inline = LuaHost(services=services, pool_size=8, workers=InlineWorkers(1))
    inline_us = await per_call(lambda: inline.call_function(ENTRY, args), n)
    inline_caller = await per_call(lambda: inline.call_function(CALLER, args), n)
    gap_workers = await max_gap_while(pooled.call_function(HUGE, None))
    gap_inline = await max_gap_while(inline.call_function(HUGE, None))
    one = await wall(lambda: pooled.call_function(BUSY, None))
    sequential = await wall(lambda: _seq(pooled, 4))
    parallel = await wall(lambda: asyncio.gather(*[pooled.call_function(BUSY, None) for _ in range(4)],
                                                 return_exceptions=True))
    print(f"\n{'off the event loop (Lua worker threads)':48s} {'workers':>10s} {'inline peer':>12s} {'ratio':>8s}")
    print(f"{'pooled call_function, us CPU':48s} {target:10.1f} {inline_us:12.1f} {target / inline_us:7.2f}x")
    print(f"{'funcs.call Lua->Lua pooled, us CPU':48s} {rows[2][1]:10.1f} {inline_caller:12.1f} "
          f"{rows[2][1] / inline_caller:7.2f}x")
    print(f"{'max ticker gap during a 10^8-instruction call, ms':48s} {gap_workers:10.1f} {gap_inline:12.1f}"
          f"   target <= 50 ms: {'MET' if gap_workers <= 50 else 'NOT MET'}")
    print(f"{'4 CPU-bound calls (6*10^7 instr.), wall s':48s} {parallel:10.2f} {sequential:12.2f} "
          f"{sequential / parallel:7.2f}x   (one alone {one:.2f} s; target >= 1.7x on 2 cores: "
          f"{'MET' if sequential / parallel >= 1.7 else 'NOT MET'})")


async def _seq(host, k):
    for _ in range(k):
        try:
            await host.call_function(BUSY, None)
        except LuaLimitExceeded:
            pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="calls per round")
    asyncio.run(main(parser.parse_args().n))
