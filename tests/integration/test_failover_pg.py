"""Two `wippy run` nodes on one PostgreSQL store: B takes over A's workflow (SPEC §7, issue 5).

Node A runs a workflow; node B is up the whole time and must not touch the
task while A's lease is live. A and B act as two hosts (``WIPPY_HOST``): on
one host B would know at once that A's process is gone. A is SIGKILLed during a durable sleep; B claims
the task once A's lease expires and finishes it. The test's effects table
has ``UNIQUE (task, step)``: a step run by both nodes (or twice by one)
would fail its insert, and with it the workflow.
"""

from __future__ import annotations

import time

import asyncpg

from wippy_agents.store import open_store

from .wf_node import pg_target
from .wf_support import NodeProc, enqueue, until, write_app

RELAY = """
return {handler = function(args)
  local total = 0
  for i = 1, args.steps do
    local r, err = funcs.call("test.fx:once", {task = workflow.id(), step = i})
    if err then return nil, err end
    total = total + r
    time.sleep("700ms")
  end
  return total
end}
"""

LEASE, BEAT, CLAIM = 2.0, 0.4, 0.2
STEPS = 6


async def test_node_b_finishes_node_a_workflow_after_its_lease_expires(tmp_path, pg_url):
    dsn, schema = pg_target(pg_url)
    conn = await asyncpg.connect(dsn)
    await conn.execute(f'CREATE TABLE "{schema}".effects (task TEXT, step INT, tool TEXT, node TEXT, pid INT, '
                       "at DOUBLE PRECISION, UNIQUE (task, step))")
    app = write_app(tmp_path, pg_url, {"relay": RELAY}, lease=LEASE, beat=BEAT, claim=CLAIM)
    nodes: list[NodeProc] = []

    async def start(name: str) -> NodeProc:
        node = await NodeProc.start("run", "--app", app, "--node", name,
                                    env={"WF_EFFECTS": pg_url, "WF_NODE": name, "WF_PAUSE": "0.01",
                                         "WIPPY_HOST": f"host-{name}"})
        nodes.append(node)
        assert await node.wait_ready(), node.log()
        return node

    async def effects() -> list:
        return await conn.fetch(f'SELECT step, node, at FROM "{schema}".effects ORDER BY step')

    store = await open_store(pg_url)
    try:
        a = await start("A")
        await enqueue(pg_url, "relay-1", "app.flows:relay", {"steps": STEPS})
        await until(lambda: _owner_is(store, "A"), timeout=10, what="node A to claim the task")
        b = await start("B")  # B is live from here on and claims every 0.2 s
        # Kill A inside a sleep after step 3 or later (no step in flight); until then its lease is live
        # and B, up and claiming, must leave the task alone.
        try:
            done = await until(lambda: _asleep(store), timeout=30, what="A to sleep after step 3")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- A:\n{a.log()}\n--- B:\n{b.log()}") from None
        before = await store.task_get("relay-1")
        assert before.owner == "A", before
        a.kill()
        killed_at = time.time()
        assert await a.finish() == -9
        lease_end = (await store.task_get("relay-1")).lease_expires_at
        claimed = await until(lambda: _owner_is(store, "B"), timeout=LEASE + 10, what="node B to claim the task",
                              every=0.02)
        claimed_at = time.time()
        task = await until(lambda: _finished(store), timeout=20, what="the workflow to finish on B")
        rows = await effects()
        assert await b.stop() == 0, b.log()
    finally:
        for node in nodes:
            node.kill()
            await node.finish()
        await store.close()
        await conn.close()

    assert claimed and task.status == "succeeded" and task.result == sum(range(1, STEPS + 1)), task
    assert task.owner == "B"
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))  # each step once (UNIQUE would refuse more)
    assert [r["node"] for r in rows] == ["A"] * done + ["B"] * (STEPS - done)
    assert claimed_at >= lease_end - 0.05  # never before A's lease ran out (clock read granularity)
    b_first = rows[done]["at"]
    assert b_first >= lease_end  # B's first effect only after the lease expired
    print(f"takeover (lease {LEASE}s, heartbeat {BEAT}s, claim every {CLAIM}s): kill -> claim "
          f"{claimed_at - killed_at:.2f}s, lease expiry -> claim seen {claimed_at - lease_end:.2f}s, "
          f"lease expiry -> next step's effect on B {b_first - lease_end:.2f}s")


async def _owner_is(store, name: str) -> bool:
    task = await store.task_get("relay-1")
    return task is not None and task.owner == name


async def _finished(store):
    task = await store.task_get("relay-1")
    return task if task is not None and task.status in ("succeeded", "failed", "stranded") else None


async def _asleep(store) -> int:
    """The steps done when A's journal ends with a timer that has >= 0.2 s to go, after step 3 or later."""
    steps = await store.journal_load("relay-1")
    done = len(steps) // 2
    timer = steps[-1] if steps else None
    if 3 <= done < STEPS and timer.name == "time.sleep" and timer.result - time.time() >= 0.2:
        return done
    return 0
