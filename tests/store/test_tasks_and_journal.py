"""Tasks, leases, claims and the step journal, on both backends."""

from __future__ import annotations

import asyncio
import time

import pytest

from wippy_agents.errors import (
    InvalidPayload,
    JournalCorrupt,
    LeaseLost,
    NondeterminismError,
    StepAlreadyRecorded,
    StoreError,
    TaskError,
    TaskNotFound,
    UsageError,
)
from wippy_agents.store import StepRecord, TaskRecord, open_store


def task(task_id="t1", **kw) -> TaskRecord:
    kw.setdefault("kind", "workflow")
    kw.setdefault("target", "app.flows:order")
    kw.setdefault("input", {"order": 7, "items": ["a", "b"]})
    return TaskRecord(id=task_id, **kw)


def step(seq, status="started", name=None, task_id="t1", **kw) -> StepRecord:
    return StepRecord(task_id=task_id, seq=seq, name=name or f"s{seq}", status=status,
                      started_at=kw.pop("started_at", 10.0 + seq), **kw)


# -- tasks ---------------------------------------------------------------------
async def test_task_create_is_idempotent_by_id(store):
    first, created = await store.task_create(task(registry_version=4, parent_id="p0"))
    assert created and first.input == {"order": 7, "items": ["a", "b"]}
    assert (first.status, first.registry_version, first.parent_id) == ("pending", 4, "p0")
    assert first.created_at > 0 and first.updated_at == first.created_at
    again, created = await store.task_create(task(input="other", kind="agent"))
    assert not created and again == first
    assert await store.task_get("t1") == first
    assert await store.task_get("nope") is None


async def test_task_list_filters_by_status_newest_first(store):
    for i, status in enumerate(["pending", "running", "succeeded", "running"]):
        await store.task_create(task(f"t{i}", status=status, created_at=100.0 + i))
    assert [t.id for t in await store.task_list()] == ["t3", "t2", "t1", "t0"]
    assert [t.id for t in await store.task_list(status="running")] == ["t3", "t1"]
    assert [t.id for t in await store.task_list(limit=2)] == ["t3", "t2"]


async def test_task_update_sets_fields_and_refuses_unknown_ones(store):
    created, _ = await store.task_create(task())
    err = {"type": "StepFailed", "message": "boom", "details": {}}
    updated = await store.task_update("t1", status="failed", error=err, result={"partial": [1]})
    assert (updated.status, updated.error, updated.result) == ("failed", err, {"partial": [1]})
    assert updated.updated_at >= created.updated_at and updated.created_at == created.created_at
    assert await store.task_get("t1") == updated
    with pytest.raises(TaskNotFound, match="'ghost'"):
        await store.task_update("ghost", status="running")
    with pytest.raises(UsageError, match="cannot set created_at"):
        await store.task_update("t1", created_at=1.0)
    with pytest.raises(UsageError, match="unknown status 'done'"):
        await store.task_update("t1", status="done")


async def test_task_update_with_node_needs_the_lease(store):
    await store.task_create(task())
    await store.task_claim("t1", "a", 60)
    assert (await store.task_update("t1", node="a", status="succeeded")).status == "succeeded"
    with pytest.raises(LeaseLost, match="lease lost"):
        await store.task_update("t1", node="b", status="failed")
    assert (await store.task_get("t1")).status == "succeeded"


async def test_task_claim_takes_free_expired_or_own_leases_only(store):
    await store.task_create(task())
    claimed = await store.task_claim("t1", "a", 60)
    assert claimed.owner == "a" and claimed.lease_expires_at > time.time() + 50
    assert await store.task_claim("t1", "b", 60) is None  # a holds a live lease
    renewed = await store.task_claim("t1", "a", 120)
    assert renewed.lease_expires_at > claimed.lease_expires_at
    await store.task_update("t1", lease_expires_at=time.time() - 1)
    assert (await store.task_claim("t1", "b", 60)).owner == "b"  # expired: b takes over
    await store.task_update("t1", status="succeeded")
    assert await store.task_claim("t1", "b", 60) is None  # finished tasks hold no lease
    with pytest.raises(TaskNotFound):
        await store.task_claim("ghost", "a", 60)


async def test_claim_expired_takes_unowned_and_expired_live_tasks(store):
    past, future = time.time() - 5, time.time() + 300
    specs = {
        "free": dict(status="pending"),
        "expired": dict(status="running", owner="dead", lease_expires_at=past),
        "held": dict(status="running", owner="other", lease_expires_at=future),
        "mine": dict(status="running", owner="me", lease_expires_at=future),
        "done": dict(status="succeeded", owner="dead", lease_expires_at=past),
        "stranded": dict(status="stranded", owner="dead", lease_expires_at=past),
    }
    for i, (tid, kw) in enumerate(specs.items()):
        await store.task_create(task(tid, created_at=100.0 + i, **kw))
    claimed = await store.task_claim_expired("me", 30)
    assert [t.id for t in claimed] == ["free", "expired"]
    assert all(t.owner == "me" and t.lease_expires_at > time.time() for t in claimed)
    assert await store.task_claim_expired("me", 30) == []
    assert [t.id for t in await store.task_claim_expired("me", 30, include_own=True)] == ["free", "expired", "mine"]


async def test_a_claim_never_takes_the_nodes_own_live_runs_so_it_cannot_fence_them_out(store):
    future = time.time() + 300
    await store.task_create(task("live", status="running", owner="me", lease_expires_at=future))
    await store.task_create(task("left", status="running", owner="me", lease_expires_at=future, created_at=101.0))
    before = await store.task_get("live")
    claimed = await store.task_claim_expired("me", 30, include_own=True, exclude=["live"])
    assert [t.id for t in claimed] == ["left"]
    assert (await store.task_get("live")).epoch == before.epoch  # the live run's writes stay valid


async def test_claim_expired_respects_the_limit_oldest_first(store):
    for i in range(5):
        await store.task_create(task(f"t{i}", created_at=100.0 + i))
    assert [t.id for t in await store.task_claim_expired("n", 30, limit=2)] == ["t0", "t1"]
    assert [t.id for t in await store.task_claim_expired("n2", 30, limit=10)] == ["t2", "t3", "t4"]


async def test_concurrent_claimers_take_each_expired_task_exactly_once(store_url):
    nodes = [await open_store(store_url) for _ in range(4)]
    try:
        for i in range(40):
            await nodes[0].task_create(task(f"t{i:02}", owner="dead", lease_expires_at=1.0, status="running"))

        async def claimer(i, s):
            got = []
            while batch := await s.task_claim_expired(f"node{i}", 60, limit=3):
                got += [(t.id, t.owner) for t in batch]
            return got

        results = await asyncio.gather(*(claimer(i, s) for i, s in enumerate(nodes)))
        ids = [tid for r in results for tid, _ in r]
        assert sorted(ids) == [f"t{i:02}" for i in range(40)]  # all claimed, none twice
        owners = {t.id: t.owner for t in await nodes[0].task_list(limit=100)}
        assert owners == {tid: owner for r in results for tid, owner in r}
    finally:
        for s in nodes:
            await s.close()


async def test_heartbeat_extends_only_leases_we_hold(store):
    for tid, owner in [("a", "me"), ("b", "me"), ("c", "other")]:
        await store.task_create(task(tid, owner=owner, lease_expires_at=time.time() + 1))
    before = await store.task_get("a")
    assert await store.task_heartbeat("me", ["a", "c", "b", "ghost"], 600) == ["a", "b"]
    assert (await store.task_get("a")).lease_expires_at > before.lease_expires_at + 500
    assert (await store.task_get("c")).lease_expires_at < time.time() + 2
    assert await store.task_heartbeat("me", [], 600) == []


async def test_non_json_task_input_is_refused(store):
    with pytest.raises(InvalidPayload, match="task 't1' input"):
        await store.task_create(task(input={"x": object()}))
    with pytest.raises(InvalidPayload, match="result"):
        await store.task_create(task(result=float("nan")))
    assert await store.task_get("t1") is None


# -- journal -------------------------------------------------------------------
async def test_journal_records_started_then_finished_steps_in_order(store):
    await store.task_create(task())
    await store.journal_write(step(1))
    await store.journal_write(step(0))
    await store.journal_write(step(0, "ok", result={"weather": "sunny"}, finished_at=20.0, tokens=12, cost_usd=0.5))
    err = {"type": "LuaError", "message": "bad", "details": {"line": 3}}
    await store.journal_write(step(1, "error", error=err, finished_at=21.0))
    s0, s1 = await store.journal_load("t1")
    assert s0 == step(0, "ok", result={"weather": "sunny"}, finished_at=20.0, tokens=12, cost_usd=0.5)
    assert (s1.status, s1.error, s1.result, s1.started_at) == ("error", err, None, 11.0)
    assert await store.journal_load("other") == []


async def test_a_finished_step_is_never_recorded_twice(store):
    await store.task_create(task())
    await store.journal_write(step(0, "ok", result=1))
    with pytest.raises(StepAlreadyRecorded, match="step 0 .* already recorded as 'ok'"):
        await store.journal_write(step(0, "ok", result=2))
    with pytest.raises(StoreError):  # StepAlreadyRecorded is a StoreError
        await store.journal_write(step(0, "error", error={"type": "X", "message": "", "details": {}}))
    with pytest.raises(StepAlreadyRecorded):  # nor restarted over its result
        await store.journal_write(step(0, "started"))
    [only] = await store.journal_load("t1")
    assert (only.status, only.result) == ("ok", 1)


async def test_a_started_step_may_start_again_and_then_finish_once(store):
    await store.task_create(task())
    await store.journal_write(step(0, started_at=1.0))
    await store.journal_write(step(0, started_at=2.0))  # an idempotent step re-run after a crash
    await store.journal_write(step(0, "ok", result="r"))
    [only] = await store.journal_load("t1")
    assert (only.status, only.result, only.started_at) == ("ok", "r", 2.0)


async def test_a_step_recorded_under_another_name_is_nondeterminism(store):
    await store.task_create(task())
    await store.journal_write(step(0, name="call_model"))
    with pytest.raises(NondeterminismError, match="journaled as 'call_model', not 'call_tool'"):
        await store.journal_write(step(0, "ok", name="call_tool"))
    assert (await store.journal_load("t1"))[0].status == "started"


async def test_journal_write_with_node_needs_the_lease(store):
    await store.task_create(task())
    await store.task_claim("t1", "a", 60)
    await store.journal_write(step(0), node="a")
    await store.task_update("t1", lease_expires_at=time.time() - 1)
    await store.task_claim("t1", "b", 60)  # b takes over the expired lease
    with pytest.raises(LeaseLost, match="lease lost") as caught:
        await store.journal_write(step(0, "ok", result="late"), node="a")
    assert isinstance(caught.value, TaskError)
    with pytest.raises(LeaseLost):
        await store.journal_write(step(1), node="a")
    assert [(s.seq, s.status) for s in await store.journal_load("t1")] == [(0, "started")]
    await store.journal_write(step(0, "ok", result="b's"), node="b")
    assert (await store.journal_load("t1"))[0].result == "b's"


async def test_a_late_write_racing_a_takeover_is_either_seen_by_the_new_owner_or_refused(store_url):
    old, new = await open_store(store_url), await open_store(store_url)
    try:
        for i in range(30):
            tid = f"race{i}"
            await old.task_create(task(tid, owner="a", lease_expires_at=time.time() - 1, status="running"))

            async def take_over():
                assert (await new.task_claim(tid, "b", 60)).owner == "b"
                return await new.journal_load(tid)

            late, seen = await asyncio.gather(old.journal_write(step(0, "ok", task_id=tid, result=1), node="a"),
                                              take_over(), return_exceptions=True)
            assert not isinstance(seen, BaseException), seen
            if late is None:  # the late write landed: it must be in what the new owner loads
                assert [s.seq for s in seen] == [0]
            else:
                assert isinstance(late, LeaseLost) and seen == []
    finally:
        await old.close()
        await new.close()


async def test_journal_write_for_an_unknown_task_is_refused(store):
    with pytest.raises(TaskNotFound, match="'ghost'"):
        await store.journal_write(step(0, task_id="ghost"))
    with pytest.raises(TaskNotFound, match="'ghost'"):
        await store.journal_write(step(0, task_id="ghost"), node="a")


async def test_journal_refuses_non_json_results_and_bad_statuses(store):
    await store.task_create(task())
    with pytest.raises(InvalidPayload, match="step 0 of task 't1' result"):
        await store.journal_write(step(0, "ok", result={1, 2}))
    with pytest.raises(InvalidPayload, match="unknown status 'done'"):
        await store.journal_write(step(0, "done"))
    assert await store.journal_load("t1") == []


async def test_journal_write_many_records_a_finish_and_the_next_start_together(store):
    await store.task_create(task())
    await store.task_claim("t1", "a", 60)
    await store.journal_write(step(0), node="a")
    await store.journal_write_many([step(0, "ok", result=0), step(1)], node="a")
    await store.journal_write_many([], node="a")
    assert [(s.seq, s.status, s.result) for s in await store.journal_load("t1")] == [(0, "ok", 0), (1, "started", None)]


async def test_journal_write_many_is_all_or_nothing(store):
    await store.task_create(task())
    await store.task_claim("t1", "a", 60)
    await store.journal_write(step(0, "ok", result=0), node="a")
    with pytest.raises(StepAlreadyRecorded):
        await store.journal_write_many([step(1), step(0, "ok", result="again")], node="a")
    with pytest.raises(LeaseLost):
        await store.journal_write_many([step(1)], node="b")
    assert [s.seq for s in await store.journal_load("t1")] == [0]


# -- rows that fail to decode ----------------------------------------------------
async def test_a_corrupt_journal_row_names_table_and_key(store, raw_sql):
    await store.task_create(task())
    await store.journal_write(step(3, "ok", result=[1]))
    await raw_sql("UPDATE journal SET result = $1 WHERE seq = 3", "{not json")
    with pytest.raises(JournalCorrupt, match=r"cannot decode journal row \('t1', 3\): column 'result'"):
        await store.journal_load("t1")


async def test_a_corrupt_task_row_names_table_and_key(store, raw_sql):
    await store.task_create(task())
    await raw_sql("UPDATE tasks SET input = $1 WHERE id = $2", "[1,", "t1")
    with pytest.raises(JournalCorrupt, match="cannot decode tasks row 't1': column 'input'"):
        await store.task_get("t1")
    with pytest.raises(StoreError, match="tasks row 't1'"):
        await store.task_list()


# -- signals -------------------------------------------------------------------
async def test_signals_come_back_in_order_per_topic_and_are_not_consumed(store):
    await store.task_create(task())
    a = await store.signal_send("t1", "approve", {"by": "ada"})
    b = await store.signal_send("t1", "other", 1)
    c = await store.signal_send("t1", "approve", None)
    assert a < b < c
    assert await store.signal_next("t1", "approve", after=0) == (a, {"by": "ada"})
    assert await store.signal_next("t1", "approve", after=0) == (a, {"by": "ada"})  # reading does not consume
    assert await store.signal_next("t1", "approve", after=a) == (c, None)
    assert await store.signal_next("t1", "approve", after=c) is None
    assert await store.signal_next("t1", "other", after=0) == (b, 1)


async def test_signals_to_unknown_tasks_and_non_json_payloads_are_refused(store):
    with pytest.raises(TaskNotFound, match="cannot signal task 'ghost'"):
        await store.signal_send("ghost", "x", 1)
    await store.task_create(task())
    with pytest.raises(InvalidPayload, match="signal 'x' to task 't1'"):
        await store.signal_send("t1", "x", {1, 2})
    assert await store.signal_next("t1", "x", after=0) is None


async def test_concurrent_signals_to_one_task_are_all_kept_in_id_order(store_url):
    senders = [await open_store(store_url) for _ in range(3)]
    try:
        await senders[0].task_create(task())
        ids = await asyncio.gather(*(s.signal_send("t1", "n", i) for i in range(10) for s in senders))
        assert len(set(ids)) == 30
        seen, after = [], 0
        while (got := await senders[0].signal_next("t1", "n", after=after)) is not None:
            after = got[0]
            seen.append(got[0])
        assert seen == sorted(ids)
    finally:
        for s in senders:
            await s.close()


async def test_a_corrupt_signal_row_names_table_and_key(store, raw_sql):
    await store.task_create(task())
    sid = await store.signal_send("t1", "x", 1)
    await raw_sql("UPDATE task_signals SET payload = $1", "nope{")
    with pytest.raises(JournalCorrupt, match=f"cannot decode task_signals row {sid}"):
        await store.signal_next("t1", "x", after=0)


# -- the event history's columns (migration 5) -----------------------------------
async def test_a_step_records_its_node_and_counts_its_attempts(store):
    await store.task_create(task())
    await store.task_claim("t1", "node-a", 30)
    await store.journal_write(step(1, node="node-a"), node="node-a")
    await store.journal_write(step(1, node="node-a", started_at=20.0), node="node-a")  # run again after a crash
    await store.journal_write(step(2, node="node-a"), node="node-a")
    [s1, s2] = await store.journal_load("t1")
    assert (s1.node, s1.attempt, s1.started_at) == ("node-a", 2, 20.0)
    assert (s2.node, s2.attempt) == ("node-a", 1)
    await store.task_update("t1", owner="node-b")
    await store.journal_write(step(1, status="ok", node="node-b", result=7, started_at=20.0, finished_at=21.5),
                              node="node-b")
    [s1, _] = await store.journal_load("t1")
    assert (s1.status, s1.node, s1.attempt, s1.finished_at - s1.started_at) == ("ok", "node-b", 2, 1.5)


async def test_an_unguarded_finish_keeps_the_node_that_started_the_step(store):
    await store.task_create(task())
    await store.journal_write(step(1, node="node-a"))
    await store.journal_write(step(1, status="ok", result=1, finished_at=12.0))
    [s1] = await store.journal_load("t1")
    assert (s1.node, s1.attempt) == ("node-a", 1)

