"""Replay: recorded steps are answered from the journal, never run again."""

from __future__ import annotations

import asyncio

import pytest

from wippy_agents.errors import NondeterminismError, StepFailed, UsageError, ValidationError

from .conftest import eventually, until_set


async def _finished(store, task_id, count):
    steps = [s for s in await store.journal_load(task_id) if s.status != "started"]
    return steps if len(steps) >= count else None


async def test_a_finished_task_records_each_step_once_with_its_result(engines, effects):
    engine = await engines.engine()

    async def runner(ctx):
        a = await ctx.step("a", lambda: effects.update(["a"]) or 1)
        b = await ctx.step("b", lambda: effects.update(["b"]) or a + 1)
        return {"sum": a + b}

    engine.register_kind("k", runner)
    await engine.start("k", "app:flow", {"x": 1}, task_id="t1")
    assert await engine.wait("t1", timeout=5) == {"sum": 3}
    steps = await engine.store.journal_load("t1")
    assert [(s.seq, s.name, s.status, s.result) for s in steps] == [(1, "a", "ok", 1), (2, "b", "ok", 2)]
    assert effects == {"a": 1, "b": 1}
    task = await engine.get("t1")
    assert task.status == "succeeded" and task.lease_expires_at is None


@pytest.mark.postgres
async def test_a_resumed_task_answers_recorded_steps_without_running_them_again(any_engines, effects):
    engines = any_engines
    first = await engines.engine("n1")
    parked = asyncio.Event()
    generation = {"n": 0}

    async def runner(ctx):
        generation["n"] += 1
        a = await ctx.step("a", lambda: effects.update(["a"]) or "A")
        stamp = await ctx.uuid4()
        if generation["n"] == 1:
            parked.set()
            await asyncio.Event().wait()  # the "crash" happens here, between steps
        b = await ctx.step("b", lambda: effects.update(["b"]) or "B")
        return [a, stamp, b]

    first.register_kind("k", runner)
    await first.start("k", "app:flow", task_id="t1")
    await until_set(parked)
    # A finished step is journaled before the next one starts, or within a few ms.
    steps = await eventually(lambda: _finished(first.store, "t1", 2), what="both steps journaled")
    recorded_uuid = steps[1].result
    await first.close(release=False)

    second = await engines.engine("n1")  # the same node, restarted
    second.register_kind("k", runner)
    assert [t.id for t in await second.recover()] == ["t1"]
    assert await second.wait("t1", timeout=5) == ["A", recorded_uuid, "B"]
    assert effects == {"a": 1, "b": 1}


async def test_changed_code_fails_the_task_with_a_nondeterminism_error_and_keeps_the_journal(engines):
    first = await engines.engine()
    parked = asyncio.Event()

    async def old(ctx):
        await ctx.step("charge", lambda: 1)
        parked.set()
        await asyncio.Event().wait()

    async def new(ctx):
        await ctx.step("reserve", lambda: 1)
        return "done"

    first.register_kind("k", old)
    await first.start("k", "app:flow", task_id="t1")
    await until_set(parked)
    await first.close()

    second = await engines.engine()
    second.register_kind("k", new)
    await second.recover()
    with pytest.raises(NondeterminismError) as info:
        await second.wait("t1", timeout=5)
    message = str(info.value)
    assert "'t1'" in message and "step 1" in message and "'charge'" in message and "'reserve'" in message
    assert info.value.details["seq"] == 1
    assert (info.value.details["expected"], info.value.details["got"]) == ("charge", "reserve")
    task = await second.get("t1")
    assert task.status == "failed" and task.error["type"] == "NondeterminismError"
    assert [(s.name, s.status) for s in await second.store.journal_load("t1")] == [("charge", "ok")]


async def test_code_that_ends_before_the_recorded_steps_is_nondeterministic(engines):
    first = await engines.engine()
    parked = asyncio.Event()

    async def old(ctx):
        await ctx.step("a", lambda: 1)
        await ctx.step("b", lambda: 2)
        parked.set()
        await asyncio.Event().wait()

    async def new(ctx):
        await ctx.step("a", lambda: 1)
        return "short"

    first.register_kind("k", old)
    await first.start("k", "app:flow", task_id="t1")
    await until_set(parked)
    await first.close()
    second = await engines.engine()
    second.register_kind("k", new)
    await second.recover()
    with pytest.raises(NondeterminismError, match="holds steps up to 2"):
        await second.wait("t1", timeout=5)


async def test_a_failing_step_records_its_error_and_replays_the_same_error(engines, effects):
    engine = await engines.engine()

    async def runner(ctx):
        try:
            await ctx.step("bad", lambda: effects.update(["bad"]) or 1 / 0)
        except StepFailed as exc:
            caught = exc.details["exc_type"]
        try:
            await ctx.step("invalid", _raise_validation)
        except ValidationError as exc:
            caught2 = exc.details["field"]
        return [caught, caught2]

    engine.register_kind("k", runner)
    await engine.start("k", "app:flow", task_id="t1")
    assert await engine.wait("t1", timeout=5) == ["ZeroDivisionError", "city"]
    steps = await engine.store.journal_load("t1")
    assert [(s.status, s.error["type"]) for s in steps] == [("error", "StepFailed"), ("error", "ValidationError")]
    assert "'bad'" in steps[0].error["message"] and "ZeroDivisionError" in steps[0].error["message"]

    # Replaying the same journal (a fresh run of the same id) raises the same errors without running the step.
    await engine.store.task_update("t1", status="running", owner=None, lease_expires_at=None)
    await engine.recover()
    assert await engine.wait("t1", timeout=5) == ["ZeroDivisionError", "city"]
    assert effects == {"bad": 1}


def _raise_validation():
    raise ValidationError("city is required", field="city")


async def test_a_step_result_reads_back_as_json_data_on_the_first_run_too(engines):
    engine = await engines.engine()

    async def runner(ctx):
        value = await ctx.step("tuple", lambda: {"pair": (1, 2), 3: "x"})
        return value

    engine.register_kind("k", runner)
    await engine.start("k", "app:flow", task_id="t1")
    assert await engine.wait("t1", timeout=5) == {"pair": [1, 2], "3": "x"}


async def test_a_step_returning_non_json_data_fails_with_a_clear_error(engines):
    engine = await engines.engine()

    async def runner(ctx):
        return await ctx.step("obj", lambda: object())

    engine.register_kind("k", runner)
    await engine.start("k", "app:flow", task_id="t1")
    with pytest.raises(StepFailed, match=r"step 'obj'.*JSON"):
        await engine.wait("t1", timeout=5)


async def test_sync_and_async_step_functions_both_work_and_names_must_be_given(engines):
    engine = await engines.engine()

    async def fetch():
        await asyncio.sleep(0)
        return "async"

    async def runner(ctx):
        with pytest.raises(UsageError):
            await ctx.step("", lambda: 1)
        return [await ctx.step("s", lambda: "sync"), await ctx.step("a", fetch)]

    engine.register_kind("k", runner)
    await engine.start("k", "app:flow", task_id="t1")
    assert await engine.wait("t1", timeout=5) == ["sync", "async"]


async def test_now_uuid_and_random_are_recorded_once_and_replayed(engines):
    engine = await engines.engine()
    seen = []

    async def runner(ctx):
        values = [await ctx.now(), await ctx.uuid4(), await ctx.random()]
        seen.append(values)
        return values

    engine.register_kind("k", runner)
    await engine.start("k", "app:flow", task_id="t1")
    first = await engine.wait("t1", timeout=5)
    await engine.store.task_update("t1", status="running", owner=None, lease_expires_at=None)
    await engine.recover()
    assert await engine.wait("t1", timeout=5) == first
    assert seen[0] == seen[1]
    names = [s.name for s in await engine.store.journal_load("t1")]
    assert names == ["time.now", "uuid.v4", "random"]


async def test_parallel_steps_take_seqs_in_call_order_and_replay_identically(engines, effects):
    engine = await engines.engine()

    async def runner(ctx):
        async def slow(name, delay):
            await asyncio.sleep(delay)
            effects.update([name])
            return name

        return list(
            await asyncio.gather(
                ctx.step("first", lambda: slow("first", 0.05)),
                ctx.step("second", lambda: slow("second", 0.0)),
            )
        )

    engine.register_kind("k", runner)
    await engine.start("k", "app:flow", task_id="t1")
    assert await engine.wait("t1", timeout=5) == ["first", "second"]
    await engine.store.task_update("t1", status="running", owner=None, lease_expires_at=None)
    await engine.recover()
    assert await engine.wait("t1", timeout=5) == ["first", "second"]
    assert [s.name for s in await engine.store.journal_load("t1")] == ["first", "second"]
    assert effects == {"first": 1, "second": 1}


async def test_a_runner_that_swallows_a_nondeterminism_error_still_fails(engines, effects):
    first = await engines.engine()
    parked = asyncio.Event()

    async def old(ctx):
        await ctx.step("a", lambda: 1)
        parked.set()
        await asyncio.Event().wait()

    async def sloppy(ctx):
        try:
            await ctx.step("b", lambda: 1)
        except Exception:  # noqa: BLE001 - the point of the test
            pass
        with pytest.raises(NondeterminismError):  # every later call re-raises it
            await ctx.step("c", lambda: effects.update(["c"]))
        return "pretends all is well"

    first.register_kind("k", old)
    await first.start("k", "app:flow", task_id="t1")
    await until_set(parked)
    await first.close()
    second = await engines.engine()
    second.register_kind("k", sloppy)
    await second.recover()
    with pytest.raises(NondeterminismError, match="'a'"):
        await second.wait("t1", timeout=5)
    assert not effects


async def test_a_metered_step_journals_its_tokens_and_cost_and_returns_the_bare_value(engines):
    from wippy_agents.tasks import Metered

    engine = await engines.engine()

    async def runner(ctx):
        return await ctx.step("model", lambda: Metered(value={"text": "hi"}, tokens=812, cost_usd=0.0021))

    engine.register_kind("k", runner)
    await engine.start("k", "app:flow", task_id="t1")
    assert await engine.wait("t1", timeout=5) == {"text": "hi"}
    step = (await engine.store.journal_load("t1"))[0]
    assert (step.result, step.tokens, step.cost_usd) == ({"text": "hi"}, 812, 0.0021)
