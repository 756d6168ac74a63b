"""Benchmark operating nodes (issue 12): takeover, follow latency, queue throughput — one run, real processes.

    .venv/bin/python bench/cluster.py [--quick] [--pg postgresql://postgres@127.0.0.1:5432/test]

* takeover after SIGKILL as a function of the lease (1/2/4 s): node A runs a
  workflow, is SIGKILLed, node B (another "host", ``WIPPY_HOST``) takes it
  over once the lease expired — and, for the same-host rule, a node on A's own
  host that knows at once that A's process is gone;
* follow latency: a version made by one process until ``registry.changed``
  on a following node, p50/p99, SQLite (polling) and PostgreSQL (NOTIFY);
* queue throughput on PostgreSQL: tasks queued with the store API and run by
  ``wippy run`` workers (``max_tasks`` each), empty and 5-step workflows, on
  1 and 2 nodes in the same run (the ratio is the figure to read; the machine
  is shared, so absolute rates move with the neighbours).

Each scenario uses a private schema (dropped at the end) or a temporary file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wippy_agents.app import App  # noqa: E402
from wippy_agents.store import TaskRecord, open_store  # noqa: E402

PG = "postgresql://postgres@127.0.0.1:5432/test"
SLEEPER = "return {handler = function(a) for i = 1, 200 do time.sleep('100ms') end return 1 end}"
EMPTY = "return {handler = function(a) return a.n end}"
FIVE = "return {handler = function(a) local t = 0 for i = 1, 5 do t = t + time.now() * 0 + 1 end return t end}"
TOOL = "return {handler = function(a) return %r end}"


# -- helpers ------------------------------------------------------------------
async def _schema(dsn: str) -> str:
    import asyncpg

    name = "bench_" + uuid.uuid4().hex[:10]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE SCHEMA "{name}"')
    finally:
        await conn.close()
    return name


async def _drop(dsn: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


def _app(root: Path, store: str, flows: dict[str, str], *, lease: float, claim: float, max_tasks: int = 50) -> str:
    root.mkdir(parents=True, exist_ok=True)
    (root / "src").mkdir(exist_ok=True)
    (root / "wippy.yaml").write_text(yaml.safe_dump({
        "sources": ["src"], "store": store, "max_tasks": max_tasks,
        "tasks": {"lease_seconds": lease, "heartbeat_seconds": lease / 4, "claim_interval": claim}}))
    (root / "src" / "flows.yaml").write_text(yaml.safe_dump({"namespace": "app.flows", "entries": [
        {"name": n, "kind": "workflow.lua", "source": src, "modules": ["time"]} for n, src in flows.items()]}))
    return str(root)


async def _node(app: str, name: str, *, host: str | None = None) -> asyncio.subprocess.Process:
    env = {**os.environ, **({"WIPPY_HOST": host} if host else {})}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wippy_agents.cli", "run", "--app", app, "--node", name, "--log-level", "WARNING",
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    return proc


async def _until(check, timeout: float, every: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(every)
    raise TimeoutError("bench: condition not met")


async def _queue(store, target: str, n: int, input_of=lambda i: {"n": i}) -> list[str]:
    ids = []
    for i in range(n):
        task_id = f"q{i:05d}"
        await store.task_create(TaskRecord(id=task_id, kind="workflow", target=target, input=input_of(i)))
        ids.append(task_id)
    return ids


async def _stop(*procs: asyncio.subprocess.Process) -> None:
    for proc in procs:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


# -- takeover -----------------------------------------------------------------------
async def takeover(dsn: str, lease: float, *, same_host: bool) -> float:
    schema = await _schema(dsn)
    url = f"{dsn}?schema={schema}"
    tmp = Path(tempfile.mkdtemp(prefix="wippy-bench-"))
    app = _app(tmp / "app", url, {"sleeper": SLEEPER}, lease=lease, claim=0.05)
    store = await open_store(url)
    procs = []
    try:
        a = await _node(app, "A", host=None if same_host else "host-a")
        procs.append(a)
        await _queue(store, "app.flows:sleeper", 1)
        await _until(lambda: _owner(store, "q00000", "A"), 30)
        b = await _node(app, "B", host=None if same_host else "host-b")
        procs.append(b)
        await _until(lambda: _node_up(store, "B"), 30)
        await asyncio.sleep(lease / 2)
        a.kill()
        killed = time.monotonic()
        await a.wait()
        await _until(lambda: _owner(store, "q00000", "B"), lease * 4 + 10, every=0.005)
        return time.monotonic() - killed
    finally:
        await _stop(*procs)
        await store.close()
        await _drop(dsn, schema)


async def _owner(store, task_id: str, node: str) -> bool:
    task = await store.task_get(task_id)
    return task is not None and task.owner == node


async def _node_up(store, name: str) -> bool:
    return await store.node_get(name) is not None


# -- follow latency ----------------------------------------------------------------------
async def follow(url: str, samples: int) -> list[float]:
    tmp = Path(tempfile.mkdtemp(prefix="wippy-bench-"))
    path = tmp / "app.yaml"
    path.write_text(yaml.safe_dump({"wippy": {"store": url}}) + "---\n" + yaml.safe_dump(
        {"namespace": "app.tools", "entries": [{"name": "answer", "kind": "function.lua", "source": TOOL % "v0"}]}))
    node = await App.open(path, follow=True, recover=False, claim_interval=0, publish=True)
    other = await App.open(path, recover=False, claim_interval=0, publish=True)
    seen: dict[int, float] = {}
    arrived = asyncio.Event()

    def changed(version, ids):
        seen[version] = time.monotonic()
        arrived.set()

    node.registry.subscribe(changed)
    delays = []
    rng = random.Random(12)
    try:
        for i in range(samples):
            arrived.clear()
            await asyncio.sleep(rng.uniform(0.0, 0.3))  # writes land anywhere in the SQLite poll interval
            cs = other.registry.changeset(author="bench", reason=f"edit {i}")
            cs.update("app.tools:answer", {"source": TOOL % f"v{i + 1}"})
            sent = time.monotonic()
            version = await other.registry.apply(cs)
            await asyncio.wait_for(arrived.wait(), 5)
            delays.append(seen[version] - sent)
    finally:
        await other.close()
        await node.close()
    return delays


# -- queue throughput ------------------------------------------------------------------------
async def throughput(dsn: str, source: str, tasks: int, nodes: int, max_tasks: int) -> float:
    schema = await _schema(dsn)
    url = f"{dsn}?schema={schema}"
    tmp = Path(tempfile.mkdtemp(prefix="wippy-bench-"))
    app = _app(tmp / "app", url, {"flow": source}, lease=10.0, claim=0.05, max_tasks=max_tasks)
    store = await open_store(url)
    procs = [await _node(app, f"w{i}") for i in range(nodes)]
    try:
        await _until(lambda: _nodes_up(store, nodes), 60)
        start = time.monotonic()
        await _queue(store, "app.flows:flow", tasks)
        await _until(lambda: _all_done(store, tasks), 300, every=0.05)
        return tasks / (time.monotonic() - start)
    finally:
        await _stop(*procs)
        await store.close()
        await _drop(dsn, schema)


async def _nodes_up(store, n: int) -> bool:
    return len(await store.node_list()) >= n


async def _all_done(store, n: int) -> bool:
    done = await store.task_list(status="succeeded", limit=n)
    return len(done) >= n


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=PG)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=["takeover", "follow", "queue"], default=None)
    args = parser.parse_args()
    print(f"wippy-agents cluster bench · {os.cpu_count()} cores · load {os.getloadavg()[0]:.1f}")

    if args.only in (None, "takeover"):
        await _takeovers(args)
    if args.only in (None, "follow"):
        await _follows(args)
    if args.only in (None, "queue"):
        await _queues(args)


async def _takeovers(args: argparse.Namespace) -> None:
    print("\ntakeover after SIGKILL (kill -> the other node owns the task)")
    for lease in (1.0, 2.0, 4.0):
        other = await takeover(args.pg, lease, same_host=False)
        same = await takeover(args.pg, lease, same_host=True)
        print(f"  lease {lease:.0f} s: other host {other:5.2f} s ({other / lease:.2f}x the lease) · "
              f"same host {same:5.2f} s ({same / other:.2f}x of the other-host figure)")



async def _follows(args: argparse.Namespace) -> None:
    samples = 20 if args.quick else 60
    print(f"\nfollow latency ({samples} versions; SPEC: <= 1 s SQLite, <= 200 ms PostgreSQL)")
    tmp = Path(tempfile.mkdtemp(prefix="wippy-bench-"))
    schema = await _schema(args.pg)
    try:
        figures = {"sqlite": await follow(f"sqlite:///{tmp / 'f.db'}", samples),
                   "postgresql": await follow(f"{args.pg}?schema={schema}", samples)}
    finally:
        await _drop(args.pg, schema)
    for name, delays in figures.items():
        print(f"  {name:10s} p50 {_pct(delays, 0.5) * 1000:6.1f} ms · p99 {_pct(delays, 0.99) * 1000:6.1f} ms")
    print(f"  ratio sqlite/postgresql p50: {_pct(figures['sqlite'], 0.5) / _pct(figures['postgresql'], 0.5):.1f}x")



async def _queues(args: argparse.Namespace) -> None:
    n = 100 if args.quick else 300
    print(f"\nqueue throughput on PostgreSQL ({n} tasks, max_tasks 50 per node; tasks started and finished per s)")
    for label, source in (("empty", EMPTY), ("5-step", FIVE)):
        one = await throughput(args.pg, source, n, 1, 50)
        two = await throughput(args.pg, source, n, 2, 50)
        print(f"  {label:7s} 1 node {one:7.1f}/s · 2 nodes {two:7.1f}/s ({two / one:.2f}x)")


if __name__ == "__main__":
    asyncio.run(main())
