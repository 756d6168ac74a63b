"""A task's durable time and waits come from its node's clock: a FakeClock makes an hour pass at once."""

from __future__ import annotations

import asyncio

from wippy_agents.runtime import Node
from wippy_agents.store import open_store
from wippy_agents.tasks import TaskEngine
from wippy_agents.testing import FakeClock


async def test_a_durable_sleep_and_clock_reads_follow_the_nodes_fake_clock(tmp_path):
    clock = FakeClock(start=1_000_000.0)
    store = await open_store(f"sqlite:///{tmp_path / 's.db'}")
    node = Node("n1", clock=clock)
    engine = TaskEngine(store, node_name="n1", node=node)

    async def runner(ctx):
        before = await ctx.now()
        await ctx.sleep(3600)
        return {"before": before, "after": await ctx.now()}

    engine.register_kind("sleeper", runner)
    try:
        task = await engine.start("sleeper", "x:y", {}, task_id="t1")
        result = await asyncio.wait_for(engine.wait(task.id), 10)
        assert result == {"before": 1_000_000.0, "after": 1_003_600.0}
        assert clock.sleeps and sum(clock.sleeps) >= 3600
        steps = await engine.journal("t1")
        assert [s.name for s in steps] == ["time.now", "time.sleep", "time.now"]
        assert steps[1].result == 1_003_600.0  # the wake-up time journaled is the fake clock's
    finally:
        await engine.close()
        await node.stop()
        await store.close()
