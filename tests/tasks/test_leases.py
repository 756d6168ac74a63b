"""Leases: heartbeats keep a task, an expired lease is claimed by exactly one node."""

from __future__ import annotations

import asyncio

import pytest

from .conftest import LEASE, eventually, until_set


def two_phase(effects, parked, ran_on):
    """Step 'one', then park forever on the first node; step 'two' records the node that ran it."""

    async def runner(ctx):
        await ctx.step("one", lambda: effects.update(["one"]) or 1)
        if not ran_on:
            parked.set()
            ran_on.append(ctx.task.owner)
            await asyncio.Event().wait()
        await ctx.step("two", lambda: effects.update(["two"]) or ran_on.append(ctx.task.owner))
        return "finished"

    return runner


@pytest.mark.postgres
async def test_an_expired_lease_is_claimed_by_exactly_one_live_node_which_finishes_the_task(any_engines, effects):
    parked, ran_on = asyncio.Event(), []
    runner = two_phase(effects, parked, ran_on)
    dead = await any_engines.engine("a")
    dead.register_kind("k", runner)
    await dead.start("k", "app:x", task_id="t1")
    await until_set(parked)
    await dead.close(release=False)  # node a dies: no more heartbeats, its lease runs out

    b = await any_engines.engine("b", claim_interval=0.05)
    c = await any_engines.engine("c", claim_interval=0.05)
    for engine in (b, c):
        engine.register_kind("k", runner)
    assert await b.wait("t1", timeout=LEASE * 10) == "finished"
    task = await b.get("t1")
    assert task.owner in ("b", "c") and ran_on == ["a", task.owner]
    assert effects == {"one": 1, "two": 1}


@pytest.mark.postgres
async def test_concurrent_claimers_split_expired_tasks_without_overlap(any_engines):
    seed = await any_engines.engine("seed")
    gate = asyncio.Event()

    async def park(ctx):
        await gate.wait()

    seed.register_kind("k", park)
    ids = [f"t{i}" for i in range(12)]
    for task_id in ids:
        await seed.start("k", "app:x", task_id=task_id)
    await seed.close(release=True)  # all twelve are free now

    claimers = [await any_engines.engine(f"n{i}") for i in range(3)]
    for engine in claimers:
        engine.register_kind("k", park)
    async def drain(engine):
        got = []
        while batch := await engine.claim_expired(limit=2):
            got.extend(batch)
        return got

    results = await asyncio.gather(*(drain(engine) for engine in claimers))
    claimed = [task.id for batch in results for task in batch]
    assert sorted(claimed) == sorted(ids)  # every task once, none twice
    owners = {task.id: task.owner for batch in results for task in batch}
    for engine in claimers:
        assert set(engine.running()) == {tid for tid, owner in owners.items() if owner == engine.node_name}
    gate.set()


async def test_a_live_node_keeps_its_lease_through_heartbeats(engines):
    a = await engines.engine("a")
    b = await engines.engine("b")
    gate, entered = asyncio.Event(), asyncio.Event()

    async def runner(ctx):
        entered.set()
        await ctx.step("wait", gate.wait)
        return "a kept it"

    a.register_kind("k", runner)
    b.register_kind("k", runner)
    await a.start("k", "app:x", task_id="t1")
    await until_set(entered)
    first = (await a.get("t1")).lease_expires_at
    await eventually(lambda: _lease_after(a, "t1", first + LEASE), timeout=LEASE * 5, what="the lease to outlive itself")
    assert await b.claim_expired() == []
    gate.set()
    assert await a.wait("t1", timeout=5) == "a kept it"


async def _lease_after(engine, task_id, moment):
    task = await engine.get(task_id)
    return task.lease_expires_at is not None and task.lease_expires_at > moment


async def test_a_node_that_lost_its_lease_stops_the_run_and_writes_no_more_steps(engines, effects):
    a = await engines.engine("a", heartbeat_seconds=0.05)
    inside = asyncio.Event()
    cancelled = asyncio.Event()

    async def hang():
        inside.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def runner(ctx):
        await ctx.step("hang", hang)
        await ctx.step("after", lambda: effects.update(["after"]))

    a.register_kind("k", runner)
    await a.start("k", "app:x", task_id="t1")
    await until_set(inside)
    # Another node took the task over (as after a network partition).
    await a.store.task_update("t1", owner="b", lease_expires_at=9e12)
    await until_set(cancelled)
    await eventually(lambda: not a.running(), what="node a to stop the run")
    steps = await a.store.journal_load("t1")
    assert [(s.name, s.status) for s in steps] == [("hang", "started")] and not effects
    task = await a.get("t1")
    assert (task.status, task.owner) == ("running", "b")


async def test_a_step_finishing_after_a_takeover_is_not_recorded(engines, effects):
    # Heartbeat slower than the test: the store's lease guard on journal writes is what stops the run.
    a = await engines.engine("a", lease_seconds=30, heartbeat_seconds=10)
    inside, gate = asyncio.Event(), asyncio.Event()

    async def slow():
        inside.set()
        await gate.wait()
        effects.update(["slow"])
        return "late"

    async def runner(ctx):
        await ctx.step("slow", slow)
        await ctx.step("after", lambda: effects.update(["after"]))

    a.register_kind("k", runner)
    await a.start("k", "app:x", task_id="t1")
    await until_set(inside)
    await a.store.task_update("t1", owner="b", lease_expires_at=9e12)
    gate.set()
    await eventually(lambda: not a.running(), what="node a to stop the run")
    steps = await a.store.journal_load("t1")
    assert [(s.name, s.status) for s in steps] == [("slow", "started")]
    assert effects == {"slow": 1}
    assert (await a.get("t1")).status == "running"  # left to its new owner, not failed by a


async def test_heartbeats_survive_a_store_outage_and_keep_the_lease(engines):
    from .conftest import FlakyStore

    flaky = FlakyStore(await engines.store())
    a = await engines.engine("a", store=flaky, heartbeat_seconds=0.05)
    entered, gate = asyncio.Event(), asyncio.Event()

    async def runner(ctx):
        entered.set()
        await ctx.step("wait", gate.wait)
        return "kept"

    a.register_kind("k", runner)
    await a.start("k", "app:x", task_id="t1")
    await until_set(entered)
    flaky.fail("task_heartbeat", 3)
    await eventually(lambda: flaky.failed["task_heartbeat"] == 3, what="three failed heartbeats")
    renewed_after = (await a.get("t1")).lease_expires_at
    await eventually(lambda: _lease_after(a, "t1", renewed_after), what="a heartbeat after the outage")
    assert a.running() == ["t1"]
    gate.set()
    assert await a.wait("t1", timeout=5) == "kept"


async def test_the_claimer_stops_when_cancelled_as_a_wake_lands_and_claims_never_suspend():
    """The close hang (issue 17): with task-row operations on the loop connection a claim
    returns without suspending and a run ending wakes the claimer just as ``stop`` cancels
    it; the cancel must not be swallowed (3.11 ``wait_for`` did), or close waits forever."""
    from wippy_agents.tasks.leases import LeaseKeeper

    claims = []

    async def claim():  # like claim_expired on the loop connection: never suspends
        claims.append(1)

    async def nothing(_ids=None):
        return None

    for _ in range(5):
        keeper = LeaseKeeper(None, node_name="n", lease_seconds=30, heartbeat_seconds=30, claim_interval=30,
                             leases=dict, on_lost=nothing, claim=claim)
        keeper.start()
        await asyncio.sleep(0)  # both loops are waiting
        keeper.wake()
        await asyncio.sleep(0)  # the wake is delivered to the claimer's wait ...
        keeper.wake()  # ... and lands again as the cancel does
        loops = list(keeper._loops)
        stop = asyncio.create_task(keeper.stop())
        done, _ = await asyncio.wait([stop], timeout=5)
        stopped = stop in done
        if not stopped:  # hung: cancel again so the test ends, then fail
            for loop in loops:
                loop.cancel()
            await stop
        assert stopped, "the claimer swallowed its cancel: stop() never returned"
    assert claims  # the wakes did run claims


@pytest.mark.postgres
async def test_a_lease_is_counted_from_when_its_claim_was_sent_not_from_the_reply(any_engines):
    """The store counts a lease from when it ran the claim; a slow reply must not make the
    node trust its lease for longer (the reply's delay): ``valid_until`` <= sent + lease."""
    import time

    engine = await any_engines.engine("a", lease_seconds=60, heartbeat_seconds=30)  # no heartbeat renews it
    store = engine.store
    release = asyncio.Event()
    real_create, real_claim = store.task_create, store.task_claim

    async def slow(real, *args, **kwargs):
        out = await real(*args, **kwargs)
        await release.wait()  # the reply is delayed after the store already counted the lease
        return out

    store.task_create = lambda *a, **k: slow(real_create, *a, **k)
    store.task_claim = lambda *a, **k: slow(real_claim, *a, **k)
    parked = asyncio.Event()

    async def flow(ctx):
        parked.set()
        await asyncio.Event().wait()

    engine.register_kind("k", flow)
    for start in (lambda: engine.start("k", "app:x", task_id="t1"),):
        pending = asyncio.ensure_future(start())
        await asyncio.sleep(0.05)  # the claim ran; its reply is held back
        replied = time.monotonic()
        release.set()
        await pending
        await until_set(parked)
        assert engine._runs["t1"].lease.valid_until < replied + 60
    # a claim (adopt) too
    await store.task_update("t1", owner=None, lease_expires_at=None)
    engine._runs.pop("t1")
    release.clear()
    pending = asyncio.ensure_future(engine.adopt("t1"))
    await asyncio.sleep(0.05)
    replied = time.monotonic()
    release.set()
    assert (await pending) is not None
    assert engine._runs["t1"].lease.valid_until < replied + 60


async def test_recovering_while_a_task_runs_here_does_not_fence_out_its_own_run(tmp_path):
    """A stable-named node that recovers its own tasks (include_own) must not re-claim one it is
    running: the new epoch would fence out the live run and nobody would finish the task."""
    from wippy_agents.store import open_store
    from wippy_agents.tasks import TaskEngine

    store = await open_store(f"sqlite:///{tmp_path / 's.db'}")
    engine = TaskEngine(store, node_name="stable", claim_interval=0)
    inside, go = asyncio.Event(), asyncio.Event()

    async def flow(ctx):
        async def wait_for_go():
            inside.set()
            await go.wait()
            return 1

        first = await ctx.step("s1", wait_for_go, idempotent=True)
        return first + await ctx.step("s2", lambda: 2, idempotent=True)

    engine.register_kind("flow", flow)
    try:
        await engine.start("flow", "x:y", task_id="t")
        await asyncio.wait_for(inside.wait(), 10)
        epoch = (await store.task_get("t")).epoch
        assert await engine.recover() == []  # its own live run is not claimed again ...
        assert (await store.task_get("t")).epoch == epoch  # ... so a write it has in flight stays valid
        go.set()
        assert await asyncio.wait_for(engine.wait("t"), 10) == 3
    finally:
        await engine.close()
        await store.close()
