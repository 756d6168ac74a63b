"""Durable execution overhead, side by side: wippy tasks vs DBOS Transact vs LangGraph.

Run: .venv/bin/python bench/durable.py [--quick]
Needs (bench only): pip install dbos langgraph langgraph-checkpoint-sqlite

Measures, in one run on this machine:
1. per-step cost of a 100-step task on SQLite, end to end (start -> result) / 100:
   wippy idempotent steps (one journal write each, the DBOS step model),
   wippy non-idempotent steps (a 'started' marker + the result: two writes),
   DBOS 3.x with its SQLite system database (default settings, and WAL +
   synchronous=NORMAL through a custom engine), LangGraph + SqliteSaver (a
   one-node loop graph, one checkpoint per super-step);
2. storage after N agent-like steps that each add a ~1 KB message: the wippy
   journal (each step stores its own message) vs LangGraph's checkpoints
   (MessagesState: the whole conversation is stored at every step);
3. takeover: a node running a task is SIGKILLed (a real subprocess); another
   node's claimer resumes the task once the lease expires;
4. workflow.lua: what the journal adds to a Lua step (funcs.call of a Lua
   function) against the same calls without a journal, and a full replay.
Peers run in subprocesses so their background threads and globals do not
disturb each other. Each figure is the median of several runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STEPS = 100
MESSAGE = ("The weather in Lisbon is sunny, 24 C, light wind from the north-west. " * 15)[:1000]


# -- wippy ----------------------------------------------------------------------
async def wippy_steps(runs: int, *, idempotent: bool) -> list[float]:
    from wippy_agents.store import open_store
    from wippy_agents.tasks import TaskEngine

    with tempfile.TemporaryDirectory() as tmp:
        store = await open_store(f"sqlite:///{tmp}/state.db")
        engine = TaskEngine(store, node_name="bench")

        async def flow(ctx):
            total = 0
            for i in range(STEPS):
                total += await ctx.step(f"s{i}", lambda i=i: i, idempotent=idempotent)
            return total

        engine.register_kind("flow", flow)
        out = []
        for _ in range(runs + 1):
            t0 = time.perf_counter()
            task = await engine.start("flow", "bench:flow")
            await engine.wait(task.id, timeout=60)
            out.append((time.perf_counter() - t0) / STEPS * 1e6)
        await engine.close()
        await store.close()
    return out[1:]  # the first run warms up


# -- wippy workflow.lua -------------------------------------------------------------
WORKFLOW = """return {handler = function(a)
  local total = 0
  for i = 1, a.n do total = total + funcs.call("bench.tools:inc", {x = i}) end
  return total
end}"""


async def workflow_steps(runs: int) -> dict[str, list[float]]:
    """A workflow.lua whose steps are funcs.call of a (pooled-sandbox) Lua function, against the
    same calls made by a plain function.lua (no journal): what durability adds to a Lua step."""
    import yaml

    from wippy_agents.app import App

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "app" / "src"
        src.mkdir(parents=True)
        (src.parent / "wippy.yaml").write_text(yaml.safe_dump({"sources": ["src"], "store": f"sqlite:///{tmp}/state.db"}))
        entries = [
            {"name": "inc", "kind": "function.lua", "idempotent": True,
             "source": "return {handler = function(a) return a.x end}"},
            {"name": "flow", "kind": "workflow.lua", "modules": ["funcs"], "source": WORKFLOW},
            {"name": "plain", "kind": "function.lua", "modules": ["funcs"], "source": WORKFLOW},
        ]
        (src / "bench.yaml").write_text(yaml.safe_dump({"namespace": "bench.tools", "entries": entries}))
        out: dict[str, list[float]] = {"workflow": [], "plain": [], "replay": []}
        async with await App.open(src.parent) as app:
            flows = app.workflows
            for run in range(runs + 1):
                t0 = time.perf_counter()
                await app.call("bench.tools:plain", {"n": STEPS})
                t1 = time.perf_counter()
                await flows.run("bench.tools:flow", {"n": STEPS}, task_id=f"wf{run}", timeout=60)
                t2 = time.perf_counter()
                # replay: the same task run again on its full journal (as after a crash)
                await app.store.task_update(f"wf{run}", status="stranded", owner=None, lease_expires_at=None)
                await app.tasks.resume(f"wf{run}")
                await app.tasks.wait(f"wf{run}", timeout=60)
                t3 = time.perf_counter()
                if run:
                    out["plain"].append((t1 - t0) / STEPS * 1e6)
                    out["workflow"].append((t2 - t1) / STEPS * 1e6)
                    out["replay"].append((t3 - t2) / STEPS * 1e6)
    return out


async def store_floor(runs: int) -> list[float]:
    """One guarded ``journal_write`` round trip, alone: the floor under any step."""
    from wippy_agents.store import open_store
    from wippy_agents.store.base import StepRecord, TaskRecord

    with tempfile.TemporaryDirectory() as tmp:
        store = await open_store(f"sqlite:///{tmp}/state.db")
        out = []
        for run in range(runs + 1):
            task_id = f"floor-{run}"
            await store.task_create(TaskRecord(id=task_id, kind="k", target="t", input=None, owner="bench"))
            t0 = time.perf_counter()
            for i in range(STEPS):
                step = StepRecord(task_id=task_id, seq=i + 1, name=f"s{i}", status="ok", result=i, started_at=t0)
                await store.journal_write(step, node="bench")
            out.append((time.perf_counter() - t0) / STEPS * 1e6)
        await store.close()
    return out[1:]


async def wippy_storage(steps: int) -> dict:
    from wippy_agents.store import open_store
    from wippy_agents.tasks import TaskEngine

    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/state.db"
        store = await open_store(f"sqlite:///{path}")
        engine = TaskEngine(store, node_name="bench")

        async def agent(ctx):
            for i in range(steps):
                role = "assistant" if i % 2 == 0 else "tool"
                await ctx.step(f"turn{i}", lambda role=role: {"role": role, "content": MESSAGE}, idempotent=True)

        engine.register_kind("agent", agent)
        task = await engine.start("agent", "bench:agent")
        await engine.wait(task.id, timeout=120)
        await engine.close()
        await store.close()
        return _sqlite_size(path, "SELECT SUM(LENGTH(task_id) + LENGTH(name) + LENGTH(status) + LENGTH(result)"
                                  " + COALESCE(LENGTH(error), 0) + 8 * 5) FROM journal")


def _sqlite_size(path: str, row_sql: str) -> dict:
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    rows = db.execute(row_sql).fetchone()[0] or 0
    pages = db.execute("PRAGMA page_count").fetchone()[0] * db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    return {"row_bytes": rows, "file_bytes": pages}


def _scratch() -> str:
    """A temporary folder removed when the (child) process exits."""
    holder = tempfile.TemporaryDirectory(prefix="wippy-bench-")
    _SCRATCH.append(holder)
    return holder.name


_SCRATCH: list[tempfile.TemporaryDirectory] = []


# -- group commit: 100 concurrent tasks, loop stall, synchronous=full ---------------------
class StallProbe:
    """How late a 0.5 ms timer fires on the loop, sampled while the load runs (ms)."""

    def __init__(self) -> None:
        self.lateness: list[float] = []
        self._stop = False

    async def run(self) -> None:
        while not self._stop:
            t0 = time.perf_counter()
            await asyncio.sleep(0.0005)
            self.lateness.append((time.perf_counter() - t0 - 0.0005) * 1e3)

    def stop(self) -> dict:
        self._stop = True
        xs = sorted(self.lateness) or [0.0]
        return {"p99_ms": xs[int(len(xs) * 0.99)], "p999_ms": xs[min(len(xs) - 1, int(len(xs) * 0.999))],
                "max_ms": xs[-1], "samples": len(xs)}


async def wippy_concurrent(runs: int, *, tasks: int = 100, steps: int = 20, url: str | None = None,
                           group_commit: bool = True, idempotent: bool = True, probe: bool = False,
                           suffix: str = "") -> dict:
    """``tasks`` tasks x ``steps`` steps started together; steps/s of the whole run (median of runs)."""
    from wippy_agents.store import open_store
    from wippy_agents.tasks import TaskEngine

    with tempfile.TemporaryDirectory() as tmp:
        store = await open_store(url or f"sqlite:///{tmp}/state.db{suffix}")
        if not group_commit and getattr(store, "writer", None) is not None:
            await store.writer.close()
            store.writer = None  # the one-hand-off-per-write path, for the before/after figure
        engine = TaskEngine(store, node_name="bench", max_tasks=tasks * 2)

        async def flow(ctx):
            for i in range(steps):
                await ctx.step(f"s{i}", lambda i=i: i, idempotent=idempotent)

        engine.register_kind("flow", flow)
        rates, stalls = [], []
        for run in range(runs + 1):
            p = StallProbe()
            pt = asyncio.create_task(p.run()) if probe else None
            t0 = time.perf_counter()
            started = [await engine.start("flow", "bench:flow", task_id=f"r{run}-{i}") for i in range(tasks)]
            await asyncio.gather(*(engine.wait(t.id, timeout=120) for t in started))
            rates.append(tasks * steps / (time.perf_counter() - t0))
            if pt is not None:
                stalls.append(p.stop())
                await pt
        stats = dict(getattr(store, "writer", None).stats) if getattr(store, "writer", None) else {}
        await engine.close()
        await store.close()
    out = {"steps_per_s": statistics.median(rates[1:]), "writer": stats}
    if stalls:
        out["stall"] = max(stalls[1:], key=lambda d: d["p999_ms"])
    return out


async def wippy_steps_url(runs: int, url_suffix: str) -> list[float]:
    """``wippy_steps`` (idempotent) on a store URL with ``url_suffix`` (e.g. ``?synchronous=full``)."""
    from wippy_agents.store import open_store
    from wippy_agents.tasks import TaskEngine

    with tempfile.TemporaryDirectory() as tmp:
        store = await open_store(f"sqlite:///{tmp}/state.db{url_suffix}")
        engine = TaskEngine(store, node_name="bench")

        async def flow(ctx):
            for i in range(STEPS):
                await ctx.step(f"s{i}", lambda i=i: i, idempotent=True)

        engine.register_kind("flow", flow)
        out = []
        for _ in range(runs + 1):
            t0 = time.perf_counter()
            task = await engine.start("flow", "bench:flow")
            await engine.wait(task.id, timeout=60)
            out.append((time.perf_counter() - t0) / STEPS * 1e6)
        await engine.close()
        await store.close()
    return out[1:]


def dbos_concurrent_child(runs: int, wal: bool, url: str = "", tasks: int = 100, steps: int = 20) -> list[float]:
    """DBOS: ``tasks`` workflows of ``steps`` steps started together (its thread pool); steps/s."""
    import logging

    import sqlalchemy as sa
    from dbos import DBOS
    from sqlalchemy import event

    logging.getLogger("dbos").setLevel(logging.WARNING)
    if not url:
        url = f"sqlite:///{_scratch()}/dbos.sqlite"
    config = {"name": "bench", "system_database_url": url, "run_admin_server": False}
    if wal and url.startswith("sqlite"):
        engine = sa.create_engine(url)

        @event.listens_for(engine, "connect")
        def pragmas(conn, _record):
            conn.isolation_level = "IMMEDIATE"
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")

        config["system_database_engine"] = engine

    @DBOS.step()
    def step(i):
        return i

    @DBOS.workflow()
    def flow():
        return sum(step(i) for i in range(steps))

    DBOS(config=config)
    DBOS.launch()
    out = []
    for _ in range(runs + 1):
        t0 = time.perf_counter()
        handles = [DBOS.start_workflow(flow) for _ in range(tasks)]
        for h in handles:
            h.get_result()
        out.append(tasks * steps / (time.perf_counter() - t0))
    DBOS.destroy()
    return out[1:]


# -- DBOS (subprocess) ----------------------------------------------------------------
def dbos_child(runs: int, wal: bool) -> list[float]:
    import logging

    import sqlalchemy as sa
    from dbos import DBOS
    from sqlalchemy import event

    logging.getLogger("dbos").setLevel(logging.WARNING)
    tmp = _scratch()
    url = f"sqlite:///{tmp}/dbos.sqlite"
    config = {"name": "bench", "system_database_url": url, "run_admin_server": False}
    if wal:
        engine = sa.create_engine(url)

        @event.listens_for(engine, "connect")
        def pragmas(conn, _record):  # what DBOS sets, plus WAL and synchronous=NORMAL
            conn.isolation_level = "IMMEDIATE"
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")

        config["system_database_engine"] = engine

    @DBOS.step()
    def step(i):
        return i

    @DBOS.workflow()
    def flow():
        return sum(step(i) for i in range(STEPS))

    DBOS(config=config)
    DBOS.launch()
    out = []
    for _ in range(runs + 1):
        t0 = time.perf_counter()
        flow()
        out.append((time.perf_counter() - t0) / STEPS * 1e6)
    DBOS.destroy()
    return out[1:]


# -- LangGraph (subprocess) ---------------------------------------------------------
def langgraph_child(runs: int) -> list[float]:
    from typing import TypedDict

    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.graph import END, START, StateGraph

    class State(TypedDict):
        count: int

    graph = StateGraph(State)
    graph.add_node("step", lambda s: {"count": s["count"] + 1})
    graph.add_edge(START, "step")
    graph.add_conditional_edges("step", lambda s: "step" if s["count"] < STEPS else END)
    tmp = _scratch()
    conn = sqlite3.connect(f"{tmp}/lg.sqlite", check_same_thread=False)
    app = graph.compile(checkpointer=SqliteSaver(conn))
    out = []
    for run in range(runs + 1):
        t0 = time.perf_counter()
        app.invoke({"count": 0}, {"configurable": {"thread_id": f"t{run}"}, "recursion_limit": STEPS + 10})
        out.append((time.perf_counter() - t0) / STEPS * 1e6)
    conn.close()
    return out[1:]


def langgraph_storage_child(steps: int) -> dict:
    from langchain_core.messages import AIMessage, ToolMessage
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.graph import END, START, MessagesState, StateGraph

    def turn(state):
        i = len(state["messages"])
        msg = AIMessage(content=MESSAGE) if i % 2 == 0 else ToolMessage(content=MESSAGE, tool_call_id=f"c{i}")
        return {"messages": [msg]}

    graph = StateGraph(MessagesState)
    graph.add_node("turn", turn)
    graph.add_edge(START, "turn")
    graph.add_conditional_edges("turn", lambda s: "turn" if len(s["messages"]) < steps else END)
    tmp = _scratch()
    path = f"{tmp}/lg.sqlite"
    conn = sqlite3.connect(path, check_same_thread=False)
    app = graph.compile(checkpointer=SqliteSaver(conn))
    app.invoke({"messages": []}, {"configurable": {"thread_id": "t"}, "recursion_limit": steps + 10})
    conn.close()
    return _sqlite_size(path, "SELECT (SELECT SUM(LENGTH(checkpoint) + LENGTH(metadata)) FROM checkpoints)"
                              " + (SELECT COALESCE(SUM(LENGTH(value)), 0) FROM writes)")


# -- takeover (node A is a real process) --------------------------------------------
LEASE, BEAT, CLAIM = 2.0, 0.5, 0.1


def node_a_child(url: str, task_id: str) -> None:
    async def main():
        from wippy_agents.store import open_store
        from wippy_agents.tasks import TaskEngine

        store = await open_store(url)
        engine = TaskEngine(store, node_name="a", lease_seconds=LEASE, heartbeat_seconds=BEAT)

        async def flow(ctx):
            for i in range(3):
                await ctx.step(f"s{i}", lambda i=i: i, idempotent=True)
            print("PARKED", flush=True)
            await asyncio.Event().wait()

        engine.register_kind("flow", flow)
        await engine.start("flow", "bench:flow", task_id=task_id)
        await asyncio.Event().wait()

    asyncio.run(main())


async def takeover(trials: int) -> list[dict]:
    from wippy_agents.store import open_store
    from wippy_agents.tasks import TaskEngine

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/state.db"
        store = await open_store(url)
        resumed: dict[str, float] = {}
        done = asyncio.Event()

        async def flow(ctx):
            for i in range(3):
                await ctx.step(f"s{i}", lambda i=i: i, idempotent=True)
            resumed[ctx.task.id] = time.time()
            done.set()

        engine_b = TaskEngine(store, node_name="b", lease_seconds=LEASE, heartbeat_seconds=BEAT, claim_interval=CLAIM)
        engine_b.register_kind("flow", flow)
        for trial in range(trials):
            task_id = f"takeover-{trial}"
            child = subprocess.Popen(
                [sys.executable, __file__, "--child", "node-a", url, task_id], stdout=subprocess.PIPE, text=True
            )
            line = await asyncio.to_thread(child.stdout.readline)
            assert line.strip() == "PARKED", line
            child.send_signal(signal.SIGKILL)
            killed = time.time()
            child.wait()
            lease_end = (await store.task_get(task_id)).lease_expires_at
            done.clear()
            await asyncio.wait_for(done.wait(), LEASE * 5)
            out.append({"kill_to_resumed": resumed[task_id] - killed, "expiry_to_resumed": resumed[task_id] - lease_end})
            await engine_b.wait(task_id, timeout=10)
        await engine_b.close()
        await store.close()
    return out


# -- driver ----------------------------------------------------------------------
def child_json(*args: str) -> object:
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"bench child {args} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer runs")
    parser.add_argument("--child", nargs="+")
    parser.add_argument("--json", action="store_true", help="group-commit figures only, one JSON object last")
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "node-a":
            return node_a_child(*rest)
        fns = {"dbos-concurrent": lambda: dbos_concurrent_child(int(rest[0]), True),
               "dbos": lambda: dbos_child(int(rest[0]), rest[1] == "wal"), "langgraph": lambda: langgraph_child(int(rest[0])),
               "langgraph-storage": lambda: langgraph_storage_child(int(rest[0]))}
        print(json.dumps(fns[kind]()))
        return None

    runs = 3 if args.quick else 9
    med = statistics.median
    if args.json:
        return json_figures(runs)
    print(f"per-step cost of a {STEPS}-step task on SQLite (end to end / {STEPS}, median of {runs} runs; "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f})")
    rows = [
        ("floor: one store journal_write round trip", med(asyncio.run(store_floor(runs)))),
        ("wippy, idempotent steps (result only)", med(asyncio.run(wippy_steps(runs, idempotent=True)))),
        ("wippy, non-idempotent (started marker + result)", med(asyncio.run(wippy_steps(runs, idempotent=False)))),
        ("DBOS Transact, SQLite defaults", med(child_json("dbos", str(runs), "default"))),
        ("DBOS Transact, SQLite WAL + synchronous=NORMAL", med(child_json("dbos", str(runs), "wal"))),
        ("LangGraph + SqliteSaver", med(child_json("langgraph", str(runs)))),
    ]
    floor, base = rows[0][1], rows[1][1]
    print(f"  {'system':<50} {'us/step':>9} {'x wippy':>8}")
    for name, value in rows:
        print(f"  {name:<50} {value:>9.0f} {value / base:>8.1f}")
    print(f"  target: wippy <= 200 us/step -> {'met' if base <= 200 else 'NOT met'} ({base:.0f} us;"
          f" {base / floor:.2f}x the bare write round trip measured in this run)")

    wf = asyncio.run(workflow_steps(runs))
    plain = med(wf["plain"])
    print(f"\nworkflow.lua: {STEPS} funcs.call steps of a Lua function (sandbox per call), us/step, median of {runs}")
    print(f"  {'plain function.lua making the same calls (no journal)':<56} {plain:>7.0f}")
    print(f"  {'workflow.lua, each call a journaled step':<56} {med(wf['workflow']):>7.0f}"
          f"  (+{med(wf['workflow']) - plain:.0f} us for durability)")
    print(f"  {'workflow.lua replayed after a crash (journal answers)':<56} {med(wf['replay']):>7.0f}")

    print("\nstorage after N steps that each add a ~1 KB message (bytes of rows; SQLite file size)")
    ours = {n: asyncio.run(wippy_storage(n)) for n in (200, 500)}
    lg200 = child_json("langgraph-storage", "200")
    print(f"  {'store':<44} {'row bytes':>12} {'file bytes':>12}")
    print(f"  {'wippy journal, 200 steps':<44} {ours[200]['row_bytes']:>12,} {ours[200]['file_bytes']:>12,}")
    print(f"  {'wippy journal, 500 steps':<44} {ours[500]['row_bytes']:>12,} {ours[500]['file_bytes']:>12,}")
    print(f"  {'LangGraph SqliteSaver checkpoints, 200 steps':<44} {lg200['row_bytes']:>12,} {lg200['file_bytes']:>12,}")
    ratio = ours[200]["row_bytes"] / lg200["row_bytes"]
    linear = ours[500]["row_bytes"] / ours[200]["row_bytes"]
    print(f"  wippy/LangGraph at 200 steps: 1/{1 / ratio:.0f} (target <= 1/100 -> {'met' if ratio <= 0.01 else 'NOT met'});"
          f" wippy 500/200 steps: {linear:.2f}x (linear = 2.50x)")

    trials = 2 if args.quick else 3
    print(f"\ntakeover after SIGKILL of the owning node (lease {LEASE}s, heartbeat {BEAT}s, claimer every {CLAIM}s;"
          f" {trials} trials)")
    results = asyncio.run(takeover(trials))
    for r in results:
        print(f"  kill -> resumed {r['kill_to_resumed']:.2f}s   lease expiry -> resumed {r['expiry_to_resumed']:.3f}s")
    worst = max(r["kill_to_resumed"] for r in results)
    print(f"  bound: lease ({LEASE}s) + claim interval ({CLAIM}s) = {LEASE + CLAIM:.1f}s; worst {worst:.2f}s")


def json_figures(runs: int) -> None:
    """The issue-17 figures, same run as DBOS; one JSON object on the last stdout line."""
    med = statistics.median
    gc = asyncio.run(wippy_concurrent(runs, probe=True))
    out = {
        "load": os.getloadavg()[0],
        "step_us": med(asyncio.run(wippy_steps(runs, idempotent=True))),
        "step_us_non_idempotent": med(asyncio.run(wippy_steps(runs, idempotent=False))),
        "step_us_full": med(asyncio.run(wippy_steps_url(runs, "?synchronous=full"))),
        "steps_per_s_100": gc["steps_per_s"],
        "steps_per_s_100_no_group_commit": asyncio.run(wippy_concurrent(runs, group_commit=False))["steps_per_s"],
        "steps_per_s_100_full": asyncio.run(wippy_concurrent(runs, suffix="?synchronous=full"))["steps_per_s"],
        "stall_p999_ms": gc["stall"]["p999_ms"],
        "stall_max_ms": gc["stall"]["max_ms"],
        "dbos_step_us": med(child_json("dbos", str(runs), "wal")),
        "dbos_steps_per_s_100": med(child_json("dbos-concurrent", str(runs))),
    }
    for k, v in out.items():
        print(f"  {k:<36} {v if not isinstance(v, float) else round(v, 2)}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
