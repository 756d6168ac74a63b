"""Benchmark: calling a trivial function.lua entry from Python (issue 4).

Measures, in one run on this machine, the cost per call of:

* ``LuaHost.call_function`` with a brand-new sandboxed runtime per call
  (``pool_size=0``) and with pooled runtimes (``pool_size=8``: reuse with
  fresh environment, module and library tables, see ``wippy_agents/lua/pool.py``);
* ``funcs.call`` of one Lua function from another (two calls, one host op);
* peers: bare ``lupa.lua54`` (new unsandboxed runtime per call, and one reused
  runtime), and a plain Python ``async def`` call;
* the count hook's cost: a 10^6-iteration loop sandboxed vs bare lupa.

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

from wippy_agents.lua import LuaHost, LuaState, Services, UNGUARDED

TRIVIAL = "return {handler = function(a) return a end}"
ENTRY = {"id": "bench:echo", "kind": "function.lua", "meta": {}, "data": {"source": TRIVIAL, "method": "handler"}}
CALLER = {"id": "bench:caller", "kind": "function.lua", "meta": {},
          "data": {"source": "return {handler = function(a) return funcs.call('bench:echo', a) end}",
                   "method": "handler", "modules": ["funcs"]}}
IDLE_BARE_US = 30.0
LOOP = "local n = 0 for i = 1, 1000000 do n = n + i end return n"


CLOCK = time.process_time


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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="calls per round")
    asyncio.run(main(parser.parse_args().n))
