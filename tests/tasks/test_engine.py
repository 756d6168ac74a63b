"""The engine's public API: start, wait, cancel, close."""

from __future__ import annotations

import asyncio

import pytest

import wippy_agents.tasks as tasks
from wippy_agents.errors import TaskCancelled, TaskNotFound, TaskTimeout, UsageError

from .conftest import eventually, until_set


def test_the_package_exports_exactly_the_public_api():
    assert sorted(tasks.__all__) == sorted(
        ["TaskEngine", "TaskContext", "Runner", "RetryPolicy", "Metered", "NO_RETRY", "STORE_RETRY", "RunInterrupted",
         "FINAL_STATUSES", "SKIP_TYPE", "TaskHistory", "StepEvent", "task_history", "StepScope", "current_step"]
    )
    for name in tasks.__all__:
        assert getattr(tasks, name) is not None


async def test_a_second_start_with_a_used_id_returns_the_existing_task_and_never_runs_it_twice(engines, effects):
    engine = await engines.engine()
    gate = asyncio.Event()

    async def runner(ctx):
        effects.update(["run"])
        await ctx.step("wait", gate.wait)
        return ctx.task.input

    engine.register_kind("k", runner)
    first = await engine.start("k", "app:x", {"n": 1}, task_id="same", registry_version=7)
    again = await engine.start("k", "app:x", {"n": 2}, task_id="same")
    assert again.id == first.id and again.input == {"n": 1} and again.created_at == first.created_at
    assert again.registry_version == 7
    gate.set()
    assert await engine.wait("same", timeout=5) == {"n": 1}
    await engine.start("k", "app:x", {"n": 3}, task_id="same")  # also after it finished
    assert effects == {"run": 1}


async def test_a_task_without_an_id_gets_a_fresh_one_and_records_its_parent(engines):
    engine = await engines.engine()

    async def runner(ctx):
        return ctx.task.parent_id

    engine.register_kind("k", runner)
    a = await engine.start("k", "app:x", parent_id="p1")
    b = await engine.start("k", "app:x", parent_id="p1")
    assert a.id != b.id
    assert await engine.wait(a.id, timeout=5) == "p1"


async def test_start_refuses_an_unknown_kind_and_non_json_input(engines):
    engine = await engines.engine()
    engine.register_kind("k", lambda ctx: None)
    with pytest.raises(UsageError, match="no runner for task kind 'nope'"):
        await engine.start("nope", "app:x")
    with pytest.raises(TypeError, match="JSON"):
        await engine.start("k", "app:x", {"f": object()})


async def test_wait_raises_task_timeout_and_task_not_found(engines):
    engine = await engines.engine()
    gate = asyncio.Event()

    async def runner(ctx):
        await gate.wait()

    engine.register_kind("k", runner)
    await engine.start("k", "app:x", task_id="t1")
    with pytest.raises(TaskTimeout, match="'t1' still running"):
        await engine.wait("t1", timeout=0.05)
    with pytest.raises(TaskNotFound, match="'zzz'"):
        await engine.wait("zzz", timeout=1)
    gate.set()
    assert await engine.wait("t1", timeout=5) is None


async def test_a_runner_error_outside_any_step_fails_the_task_with_its_message(engines):
    engine = await engines.engine()

    async def runner(ctx):
        raise KeyError("missing")

    engine.register_kind("k", runner)
    await engine.start("k", "app:x", task_id="t1")
    with pytest.raises(Exception, match="'t1' raised KeyError") as info:
        await engine.wait("t1", timeout=5)
    assert type(info.value).__name__ == "TaskError"
    assert (await engine.get("t1")).status == "failed"


async def test_cancel_stops_a_sleeping_task_at_once(engines, effects):
    engine = await engines.engine()
    asleep = asyncio.Event()

    async def runner(ctx):
        await ctx.step("a", lambda: effects.update(["a"]))
        asleep.set()
        await ctx.sleep(60)
        await ctx.step("never", lambda: effects.update(["never"]))

    engine.register_kind("k", runner)
    await engine.start("k", "app:x", task_id="t1")
    await until_set(asleep)
    task = await engine.cancel("t1", reason="user asked")
    assert task.status == "cancelled"
    with pytest.raises(TaskCancelled, match="user asked"):
        await engine.wait("t1", timeout=5)
    await eventually(lambda: not engine.running(), what="the run to end")
    task = await engine.get("t1")
    assert task.status == "cancelled" and task.lease_expires_at is None
    assert effects == {"a": 1}
    assert (await engine.cancel("t1")).status == "cancelled"  # cancelling again is a no-op


async def test_a_step_in_flight_finishes_and_the_next_step_sees_task_cancelled(engines, effects):
    engine = await engines.engine()
    inside, gate = asyncio.Event(), asyncio.Event()
    seen = []

    async def slow():
        inside.set()
        await gate.wait()
        effects.update(["slow"])
        return "done"

    async def runner(ctx):
        await ctx.step("slow", slow)
        try:
            await ctx.step("next", lambda: effects.update(["next"]))
        except TaskCancelled as exc:
            seen.append(str(exc))
            raise

    engine.register_kind("k", runner)
    await engine.start("k", "app:x", task_id="t1")
    await until_set(inside)
    await engine.cancel("t1")
    gate.set()
    with pytest.raises(TaskCancelled):
        await engine.wait("t1", timeout=5)
    await eventually(lambda: not engine.running(), what="the run to end")
    steps = await engine.store.journal_load("t1")
    assert [(s.name, s.status, s.result) for s in steps] == [("slow", "ok", "done")]
    assert effects == {"slow": 1} and "before step 2 'next'" in seen[0]


async def test_cancel_refuses_unknown_and_finished_tasks(engines):
    engine = await engines.engine()

    async def runner(ctx):
        return 1

    engine.register_kind("k", runner)
    await engine.start("k", "app:x", task_id="t1")
    await engine.wait("t1", timeout=5)
    with pytest.raises(TaskNotFound):
        await engine.cancel("nope")
    with pytest.raises(UsageError, match="already succeeded"):
        await engine.cancel("t1")


async def test_a_task_cancelled_from_another_node_stops_on_its_owner(engines, effects):
    owner = await engines.engine("owner")
    asleep = asyncio.Event()

    async def runner(ctx):
        asleep.set()
        await ctx.sleep(60)
        effects.update(["woke"])

    owner.register_kind("k", runner)
    await owner.start("k", "app:x", task_id="t1")
    await until_set(asleep)
    other = await engines.engine("other")
    await other.cancel("t1")
    await eventually(lambda: not owner.running(), what="the owner to stop the run")
    assert (await owner.get("t1")).status == "cancelled" and not effects


async def test_close_ends_every_run_leaves_it_pending_for_any_node_and_leaves_no_tasks(engines):
    engine = await engines.engine()
    started = asyncio.Event()

    async def runner(ctx):
        started.set()
        await ctx.sleep(60)

    engine.register_kind("k", runner)
    await engine.start("k", "app:x", task_id="t1")
    await until_set(started)
    before = {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}
    await engine.close()
    after = {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}
    assert not engine.running()
    assert not {t.get_name() for t in after if not t.done()} & {"task:t1", "heartbeat:n1", "claimer:n1"}
    assert {t.get_name() for t in before} >= {"task:t1", "heartbeat:n1"}
    task = await engine.store.task_get("t1")
    assert task.status == "pending" and task.owner is None  # released for the next node
    with pytest.raises(UsageError, match="closed"):
        await engine.start("k", "app:x")


async def test_runs_are_processes_on_the_runtime_node_when_one_is_given(engines, effects):
    from wippy_agents.runtime import Node

    node = Node("tasks-test")
    engine = await engines.engine("n1", node=node)
    inside = asyncio.Event()

    async def runner(ctx):
        inside.set()
        await ctx.sleep(60)

    async def quick(ctx):
        return await ctx.step("a", lambda: effects.update(["a"]) or "ran as a process")

    engine.register_kind("slow", runner)
    engine.register_kind("quick", quick)
    assert await (engine.start("quick", "app:x", task_id="q1")) is not None
    assert await engine.wait("q1", timeout=5) == "ran as a process"
    await engine.start("slow", "app:x", task_id="t1")
    await until_set(inside)
    names = {info.name for info in node.processes()}
    assert "task:t1" in names and "task:q1" not in names
    await engine.close()
    assert not engine.running() and "task:t1" not in {info.name for info in node.processes()}
    await node.stop()


async def test_a_node_stopping_ends_the_task_processes_and_the_tasks_stay_resumable(engines):
    from wippy_agents.runtime import Node

    node = Node("tasks-test")
    engine = await engines.engine("n1", node=node)
    inside = asyncio.Event()

    async def runner(ctx):
        inside.set()
        await ctx.sleep(60)

    engine.register_kind("slow", runner)
    await engine.start("slow", "app:x", task_id="t1")
    await until_set(inside)
    await node.stop(timeout=1.0)
    await eventually(lambda: not engine.running(), what="the run to end with its process")
    assert (await engine.get("t1")).status == "running"  # not failed: the next node resumes it


async def test_a_child_task_is_started_once_even_when_its_parent_crashes_while_waiting_for_it(engines, effects):
    first = await engines.engine()
    child_parked, gate = asyncio.Event(), asyncio.Event()

    async def child(ctx):
        effects.update(["child run"])
        if not gate.is_set():
            child_parked.set()
            await asyncio.Event().wait()  # generation 1 dies here
        await ctx.step("work", lambda: effects.update(["child work"]), idempotent=True)
        return ctx.task.input["x"] * 2

    async def parent(ctx):
        doubled = await ctx.run_child("child", "app:child", {"x": 21})
        return {"doubled": doubled, "me": ctx.task.id}

    first.register_kind("parent", parent)
    first.register_kind("child", child)
    await first.start("parent", "app:parent", task_id="p")
    await until_set(child_parked)  # the parent is inside its child step, waiting
    await first.close()
    gate.set()
    second = await engines.engine()
    second.register_kind("parent", parent)
    second.register_kind("child", child)
    await second.recover()
    assert await second.wait("p", timeout=5) == {"doubled": 42, "me": "p"}
    child_task = await second.get("p/1")
    assert (child_task.parent_id, child_task.status) == ("p", "succeeded")
    assert effects == {"child run": 2, "child work": 1}
    assert sorted(t.id for t in await second.store.task_list()) == ["p", "p/1"]
