"""Signals: persisted when sent, received once each, durable across restarts."""

from __future__ import annotations

import asyncio

import pytest

from wippy_agents.errors import TaskCancelled, TaskNotFound

from .conftest import until_set


@pytest.mark.postgres
async def test_a_waiting_task_receives_a_signal_sent_to_it(any_engines):
    engine = await any_engines.engine()
    waiting = asyncio.Event()

    async def runner(ctx):
        waiting.set()
        return await ctx.receive_signal("approve")

    engine.register_kind("k", runner)
    await engine.start("k", "app:x", task_id="t1")
    await until_set(waiting)
    await engine.signal("t1", "approve", {"by": "ada"})
    assert await engine.wait("t1", timeout=5) == {"by": "ada"}


async def test_signals_sent_before_the_receive_wait_in_order_one_per_receive(engines):
    engine = await engines.engine()
    gate = asyncio.Event()

    async def runner(ctx):
        await ctx.step("hold", gate.wait)
        return [await ctx.receive_signal("n"), await ctx.receive_signal("other"), await ctx.receive_signal("n")]

    engine.register_kind("k", runner)
    await engine.start("k", "app:x", task_id="t1")
    for payload in (1, 2):
        await engine.signal("t1", "n", payload)
    await engine.signal("t1", "other", "x")
    gate.set()
    assert await engine.wait("t1", timeout=5) == [1, "x", 2]


async def test_a_receive_times_out_with_none_and_the_timeout_is_recorded(engines):
    engine = await engines.engine()

    async def runner(ctx):
        return await ctx.receive_signal("never", timeout=0.1)

    engine.register_kind("k", runner)
    await engine.start("k", "app:x", task_id="t1")
    assert await engine.wait("t1", timeout=5) is None
    steps = await engine.store.journal_load("t1")
    assert [(s.name, s.result if s.name.startswith("signal:") else "deadline") for s in steps] == [
        ("signal.deadline:never", "deadline"),
        ("signal:never", {"timeout": True}),
    ]


async def test_a_signal_received_before_a_crash_is_replayed_and_the_next_one_is_new(engines, effects):
    first = await engines.engine()
    parked = asyncio.Event()

    async def runner(ctx):
        got = [await ctx.receive_signal("n")]
        if not parked.is_set():
            parked.set()
            await asyncio.Event().wait()
        got.append(await ctx.receive_signal("n"))
        return got

    first.register_kind("k", runner)
    await first.start("k", "app:x", task_id="t1")
    await first.signal("t1", "n", "first")
    await until_set(parked)
    await first.close()
    await first.signal("t1", "n", "second")  # sent while no node runs the task
    second = await engines.engine()
    second.register_kind("k", runner)
    await second.recover()
    assert await second.wait("t1", timeout=5) == ["first", "second"]


async def test_a_signal_from_another_node_reaches_a_waiting_task(engines):
    owner = await engines.engine("owner")
    waiting = asyncio.Event()

    async def runner(ctx):
        waiting.set()
        return await ctx.receive_signal("go")

    owner.register_kind("k", runner)
    await owner.start("k", "app:x", task_id="t1")
    await until_set(waiting)
    other = await engines.engine("other")
    await other.signal("t1", "go", 7)
    assert await owner.wait("t1", timeout=5) == 7


async def test_signals_to_unknown_tasks_are_refused_and_cancel_ends_a_receive(engines):
    engine = await engines.engine()
    waiting = asyncio.Event()

    async def runner(ctx):
        waiting.set()
        return await ctx.receive_signal("never")

    engine.register_kind("k", runner)
    with pytest.raises(TaskNotFound, match="'ghost'"):
        await engine.signal("ghost", "x", 1)
    await engine.start("k", "app:x", task_id="t1")
    await until_set(waiting)
    await engine.cancel("t1")
    with pytest.raises(TaskCancelled):
        await engine.wait("t1", timeout=5)


async def test_a_message_sent_to_the_task_process_arrives_as_a_signal(engines):
    from wippy_agents.runtime import Node

    node = Node("signals-test")
    engine = await engines.engine(node=node)
    waiting = asyncio.Event()

    async def runner(ctx):
        waiting.set()
        return await ctx.receive_signal("approve")

    engine.register_kind("k", runner)
    await engine.start("k", "app:x", task_id="t1")
    await until_set(waiting)
    node.send("task:t1", "approve", {"ok": True})
    assert await engine.wait("t1", timeout=5) == {"ok": True}
    await engine.close()
    await node.stop()
