"""Node rows, lease epochs (fencing), the queue claim and reopening a failed step, on both backends."""

from __future__ import annotations

import asyncio

import pytest

from wippy_agents.errors import LeaseLost, NameTaken
from wippy_agents.store import NodeRecord, StepRecord, TaskRecord, VersionRecord, open_store


def task(task_id="t1", **kw) -> TaskRecord:
    kw.setdefault("kind", "workflow")
    kw.setdefault("target", "app.flows:order")
    return TaskRecord(id=task_id, input={}, **kw)


def step(seq, status="started", task_id="t1", **kw) -> StepRecord:
    return StepRecord(task_id=task_id, seq=seq, name=f"s{seq}", status=status, started_at=1.0, **kw)


def node(name="w1", started="boot:1", **kw) -> NodeRecord:
    kw.setdefault("host", "h1")
    kw.setdefault("pid", 100)
    return NodeRecord(name=name, started=started, **kw)


# -- epochs ----------------------------------------------------------------------
async def test_every_claim_grows_the_epoch(store):
    await store.task_create(task())
    first = await store.task_claim("t1", "a", 60)
    again = await store.task_claim("t1", "a", 60)
    assert (first.epoch, again.epoch) == (1, 2)
    await store.task_update("t1", node="a", epoch=2, lease_expires_at=0.0)
    [taken] = await store.task_claim_expired("b", 60)
    assert (taken.owner, taken.epoch) == ("b", 3)


async def test_a_write_of_an_older_epoch_is_refused_even_under_the_same_node_name(store):
    """A paused node that wakes after its task went back to a node of its name writes nothing."""
    await store.task_create(task())
    old = await store.task_claim("t1", "w1", 60)
    new = await store.task_claim("t1", "w1", 60)  # a restarted w1 took it back
    with pytest.raises(LeaseLost, match="epoch 2, ours was 1"):
        await store.journal_write(step(1), node="w1", epoch=old.epoch)
    with pytest.raises(LeaseLost):
        await store.journal_write_many([step(1), step(2)], node="w1", epoch=old.epoch)
    with pytest.raises(LeaseLost):
        await store.task_update("t1", node="w1", epoch=old.epoch, status="succeeded")
    assert await store.task_heartbeat("w1", ["t1"], 60, epochs={"t1": old.epoch}) == []
    assert await store.journal_load("t1") == []
    await store.journal_write(step(1), node="w1", epoch=new.epoch)
    assert await store.task_heartbeat("w1", ["t1"], 60, epochs={"t1": new.epoch}) == ["t1"]
    assert (await store.task_get("t1")).status == "running"  # a claim starts it


# -- the queue -----------------------------------------------------------------------
async def test_queued_tasks_are_claimed_by_exactly_one_of_two_stores(store_url):
    a, b = await open_store(store_url), await open_store(store_url)
    try:
        for i in range(20):
            await a.task_create(task(f"q{i:02d}", created_at=100.0 + i))
        got_a, got_b = await asyncio.gather(a.task_claim_expired("a", 60, limit=15),
                                            b.task_claim_expired("b", 60, limit=15))
        ids_a, ids_b = {t.id for t in got_a}, {t.id for t in got_b}
        assert not ids_a & ids_b and len(ids_a | ids_b) == 20
        assert {(t.epoch, t.status) for t in got_a + got_b} == {(1, "running")}
        assert await a.task_claim_expired("a", 60) == []  # nothing left: an idle poll claims nothing
    finally:
        await a.close()
        await b.close()


# -- nodes -------------------------------------------------------------------------------
async def test_a_live_node_name_cannot_be_taken_by_another_process(store):
    await store.node_register(node(pid=100, started="boot:1"), ttl=30)
    with pytest.raises(NameTaken, match="'w1' is in use by a live process .pid 100"):
        await store.node_register(node(pid=200, started="boot:2"), ttl=30)
    again = await store.node_register(node(pid=100, started="boot:1"), ttl=30)  # the same incarnation
    assert again.pid == 100
    # A holder whose heartbeat is older than the ttl is gone: its name is free.
    taken = await store.node_register(node(pid=200, started="boot:2"), ttl=0)
    assert (taken.pid, taken.started) == (200, "boot:2")
    assert await store.node_heartbeat("w1", started="boot:1") is False
    assert await store.node_heartbeat("w1", started="boot:2") is True


async def test_forgetting_a_dead_node_frees_its_leases_at_once(store):
    await store.node_register(node("dead", started="boot:9"), ttl=30)
    await store.node_register(node("alive", started="boot:8", pid=101), ttl=30)
    await store.task_create(task("t1"))
    await store.task_create(task("t2"))
    await store.task_claim("t1", "dead", 600)
    await store.task_claim("t2", "alive", 600)
    assert [n.name for n in await store.node_list(host="h1")] == ["alive", "dead"]
    assert await store.node_list(host="elsewhere") == []
    assert await store.node_forget("dead", started="boot:other") == 0  # not that incarnation
    assert await store.node_forget("dead", started="boot:9") == 1
    assert await store.node_get("dead") is None
    [taken] = await store.task_claim_expired("me", 60)
    assert (taken.id, taken.epoch) == ("t1", 2)


# -- reopening a failed step ------------------------------------------------------------------
async def test_reopen_turns_an_error_row_back_into_started_under_the_lease(store):
    await store.task_create(task())
    claim = await store.task_claim("t1", "a", 60)
    await store.journal_write(step(1, "error", error={"type": "ProviderError", "message": "500"}, finished_at=2.0),
                              node="a", epoch=claim.epoch)
    with pytest.raises(LeaseLost):
        await store.journal_reopen("t1", 1, node="a", epoch=claim.epoch + 1)
    assert await store.journal_reopen("t1", 1, node="a", epoch=claim.epoch) is True
    [row] = await store.journal_load("t1")
    assert (row.status, row.error, row.finished_at) == ("started", None, None)
    assert await store.journal_reopen("t1", 1, node="a", epoch=claim.epoch) is False  # not an error row now
    await store.journal_write(step(1, "ok", result=7, finished_at=3.0), node="a", epoch=claim.epoch)
    assert (await store.journal_load("t1"))[0].result == 7


async def test_versions_record_their_node_and_host(store):
    await store.registry_append(VersionRecord(version=1, created_at=1.0, author="cli", reason="r", changes=[],
                                              node="w1", host="h1"))
    [v] = await store.registry_history()
    assert (v.node, v.host) == ("w1", "h1")
