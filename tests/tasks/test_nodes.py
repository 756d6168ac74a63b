"""Node identity, no stealing from live owners, fencing after a lost lease, interrupts, the queue."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from wippy_agents.errors import NameTaken, ProviderError
from wippy_agents.tasks.nodes import NodeIdentity, is_alive, start_token, this_process

from .conftest import LEASE, eventually, until_set


def identity(name: str, *, pid: int | None = None, stable: bool = False) -> NodeIdentity:
    me = this_process()
    pid = me.pid if pid is None else pid
    return NodeIdentity(name=name, host=me.host, pid=pid, started=start_token(pid) or f"gone:{pid}", stable=stable)


@pytest.fixture
def other_process():
    """A live process that is not this one (its pid and start token are real)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield child
    finally:
        child.kill()
        child.wait()


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# -- identity ------------------------------------------------------------------
def test_a_process_is_alive_only_while_its_pid_has_the_same_start_token(other_process):
    me = this_process()
    assert me.name == f"{me.host}-{me.pid}" and not me.stable
    assert is_alive(me.pid, me.started)
    assert is_alive(other_process.pid, start_token(other_process.pid))
    assert not is_alive(other_process.pid, start_token(other_process.pid) + "0")  # a reused pid is not the owner
    assert not is_alive(dead_pid(), "boot:1")


@pytest.mark.postgres
async def test_a_stable_name_held_by_a_live_process_refuses_a_second_one(any_engines, other_process):
    holder = await any_engines.engine("w1", identity=identity("w1", pid=other_process.pid, stable=True))
    await holder.register()
    second = await any_engines.engine("w1", identity=identity("w1", stable=True))
    with pytest.raises(NameTaken, match="node name 'w1' is in use by a live process"):
        await second.register()


@pytest.mark.postgres
async def test_a_stable_name_whose_process_died_on_this_host_is_taken_at_once(any_engines):
    ghost = identity("w1", pid=dead_pid(), stable=True)
    dead = await any_engines.engine("w1", identity=ghost)
    await dead.register()
    await dead.close(release=False)  # its row stays, with a fresh heartbeat
    again = await any_engines.engine("w1", identity=identity("w1", stable=True))
    await again.register()
    assert (await again.store.node_get("w1")).pid == again.identity.pid


# -- no stealing, and a dead owner's task resumes at once ----------------------------------
@pytest.mark.postgres
async def test_a_task_of_a_live_owner_is_never_taken_and_a_dead_owners_is_taken_at_once(any_engines, effects):
    gate = asyncio.Event()
    parked: dict[str, asyncio.Event] = {"t1": asyncio.Event(), "t2": asyncio.Event()}

    async def flow(ctx):
        await ctx.step("one", lambda: effects.update([f"one:{ctx.task.id}"]) or 1)
        if not parked[ctx.task.id].is_set():
            parked[ctx.task.id].set()
            await gate.wait()
        await ctx.step("two", lambda: effects.update([f"two:{ctx.task.id}"]) or 2)
        return ctx.task.owner

    long = {"lease_seconds": 60, "heartbeat_seconds": 20}
    alive = await any_engines.engine("alive", identity=identity("alive"), **long)
    ghost = await any_engines.engine("ghost", identity=identity("ghost", pid=dead_pid()), **long)
    for engine, task_id in ((alive, "t1"), (ghost, "t2")):
        await engine.register()
        engine.register_kind("k", flow)
        await engine.start("k", "app:x", task_id=task_id)
        await until_set(parked[task_id])
    await ghost.close(release=False)  # "killed": its lease has a minute left, its process is gone

    b = await any_engines.engine("b", identity=identity("b"), **long)
    await b.register()
    b.register_kind("k", flow)
    assert (await b.start("k", "app:x", task_id="t1")).owner == "alive"  # rerun beside a live owner: no steal
    assert b.running() == []
    adopted = await b.start("k", "app:x", task_id="t2")  # rerun after a kill: resumes at once
    assert (adopted.owner, adopted.epoch) == ("b", 2)
    assert await b.wait("t2", timeout=5) == "b"
    assert await b.recover() == [] and b.running() == []  # t1 is still alive's
    gate.set()
    assert await alive.wait("t1", timeout=5) == "alive"
    assert effects == {"one:t1": 1, "two:t1": 1, "one:t2": 1, "two:t2": 1}


# -- fencing --------------------------------------------------------------------------------------
@pytest.mark.postgres
async def test_a_node_that_lost_its_lease_writes_nothing_and_causes_no_effect(any_engines, effects):
    """The in-process half of the zombie test: a's heartbeats stop (as in a pause), b takes over,
    then a's run goes on: its next step is refused before its effect runs."""
    go_on = asyncio.Event()
    parked = asyncio.Event()
    runs: list[str] = []

    async def flow(ctx):
        runs.append(ctx.task.owner)
        await ctx.step("one", lambda: effects.update(["one"]) or 1)
        if len(runs) == 1:
            parked.set()
            await go_on.wait()
        await ctx.step("two", lambda: effects.update([f"two@{ctx.task.owner}"]) or 2, idempotent=True)
        await ctx.step("three", lambda: effects.update([f"three@{ctx.task.owner}"]) or 3)
        return "done"

    a = await any_engines.engine("a")
    a.register_kind("k", flow)
    await a.start("k", "app:x", task_id="t1")
    await until_set(parked)
    await a._leases.stop()  # a is "paused": no more heartbeats
    b = await any_engines.engine("b", claim_interval=0.05)
    b.register_kind("k", flow)
    assert await b.wait("t1", timeout=LEASE * 20) == "done"
    journal_before = await b.store.journal_load("t1")
    go_on.set()  # a wakes up
    await eventually(lambda: not a.running(), what="a stops its stale run")
    assert effects == {"one": 1, "two@b": 1, "three@b": 1}
    assert await b.store.journal_load("t1") == journal_before
    assert (await b.store.task_get("t1")).status == "succeeded"


# -- interrupts --------------------------------------------------------------------------------------
@pytest.mark.postgres
async def test_an_interrupt_cuts_an_idempotent_step_short_without_an_error_and_leaves_the_task_pending(any_engines):
    started = asyncio.Event()
    calls: list[int] = []

    async def model():
        calls.append(1)
        started.set()
        await asyncio.sleep(30)
        return "never"

    async def flow(ctx):
        await ctx.step("before", lambda: 1)
        return await ctx.step("model", model, idempotent=True)

    a = await any_engines.engine("a", shutdown_timeout=10)
    a.register_kind("k", flow)
    await a.start("k", "app:x", task_id="t1")
    await until_set(started)
    await asyncio.wait_for(a.close(), 3)  # not the 10 s grace: the redoable step is cut at once
    task = await a.store.task_get("t1")
    assert (task.status, task.owner, task.error) == ("pending", None, None)
    assert [(s.name, s.status) for s in await a.store.journal_load("t1")] == [("before", "ok")]


@pytest.mark.postgres
async def test_an_interrupt_lets_a_non_idempotent_step_finish_and_a_failure_caused_by_it_is_not_journaled(
        any_engines):
    started, release = asyncio.Event(), asyncio.Event()

    async def tool():
        started.set()
        await release.wait()
        raise ProviderError("the connection broke mid-reply: closed under it")  # a client closed by shutdown

    async def flow(ctx):
        return await ctx.step("tool", tool)

    a = await any_engines.engine("a", shutdown_timeout=5)
    a.register_kind("k", flow)
    await a.start("k", "app:x", task_id="t1")
    await until_set(started)
    a.interrupt()
    release.set()
    await a.close()
    task = await a.store.task_get("t1")
    assert (task.status, task.error) == ("pending", None)
    assert [(s.name, s.status) for s in await a.store.journal_load("t1")] == [("tool", "started")]


@pytest.mark.postgres
async def test_resume_retry_runs_the_failed_step_of_a_failed_task_again(any_engines):
    up = {"ok": False}

    async def model():
        if not up["ok"]:
            raise ProviderError("HTTP 500 after 4 attempts")
        return "hello"

    async def flow(ctx):
        await ctx.step("prep", lambda: 1)
        return await ctx.step("model", model, idempotent=True)

    a = await any_engines.engine("a")
    a.register_kind("k", flow)
    await a.start("k", "app:x", task_id="t1")
    with pytest.raises(ProviderError):
        await a.wait("t1", timeout=5)
    assert (await a.get("t1")).status == "failed"
    up["ok"] = True
    await a.resume("t1", retry=True)
    assert await a.wait("t1", timeout=5) == "hello"
    assert [(s.name, s.status) for s in await a.store.journal_load("t1")] == [("prep", "ok"), ("model", "ok")]


# -- the queue -------------------------------------------------------------------------------------
@pytest.mark.postgres
async def test_queued_tasks_run_on_workers_up_to_max_tasks_each(any_engines):
    gate = asyncio.Event()
    peak: dict[str, int] = {}
    live: dict[str, int] = {}

    async def work(ctx):
        node = ctx.task.owner
        live[node] = live.get(node, 0) + 1
        peak[node] = max(peak.get(node, 0), live[node])
        await gate.wait()
        live[node] -= 1
        return ctx.task.input["n"] * 2

    client = await any_engines.engine("client")
    client.register_kind("k", work)
    for n in range(8):
        task, created = await client.enqueue("k", "app:x", {"n": n}, task_id=f"q{n}")
        assert created and task.status == "pending" and task.owner is None
    assert (await client.enqueue("k", "app:x", {"n": 0}, task_id="q0"))[1] is False  # idempotent by id
    assert client.running() == []  # queueing never runs it here
    w1 = await any_engines.engine("w1", claim_interval=0.05, max_tasks=3)
    w2 = await any_engines.engine("w2", claim_interval=0.05, max_tasks=3)
    for w in (w1, w2):
        w.register_kind("k", work)
    await eventually(lambda: len(w1.running()) == 3 and len(w2.running()) == 3, what="both workers full")
    gate.set()
    assert [await client.wait(f"q{n}", timeout=10) for n in range(8)] == [n * 2 for n in range(8)]
    assert max(peak.values()) <= 3 and set(peak) == {"w1", "w2"}
