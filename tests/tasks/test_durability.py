"""Durable timers across restarts, store outages, undecodable journal rows."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

from wippy_agents.errors import JournalCorrupt, StoreError
from wippy_agents.tasks import RetryPolicy

from .conftest import FlakyStore, eventually, until_set

SLEEP = 1.0


async def _journal_has(store, task_id, name, *, status=None):
    return any(step.name == name and status in (None, step.status) for step in await store.journal_load(task_id))


async def test_a_durable_sleep_crossing_a_restart_fires_once_at_its_recorded_time(engines, effects):
    fired = []

    async def runner(ctx):
        await ctx.sleep(SLEEP)
        fired.append(time.time())
        await ctx.step("after", lambda: effects.update(["after"]))
        return "woke"

    first = await engines.engine()
    first.register_kind("k", runner)
    await first.start("k", "app:x", task_id="t1")
    await eventually(lambda: _journal_has(first.store, "t1", "time.sleep"), what="the timer to be journaled")
    await first.close()  # the node goes down while the timer runs
    wake_at = (await first.store.journal_load("t1"))[0].result
    await asyncio.sleep(SLEEP / 2)  # the node stays down for half the timer

    restarted_at = time.time()
    second = await engines.engine()
    second.register_kind("k", runner)
    await second.recover()
    assert await second.wait("t1", timeout=SLEEP * 5) == "woke"
    assert len(fired) == 1 and effects == {"after": 1}
    assert fired[0] >= wake_at  # not early
    # Only the remainder was slept: a timer restarted from zero would fire after restarted_at + SLEEP.
    assert fired[0] < restarted_at + SLEEP
    names = [s.name for s in await second.store.journal_load("t1")]
    assert names == ["time.sleep", "after"]


async def test_a_timer_that_expired_while_the_node_was_down_fires_at_once_after_restart(engines, effects):
    async def runner(ctx):
        await ctx.sleep(0.2)
        await ctx.step("after", lambda: effects.update(["after"]))
        return "late but once"

    first = await engines.engine()
    first.register_kind("k", runner)
    await first.start("k", "app:x", task_id="t1")
    await eventually(lambda: _journal_has(first.store, "t1", "time.sleep"), what="the timer to be journaled")
    await first.close()
    wake_at = (await first.store.journal_load("t1"))[0].result
    await eventually(lambda: time.time() > wake_at + 0.1, what="the timer to pass while down")
    second = await engines.engine()
    second.register_kind("k", runner)
    await second.recover()
    assert await second.wait("t1", timeout=5) == "late but once"
    assert effects == {"after": 1}


async def test_step_writes_wait_through_a_store_outage_and_record_each_step_once(engines, effects):
    flaky = FlakyStore(await engines.store())
    engine = await engines.engine(store=flaky)

    async def runner(ctx):
        values = []
        for i in range(4):
            values.append(await ctx.step(f"s{i}", lambda i=i: effects.update([f"s{i}"]) or i))
        return values

    engine.register_kind("k", runner)
    flaky.fail("journal_write", 5)
    await engine.start("k", "app:x", task_id="t1")
    assert await engine.wait("t1", timeout=10) == [0, 1, 2, 3]
    assert flaky.failed["journal_write"] == 5
    assert effects == {f"s{i}": 1 for i in range(4)}
    assert [(s.seq, s.status) for s in await engine.store.journal_load("t1")] == [(i, "ok") for i in range(1, 5)]


async def test_a_write_that_landed_before_the_connection_dropped_is_not_recorded_twice(engines, effects):
    flaky = FlakyStore(await engines.store())
    engine = await engines.engine(store=flaky)
    gate = asyncio.Event()

    async def runner(ctx):
        first = await ctx.step("pay", lambda: effects.update(["pay"]) or "paid")
        await gate.wait()
        return [first, await ctx.step("ship", lambda: effects.update(["ship"]) or "shipped")]

    engine.register_kind("k", runner)
    await engine.start("k", "app:x", task_id="t1")
    await eventually(lambda: _journal_has(flaky, "t1", "pay", status="ok"), what="step one's result")
    flaky.fail("journal_write", 2, after=True)  # ship's 'started' and its result both commit, then "fail"
    gate.set()
    assert await engine.wait("t1", timeout=10) == ["paid", "shipped"]
    assert effects == {"pay": 1, "ship": 1} and flaky.failed["journal_write"] == 2
    assert [(s.name, s.status) for s in await flaky.journal_load("t1")] == [("pay", "ok"), ("ship", "ok")]


async def test_the_store_refuses_to_record_a_finished_step_twice(engines):
    engine = await engines.engine()

    async def runner(ctx):
        return await ctx.step("once", lambda: 1)

    engine.register_kind("k", runner)
    await engine.start("k", "app:x", task_id="t1")
    await engine.wait("t1", timeout=5)
    step = (await engine.store.journal_load("t1"))[0]
    with pytest.raises(StoreError, match="never recorded twice"):
        await engine.store.journal_write(step)


async def test_a_journal_row_that_fails_to_decode_fails_the_task_with_a_clear_error(engines, sqlite_url):
    parked = asyncio.Event()

    async def runner(ctx):
        await ctx.step("a", lambda: {"fine": True})
        parked.set()
        await asyncio.Event().wait()

    first = await engines.engine()
    first.register_kind("k", runner)
    await first.start("k", "app:x", task_id="t1")
    await until_set(parked)
    await first.close()
    db = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
    with db:
        db.execute("UPDATE journal SET result = '{not json' WHERE task_id = 't1' AND seq = 1")
    db.close()

    second = await engines.engine()
    second.register_kind("k", runner)
    await second.recover()
    with pytest.raises(JournalCorrupt) as info:
        await second.wait("t1", timeout=5)
    assert "'t1'" in str(info.value) and "1" in str(info.value) and "result" in str(info.value)
    assert (await second.get("t1")).status == "failed"


async def test_step_retries_back_off_and_journal_only_the_final_outcome(engines, effects):
    engine = await engines.engine()
    policy = RetryPolicy(max_attempts=3, initial_delay=0.01, backoff=2.0)

    async def flaky_then_fine():
        effects.update(["try"])
        if effects["try"] < 3:
            raise ConnectionError("transient")
        return "ok"

    async def always_bad():
        effects.update(["bad"])
        raise ConnectionError("down")

    async def runner(ctx):
        good = await ctx.step("good", flaky_then_fine, retry=policy)
        try:
            await ctx.step("bad", always_bad, retry=policy)
        except Exception as exc:  # noqa: BLE001 - the recorded error comes back as StepFailed
            return [good, type(exc).__name__]

    engine.register_kind("k", runner)
    await engine.start("k", "app:x", task_id="t1")
    assert await engine.wait("t1", timeout=5) == ["ok", "StepFailed"]
    assert effects == {"try": 3, "bad": 3}
    steps = await engine.store.journal_load("t1")
    assert [(s.name, s.status) for s in steps] == [("good", "ok"), ("bad", "error")]


def test_retry_policy_delays_grow_up_to_the_cap_and_reject_nonsense():
    policy = RetryPolicy(max_attempts=5, initial_delay=0.1, backoff=2.0, max_delay=0.5)
    assert list(policy.delays()) == pytest.approx([0.1, 0.2, 0.4, 0.5])
    from wippy_agents.errors import UsageError

    with pytest.raises(UsageError):
        RetryPolicy(max_attempts=0)
    assert not policy.retryable(UsageError("bad input"))


@pytest.mark.postgres
@pytest.mark.parametrize(("idempotent", "writes"), [(True, 10), (False, 20)])
async def test_each_step_costs_one_journal_round_trip(any_engines, idempotent, writes):
    counting = FlakyStore(await any_engines.store())  # nothing armed to fail: it only counts calls
    engine = await any_engines.engine(store=counting)

    async def runner(ctx):
        for i in range(10):
            await ctx.step(f"s{i}", lambda i=i: i, idempotent=idempotent)
        return "done"

    engine.register_kind("k", runner)
    await engine.start("k", "app:x", task_id="t1")
    assert await engine.wait("t1", timeout=5) == "done"
    steps = await engine.store.journal_load("t1")
    assert [(s.seq, s.status) for s in steps] == [(i, "ok") for i in range(1, 11)]
    # An idempotent step's end is flushed just before the next step's function (one
    # write per step); a non-idempotent step is durable before it is acknowledged:
    # its start marker, then its result (issue 17: two writes, none deferred).
    assert counting.calls["journal_write"] + counting.calls["journal_write_many"] == writes


@pytest.mark.parametrize("idempotent", [True, False])
async def test_a_result_is_durable_before_the_next_step_function_runs(engines, idempotent):
    engine = await engines.engine()
    seen = []

    async def look():
        seen.append([(s.name, s.status, s.result) for s in await engine.store.journal_load("t1")])

    async def runner(ctx):
        await ctx.step("a", lambda: "A", idempotent=idempotent)
        stamp = await ctx.now()
        await ctx.step("b", look, idempotent=idempotent)
        return stamp

    engine.register_kind("k", runner)
    await engine.start("k", "app:x", task_id="t1")
    stamp = await engine.wait("t1", timeout=5)
    assert seen[0][:2] == [("a", "ok", "A"), ("time.now", "ok", stamp)]


async def test_a_finished_step_is_journaled_within_moments_while_the_runner_waits_elsewhere(engines):
    engine = await engines.engine()
    gate = asyncio.Event()

    async def runner(ctx):
        await ctx.step("a", lambda: "A", idempotent=True)
        await gate.wait()  # not a journaled call: only the delayed flush can write 'a'
        return "done"

    engine.register_kind("k", runner)
    await engine.start("k", "app:x", task_id="t1")
    await eventually(lambda: _journal_has(engine.store, "t1", "a"), what="the delayed flush of step 'a'")
    gate.set()
    assert await engine.wait("t1", timeout=5) == "done"


async def test_the_last_of_many_quick_steps_is_journaled_within_moments_while_the_runner_waits(engines):
    # The delayed-flush timer is not re-armed per step: it must still find the
    # rows that arrived after the ones it was first set for.
    engine = await engines.engine()
    gate = asyncio.Event()

    async def runner(ctx):
        for i in range(30):
            await ctx.step(f"s{i}", lambda i=i: {"i": i}, idempotent=True)
        await gate.wait()  # not a journaled call: only the delayed flush can write 's29'
        await ctx.step("after", lambda: "B", idempotent=True)
        return "done"

    engine.register_kind("k", runner)
    await engine.start("k", "app:x", task_id="t1")
    await eventually(lambda: _journal_has(engine.store, "t1", "s29"), what="the delayed flush of step 's29'")
    gate.set()
    assert await engine.wait("t1", timeout=5) == "done"
    steps = await engine.store.journal_load("t1")
    assert [(s.name, s.result) for s in steps] == [(f"s{i}", {"i": i}) for i in range(30)] + [("after", "B")]


async def test_a_new_task_run_here_is_not_loaded_from_its_empty_journal_but_a_resumed_one_is(engines):
    inner = await engines.store()
    counting = FlakyStore(inner)  # counts calls only
    engine = await engines.engine(store=counting)
    gate = asyncio.Event()
    ran = []

    async def runner(ctx):
        await ctx.step("a", lambda: ran.append("a") or "A", idempotent=True)
        await gate.wait()
        return "done"

    engine.register_kind("k", runner)
    await engine.start("k", "app:x", task_id="t1")
    waiting = asyncio.ensure_future(engine.wait("t1", timeout=5))
    await eventually(lambda: _journal_has(inner, "t1", "a"), what="step 'a' journaled")
    assert not waiting.done()
    gate.set()
    assert await waiting == "done"
    assert counting.calls["journal_load"] == 0  # created here: its journal is known empty
    # A task that already existed is still resumed from its journal.
    await inner.task_update("t1", status="running", owner=None, lease_expires_at=None)
    await engine.resume("t1")
    assert await engine.wait("t1", timeout=5) == "done"
    assert counting.calls["journal_load"] >= 1 and ran == ["a"]  # replayed, not run again
