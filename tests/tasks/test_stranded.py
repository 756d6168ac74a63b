"""A step that started but never finished: re-run if idempotent, else stranded."""

from __future__ import annotations

import asyncio

import pytest

from wippy_agents.errors import TaskNotFound, TaskStranded, UsageError
from wippy_agents.tasks import SKIP_TYPE

from .conftest import until_set


def flow(effects, parked, *, idempotent, hang_first=True):
    """A runner whose step 'charge' hangs mid-flight on its first run (the crash point)."""
    runs = {"n": 0}

    async def charge():
        runs["n"] += 1
        effects.update(["charge"])
        if hang_first and runs["n"] == 1:
            parked.set()
            await asyncio.Event().wait()
        return "charged"

    async def runner(ctx):
        before = await ctx.step("reserve", lambda: effects.update(["reserve"]) or "reserved")
        charged = await ctx.step("charge", charge, idempotent=idempotent)
        after = await ctx.step("ship", lambda: effects.update(["ship"]) or "shipped")
        return [before, charged, after]

    return runner


async def crash_mid_step(engines, effects, *, idempotent):
    parked = asyncio.Event()
    runner = flow(effects, parked, idempotent=idempotent)
    first = await engines.engine()
    first.register_kind("k", runner)
    await first.start("k", "app:order", task_id="t1")
    await until_set(parked)
    await first.close(release=False)  # the run is killed inside 'charge'
    steps = await first.store.journal_load("t1")
    # Only a non-idempotent step pays for a 'started' marker before its side effect.
    expected = [("reserve", "ok")] if idempotent else [("reserve", "ok"), ("charge", "started")]
    assert [(s.name, s.status) for s in steps] == expected
    second = await engines.engine()
    second.register_kind("k", runner)
    return second


async def test_an_idempotent_step_left_unfinished_runs_again_on_resume(engines, effects):
    engine = await crash_mid_step(engines, effects, idempotent=True)
    await engine.recover()
    assert await engine.wait("t1", timeout=5) == ["reserved", "charged", "shipped"]
    assert effects == {"reserve": 1, "charge": 2, "ship": 1}


async def test_a_non_idempotent_step_left_unfinished_strands_the_task(engines, effects):
    engine = await crash_mid_step(engines, effects, idempotent=False)
    await engine.recover()
    with pytest.raises(TaskStranded) as info:
        await engine.wait("t1", timeout=5)
    assert "step 2 'charge'" in str(info.value) and "--retry" in str(info.value)
    task = await engine.get("t1")
    assert task.status == "stranded" and task.owner is None and task.lease_expires_at is None
    assert effects == {"reserve": 1, "charge": 1}
    # A stranded task is not claimed again by anyone: it waits for a person.
    assert await engine.recover() == []


async def test_resume_with_retry_runs_the_unfinished_step_again(engines, effects):
    engine = await crash_mid_step(engines, effects, idempotent=False)
    await engine.recover()
    with pytest.raises(TaskStranded):
        await engine.wait("t1", timeout=5)
    with pytest.raises(UsageError, match="--retry .*--skip"):
        await engine.resume("t1")
    task = await engine.resume("t1", retry=True)
    assert task.status == "running" and task.owner == "n1"
    assert await engine.wait("t1", timeout=5) == ["reserved", "charged", "shipped"]
    assert effects == {"reserve": 1, "charge": 2, "ship": 1}


async def test_resume_with_skip_records_the_step_as_skipped_with_a_null_result(engines, effects):
    engine = await crash_mid_step(engines, effects, idempotent=False)
    await engine.recover()
    with pytest.raises(TaskStranded):
        await engine.wait("t1", timeout=5)
    await engine.resume("t1", skip=True)
    assert await engine.wait("t1", timeout=5) == ["reserved", None, "shipped"]
    assert effects == {"reserve": 1, "charge": 1, "ship": 1}
    charge = (await engine.store.journal_load("t1"))[1]
    assert (charge.status, charge.result, charge.error["type"]) == ("ok", None, SKIP_TYPE)


async def test_resume_refuses_unknown_finished_and_ambiguous_requests(engines, effects):
    engine = await engines.engine()

    async def quick(ctx):
        return await ctx.step("a", lambda: 1)

    engine.register_kind("k", quick)
    await engine.start("k", "app:x", task_id="done")
    await engine.wait("done", timeout=5)
    with pytest.raises(TaskNotFound, match="'nope'"):
        await engine.resume("nope")
    with pytest.raises(UsageError, match="already succeeded"):
        await engine.resume("done")
    with pytest.raises(UsageError, match="not both"):
        await engine.resume("done", retry=True, skip=True)


async def test_resume_of_a_task_held_by_a_live_node_is_refused(engines, effects):
    parked = asyncio.Event()
    holder = await engines.engine("holder")
    holder.register_kind("k", flow(effects, parked, idempotent=False))
    await holder.start("k", "app:order", task_id="t1")
    await until_set(parked)
    other = await engines.engine("other")
    with pytest.raises(UsageError, match="kind 'k', which node 'other' cannot run"):
        await other.resume("t1")
    other.register_kind("k", flow(effects, parked, idempotent=False))
    with pytest.raises(UsageError, match="running on node 'holder'"):
        await other.resume("t1")
