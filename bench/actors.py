"""Benchmark the actor kernel against raw asyncio and pykka, side by side in one run.

Run with ``make bench`` (or ``.venv/bin/python bench/actors.py [--quick]``).
Every ratio compares two figures measured in this process in alternating
rounds (peer, ours, peer, ours, ...), best of each, so machine load (these
are shared machines) mostly cancels out. Targets
come from issue 2. The garbage collector stays on for every row (it is part
of what a real node pays); the spawn row also prints a GC-paused variant for
reference only.

pykka (thread-based actors) is a bench-only dependency: ``pip install pykka``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import sys
import time
import tracemalloc
from dataclasses import dataclass
from typing import Awaitable, Callable

from wippy_agents.runtime import Node

# CPU time of this process (all its threads): on a shared, loaded machine wall-clock
# time mostly measures the neighbours; CPU time measures the work. --wall switches.
CLOCK = time.process_time


@dataclass(frozen=True, kw_only=True)
class Row:
    name: str
    ours: float
    peer: float
    peer_name: str
    unit: str
    target: str
    ok: bool


# -- ping-pong -------------------------------------------------------------------------


async def raw_queue_pingpong(n: int) -> float:
    a: asyncio.Queue = asyncio.Queue()
    b: asyncio.Queue = asyncio.Queue()

    async def pong() -> None:
        while True:
            v = await b.get()
            if v is None:
                return
            a.put_nowait(v)

    task = asyncio.ensure_future(pong())
    t0 = CLOCK()
    for i in range(n):
        b.put_nowait(i)
        await a.get()
    dt = CLOCK() - t0
    b.put_nowait(None)
    await task
    return dt / n


async def kernel_pingpong(n: int) -> float:
    async with Node("bench") as node:
        done = asyncio.get_running_loop().create_future()

        async def pong(proc):
            while True:
                msg = await proc.receive()
                proc.send(msg.sender, "pong", msg.payload)

        async def ping(proc, peer):
            t0 = CLOCK()
            for i in range(n):
                proc.send(peer, "ping", i)
                await proc.receive()
            done.set_result((CLOCK() - t0) / n)

        node.spawn(ping, node.spawn(pong))
        return await done


# -- request/reply ------------------------------------------------------------------------


async def raw_request_reply(n: int) -> float:
    q: asyncio.Queue = asyncio.Queue()
    loop = asyncio.get_running_loop()

    async def server() -> None:
        while True:
            item = await q.get()
            if item is None:
                return
            value, fut = item
            fut.set_result(value)

    task = asyncio.ensure_future(server())
    t0 = CLOCK()
    for i in range(n):
        fut = loop.create_future()
        q.put_nowait((i, fut))
        await fut
    dt = CLOCK() - t0
    q.put_nowait(None)
    await task
    return dt / n


async def kernel_call(n: int) -> float:
    async with Node("bench") as node:
        done = asyncio.get_running_loop().create_future()

        async def server(proc):
            while True:
                msg = await proc.receive()
                proc.reply(msg, msg.payload)

        async def client(proc, srv):
            t0 = CLOCK()
            for i in range(n):
                await proc.call(srv, "q", i, timeout=5.0)
            done.set_result((CLOCK() - t0) / n)

        node.spawn(client, node.spawn(server))
        return await done


def pykka_ask(n: int) -> float:
    import pykka

    class Echo(pykka.ThreadingActor):
        def on_receive(self, message):
            return message

    ref = Echo.start()
    try:
        t0 = CLOCK()
        for i in range(n):
            ref.ask(i, timeout=5.0)
        return (CLOCK() - t0) / n
    finally:
        ref.stop()


# -- spawn + exit -------------------------------------------------------------------------


async def raw_spawn_exit(n: int) -> float:
    async def body() -> None:
        return None

    loop = asyncio.get_running_loop()
    t0 = CLOCK()
    tasks = [loop.create_task(body()) for _ in range(n)]
    await asyncio.gather(*tasks)
    return (CLOCK() - t0) / n


async def kernel_spawn_exit(n: int) -> float:
    async def body(proc) -> None:
        return None

    async with Node("bench") as node:
        done = asyncio.get_running_loop().create_future()
        left = [n]

        def on_exit(_pid, _reason):
            left[0] -= 1
            if left[0] == 0:
                done.set_result(None)

        node.on_exit(on_exit)
        t0 = CLOCK()
        for _ in range(n):
            node.spawn(body)
        await done
        return (CLOCK() - t0) / n


# -- memory -----------------------------------------------------------------------------


async def kernel_idle_memory(n: int) -> float:
    async def idle(proc) -> None:
        await proc.receive()

    node = Node("bench")
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(n):
        node.spawn(idle)
    for _ in range(3):
        await asyncio.sleep(0)  # every body has reached its receive
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    await node.stop()
    return (after - before) / n


async def raw_idle_memory(n: int) -> float:
    loop = asyncio.get_running_loop()
    futs = [loop.create_future() for _ in range(n)]

    async def idle(f) -> None:
        await f

    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tasks = [loop.create_task(idle(f)) for f in futs]
    for _ in range(3):
        await asyncio.sleep(0)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    for f in futs:
        f.set_result(None)
    await asyncio.gather(*tasks)
    return (after - before) / n


# -- main -------------------------------------------------------------------------------


async def pair(rounds: int, ours: Callable[[], Awaitable[float]], peer: Callable[[], Awaitable[float]]):
    """Best of ``rounds`` for each side, alternating so both see the same machine load."""
    best_ours = best_peer = float("inf")
    for _ in range(rounds):
        best_peer = min(best_peer, await peer())
        best_ours = min(best_ours, await ours())
    return best_ours, best_peer


async def run(quick: bool) -> list[Row]:
    rounds = 10 if quick else 30  # many short rounds: the best of them dodges the neighbours' bursts
    msgs = 2_000
    spawns = 100_000
    rows = []

    ours, raw = await pair(rounds, lambda: kernel_pingpong(msgs), lambda: raw_queue_pingpong(msgs))
    rows.append(Row(name="send+receive round trip", ours=ours * 1e6, peer=raw * 1e6, peer_name="asyncio.Queue",
                    unit="µs", target="≤ 1.5×", ok=ours / raw <= 1.5))

    ours_call, raw = await pair(rounds, lambda: kernel_call(msgs), lambda: raw_request_reply(msgs))
    rows.append(Row(name="call (timeout=5) round trip", ours=ours_call * 1e6, peer=raw * 1e6,
                    peer_name="queue+future, no timeout", unit="µs", target="≤ 2×", ok=ours_call / raw <= 2.0))

    if importlib.util.find_spec("pykka") is None:
        print("pykka not installed: `pip install pykka` for the pykka row", file=sys.stderr)
    else:
        async def pk() -> float:
            return pykka_ask(msgs // 4)

        ours_call, peer = await pair(rounds, lambda: kernel_call(msgs), pk)
        rows.append(Row(name="call vs pykka ask", ours=ours_call * 1e6, peer=peer * 1e6, peer_name="pykka ask",
                        unit="µs", target="≥ 4× faster", ok=peer / ours_call >= 4.0))

    spawn_rounds = 3 if quick else 5
    ours, raw = await pair(spawn_rounds, lambda: kernel_spawn_exit(spawns), lambda: raw_spawn_exit(spawns))
    rows.append(Row(name=f"spawn+exit ×{spawns:,} (per process)", ours=ours * 1e6, peer=raw * 1e6,
                    peer_name="create_task", unit="µs", target="≤ 3×", ok=ours / raw <= 3.0))
    gc.disable()
    try:
        ours, raw = await pair(spawn_rounds, lambda: kernel_spawn_exit(spawns), lambda: raw_spawn_exit(spawns))
    finally:
        gc.enable()
    rows.append(Row(name="  same, GC paused (reference only)", ours=ours * 1e6, peer=raw * 1e6,
                    peer_name="create_task", unit="µs", target="-", ok=True))

    mem = await kernel_idle_memory(spawns)
    raw_mem = await raw_idle_memory(spawns)
    rows.append(Row(name="memory per idle process", ours=mem / 1024, peer=raw_mem / 1024,
                    peer_name="task awaiting a future", unit="KB", target="≤ 3 KB", ok=mem / 1024 <= 3.0))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages and rounds")
    parser.add_argument("--wall", action="store_true", help="wall-clock instead of process CPU time")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio", help="the event loop to run on")
    args = parser.parse_args()
    global CLOCK
    if args.wall:
        CLOCK = time.perf_counter
    factory = None
    if args.loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        rows = runner.run(run(args.quick))
    print(f"\nwippy_agents.runtime on {args.loop} — Python {sys.version.split()[0]}, best of {10 if args.quick else 30} "
          f"alternating rounds per row, {'wall-clock' if args.wall else 'process CPU'} time\n")
    header = f"{'measure':38} {'ours':>10} {'peer':>10}  {'ratio':>7}  {'target':12} {'ok':3}  peer"
    print(header)
    print("-" * len(header))
    for r in rows:
        if r.name.startswith("call vs pykka"):
            ratio = f"{r.peer / r.ours:6.1f}×f"
        elif r.unit == "KB":
            ratio = f"{r.ours / r.peer:6.2f}×"
        else:
            ratio = f"{r.ours / r.peer:6.2f}×"
        print(f"{r.name:38} {r.ours:8.2f}{r.unit:>2} {r.peer:8.2f}{r.unit:>2}  {ratio:>7}  {r.target:12} "
              f"{'yes' if r.ok else 'NO':3}  {r.peer_name}")
    print("\n×f = times faster than the peer; other ratios are ours / peer (lower is better).")
    missed = [r.name.strip() for r in rows if not r.ok]
    if missed:
        print("targets missed: " + "; ".join(missed))
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
