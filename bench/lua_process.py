"""Benchmark Lua processes: spawn time, memory per idle process, message round trip.

Run with ``.venv/bin/python bench/lua_process.py [--n 10000] [--trips 20000]``.

Rows (targets from issue 4):

* spawn: CPU time per Lua process, ``n`` of them alive at once and idle
  (each waiting on ``process.inbox():receive()``), through a ``process.host``
  (a supervisor call + a fresh sandboxed state + load) and directly
  (``node.spawn`` of the process body, no supervisor).  Target <= 150 us.
* memory: RSS growth per idle Lua process with ``n`` alive (Lua allocations
  are invisible to tracemalloc, so this reads /proc/self/statm), and the Lua
  heap of one idle state: what lupa counts after it applied ``max_memory``
  (``get_memory_used``), plus the heap a bare runtime already has at that
  point (measured on an unrestricted runtime).  Target <= 64 KB.
* peers for the spawn rows, same run: creating ``n`` bare ``lupa.lua54``
  runtimes kept alive (CPU and RSS each) -- the floor of "one fresh Lua state
  per process" with lupa, before any sandboxing.
* churn: spawn of a process that returns at once, one after another: a
  returned process gives its state back to the host's pool, so this shows
  the spawn cost without creating a Lua runtime (reference row).
* round trip: Python process -> Lua process -> back, against Python ->
  Python process -> back measured in the same run, alternating rounds, best
  of each.  Target ratio <= 3x.

CPU time (``time.process_time``) is used because these machines are shared:
wall-clock time mostly measures the neighbours.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import time

from wippy_agents.lua import LuaHost, Services, UNGUARDED
from wippy_agents.lua.processes import LuaProcesses
from wippy_agents.lua.process_driver import lua_process_body
from wippy_agents.runtime import Node

CLOCK = time.process_time
HOST = "bench:processes"
IDLE = "return {handler = function() process.inbox():receive() end}"
ECHO = """return {handler = function()
  local inbox = process.inbox()
  while true do
    local msg = inbox:receive()
    if msg:topic() == "stop" then return end
    process.send(msg:from(), "pong", msg:payload())
  end
end}"""


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _rig() -> tuple[Node, LuaProcesses]:
    entries = {
        "bench:idle": {"id": "bench:idle", "kind": "process.lua", "meta": {}, "data": {"source": IDLE}},
        "bench:echo": {"id": "bench:echo", "kind": "process.lua", "meta": {}, "data": {"source": ECHO}},
        "bench:short": {"id": "bench:short", "kind": "process.lua", "meta": {},
                        "data": {"source": "return {handler = function() return 1 end}"}},
    }

    async def get_entry(entry_id: str, *, actor=None):
        return entries.get(entry_id)

    node = Node("bench")
    procs = LuaProcesses(node, LuaHost(services=Services(get_entry=get_entry, guard=UNGUARDED), node=node))
    procs.start_host(HOST, {"max_restarts": 1000})
    return node, procs


async def _close(node: Node, procs: LuaProcesses) -> None:
    await procs.close()
    await node.stop(timeout=60)


async def bench_spawn(n: int, *, via_host: bool) -> tuple[float, float, float]:
    """(CPU us per spawn, RSS bytes per idle process, Lua heap bytes of one idle state)."""
    node, procs = await _rig()
    try:
        gc.collect()
        rss0 = _rss()
        t0 = CLOCK()
        pids = []
        for i in range(n):
            if via_host:
                pids.append(await procs.spawn("bench:idle", HOST))
            else:
                pids.append(node.spawn(lua_process_body, procs, "bench:idle", [], None, None))
        while len(procs.live) < n or not all(node.process(p).mailbox.statistics().waiting for p in pids[-10:]):
            await asyncio.sleep(0)
        cpu = (CLOCK() - t0) / n * 1e6
        gc.collect()
        rss = (_rss() - rss0) / n
        assert len(procs.live) == n, f"only {len(procs.live)} of {n} alive"
        some = next(iter(procs.live.values()))
        lua_heap = _lua_heap(procs, some.pid)
        return cpu, rss, lua_heap
    finally:
        await _close(node, procs)


async def bench_churn(n: int) -> float:
    """CPU us per spawn of a process that returns at once, one after another (states are reused)."""
    node, procs = await _rig()
    try:
        loop = asyncio.get_running_loop()
        waiting: dict[str, asyncio.Future] = {}
        node.on_exit(lambda pid, reason: waiting.pop(pid).set_result(reason) if pid in waiting else None)
        t0 = CLOCK()
        for _ in range(n):
            pid = node.spawn(lua_process_body, procs, "bench:short", [], None, None)
            fut = waiting[pid] = loop.create_future()
            await fut
        return (CLOCK() - t0) / n * 1e6
    finally:
        await _close(node, procs)


def bench_bare(n: int) -> tuple[float, float, float]:
    """(CPU us, RSS bytes, heap bytes) per bare lupa.lua54 runtime, ``n`` alive: the peer floor."""
    from lupa.lua54 import LuaRuntime

    gc.collect()
    rss0 = _rss()
    t0 = CLOCK()
    alive = [LuaRuntime(register_eval=False, register_builtins=False, encoding=None) for _ in range(n)]
    cpu = (CLOCK() - t0) / n * 1e6
    gc.collect()
    rss = (_rss() - rss0) / n
    heap = alive[0].execute(b"return collectgarbage('count')") * 1024
    return cpu, rss, heap


def _lua_heap(procs: LuaProcesses, pid: str) -> float:
    # The state is held by the running body; find it through the live code object.
    for obj in gc.get_objects():
        state = getattr(obj, "state", None)
        if type(obj).__name__ == "LoadedCode" and state is not None:
            try:
                return float(state.lua.get_memory_used())
            except Exception:  # noqa: BLE001 - older lupa: no allocator statistics
                return float("nan")
    return float("nan")


async def _python_echo(proc) -> None:
    while True:
        msg = await proc.receive()
        if msg.topic == "stop":
            return
        proc.send(msg.sender, "pong", msg.payload)


async def _round_trips(node: Node, target: str, trips: int) -> float:
    done: asyncio.Future = asyncio.get_running_loop().create_future()

    async def client(proc) -> None:
        payload = {"n": 0, "text": "hello"}
        t0 = CLOCK()
        for i in range(trips):
            proc.send(target, "ping", payload)
            await proc.receive("pong")
        done.set_result((CLOCK() - t0) / trips * 1e6)

    node.spawn(client)
    return await done


async def bench_round_trip(trips: int, rounds: int) -> tuple[float, float]:
    node, procs = await _rig()
    try:
        lua_pid = await procs.spawn("bench:echo", HOST)
        py_pid = node.spawn(_python_echo)
        await _round_trips(node, lua_pid, 200)  # warm up both
        await _round_trips(node, py_pid, 200)
        py, lua = [], []
        for _ in range(rounds):
            py.append(await _round_trips(node, py_pid, trips))
            lua.append(await _round_trips(node, lua_pid, trips))
        return min(py), min(lua)
    finally:
        await _close(node, procs)


def _child(n: int, mode: str) -> tuple[float, float, float]:
    out = subprocess.run([sys.executable, __file__, "--n", str(n), "--only", mode], capture_output=True,
                         text=True, check=True, timeout=1800)
    return tuple(json.loads(out.stdout.strip().splitlines()[-1]))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="Lua processes alive at once")
    parser.add_argument("--trips", type=int, default=20_000, help="round trips per measurement round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["host", "direct", "nogc", "bare"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.only == "bare":
        print(json.dumps(bench_bare(args.n)))
        return
    if args.only:
        if args.only == "nogc":
            gc.disable()  # reference only: what the collector costs while 10k processes live
        print(json.dumps(await bench_spawn(args.n, via_host=args.only == "host")))
        return
    # each spawn measurement in a fresh interpreter: RSS never shrinks, so a second
    # measurement in the same process would reuse the first one's freed memory
    host_cpu, host_rss, heap = _child(args.n, "host")
    raw_cpu, raw_rss, _ = _child(args.n, "direct")
    nogc_cpu, _, _ = _child(args.n, "nogc")
    bare_cpu, bare_rss, bare_heap = _child(args.n, "bare")
    churn = await bench_churn(min(args.n, 2000))
    py_rt, lua_rt = await bench_round_trip(args.trips, args.rounds)

    rows = [
        (f"spawn via process.host ({args.n} alive)", f"{host_cpu:8.1f} us", "<= 150 us", host_cpu <= 150),
        (f"spawn direct node.spawn ({args.n} alive)", f"{raw_cpu:8.1f} us", "<= 150 us", raw_cpu <= 150),
        ("  (reference: direct, GC paused)", f"{nogc_cpu:8.1f} us", "(reference)", True),
        (f"peer: bare lupa.lua54 LuaRuntime() ({args.n} alive)", f"{bare_cpu:8.1f} us", "(peer)", True),
        ("  ratio spawn direct / bare runtime", f"{raw_cpu / bare_cpu:8.2f} x", "", True),
        ("spawn + return, one after another (reused states)", f"{churn:8.1f} us", "(reference)", True),
        ("RSS per idle Lua process (via host)", f"{host_rss / 1024:8.1f} KB", "<= 64 KB", host_rss <= 64 * 1024),
        ("RSS per idle Lua process (direct)", f"{raw_rss / 1024:8.1f} KB", "<= 64 KB", raw_rss <= 64 * 1024),
        ("peer: RSS per bare lupa runtime", f"{bare_rss / 1024:8.1f} KB", "(peer)", True),
        ("  ratio RSS direct / bare runtime", f"{raw_rss / bare_rss:8.2f} x", "", True),
        ("Lua heap of one idle state (~, + bare base)", f"{(heap + bare_heap) / 1024:8.1f} KB", "(part of RSS)", True),
        ("  of which a bare runtime's own heap", f"{bare_heap / 1024:8.1f} KB", "(peer)", True),
        ("round trip Python <-> Python", f"{py_rt:8.1f} us", "(peer)", True),
        ("round trip Python -> Lua -> Python", f"{lua_rt:8.1f} us", "", True),
        ("  ratio Lua / Python", f"{lua_rt / py_rt:8.2f} x", "<= 3x", lua_rt / py_rt <= 3),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>11}  {'target':<13} ok")
    for name, value, target, ok in rows:
        print(f"{name:<{width}}  {value:>11}  {target:<13} {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    asyncio.run(main())
