"""Group commit of journal rows (``store/writer.py``) and batched fencing, on both backends where it applies."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from wippy_agents.errors import ConfigError, LeaseLost
from wippy_agents.store import StepRecord, TaskRecord, open_store


def task(task_id: str) -> TaskRecord:
    return TaskRecord(id=task_id, kind="workflow", target="app.flows:order", input={})


def step(task_id: str, seq: int, status: str = "ok") -> StepRecord:
    return StepRecord(task_id=task_id, seq=seq, name=f"s{seq}", status=status, result=seq, started_at=1.0)


async def _claimed(store, *ids: str) -> dict[str, int]:
    epochs = {}
    for task_id in ids:
        await store.task_create(task(task_id))
        epochs[task_id] = (await store.task_claim(task_id, "n1", 30.0)).epoch
    return epochs


async def test_a_fenced_out_batch_is_rejected_whole_while_the_others_of_the_same_commit_land(store):
    epochs = await _claimed(store, "a", "b", "c")
    writer = getattr(store, "writer", None)
    commits = writer.stats["commits"] if writer else 0
    results = await asyncio.gather(
        store.journal_write_many([step("a", 1), step("a", 2)], node="n1", epoch=epochs["a"]),
        store.journal_write_many([step("b", 1), step("b", 2)], node="n1", epoch=epochs["b"] - 1),  # stale claim
        store.journal_write(step("c", 1), node="n1", epoch=epochs["c"]),
        store.journal_write(step("a", 3), node="other", epoch=epochs["a"]),  # not the owner
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], LeaseLost) and "ours was" in str(results[1])
    assert isinstance(results[3], LeaseLost)
    assert [s.seq for s in await store.journal_load("a")] == [1, 2]
    assert await store.journal_load("b") == []  # neither row of the fenced unit landed
    assert [s.seq for s in await store.journal_load("c")] == [1]
    if writer is not None:  # SQLite: the four units were one transaction
        assert writer.stats["commits"] == commits + 1


async def test_a_waiter_is_released_only_once_its_row_is_committed(tmp_path):
    path = tmp_path / "s.db"
    store = await open_store(f"sqlite:///{path}")
    try:
        epochs = await _claimed(store, *(f"t{i}" for i in range(20)))

        async def write_and_look(task_id: str) -> int:
            await store.journal_write(step(task_id, 1), node="n1", epoch=epochs[task_id])
            other = sqlite3.connect(path)  # another connection: sees only what is committed
            try:
                return other.execute("SELECT COUNT(*) FROM journal WHERE task_id = ?", (task_id,)).fetchone()[0]
            finally:
                other.close()

        assert await asyncio.gather(*(write_and_look(t) for t in epochs)) == [1] * 20
        assert store.writer.stats["units"] == 20 and store.writer.stats["commits"] < 20  # grouped
    finally:
        await store.close()


async def test_a_busy_write_lock_sends_the_batch_off_the_loop_instead_of_failing(tmp_path):
    path = tmp_path / "s.db"
    store = await open_store(f"sqlite:///{path}")
    try:
        epochs = await _claimed(store, "t")
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        pending = asyncio.ensure_future(store.journal_write(step("t", 1), node="n1", epoch=epochs["t"]))
        await asyncio.sleep(0.05)
        assert not pending.done()  # waiting on aiosqlite's thread (busy_timeout), the loop runs on
        holder.execute("COMMIT")
        holder.close()
        await asyncio.wait_for(pending, 5)
        assert store.writer.stats["thread_batches"] >= 1
        assert [s.seq for s in await store.journal_load("t")] == [1]
    finally:
        await store.close()


async def test_synchronous_full_from_the_url_and_a_bad_value_is_one_clear_error(tmp_path):
    store = await open_store(f"sqlite:///{tmp_path / 'f.db'}?synchronous=full")
    try:
        assert store.synchronous == "FULL"
        assert (await store._call("probe", lambda db: db.execute("PRAGMA synchronous").fetchone()[0])) == 2
        epochs = await _claimed(store, "t")
        await asyncio.gather(*(store.journal_write(step("t", i), node="n1", epoch=epochs["t"]) for i in (1, 2, 3)))
        assert [s.seq for s in await store.journal_load("t")] == [1, 2, 3]
        assert store.writer.stats["thread_batches"] >= 1  # an fsyncing commit never runs on the loop
    finally:
        await store.close()
    with pytest.raises(ConfigError, match="synchronous='sometimes'"):
        await open_store(f"sqlite:///{tmp_path / 'g.db'}?synchronous=sometimes")
    with pytest.raises(ConfigError, match="unknown option 'mode'"):
        await open_store(f"sqlite:///{tmp_path / 'g.db'}?mode=ro")


async def test_checkpoints_run_off_the_loop_and_bound_the_wal(tmp_path, monkeypatch):
    from wippy_agents.store import writer as writer_mod

    monkeypatch.setattr(writer_mod, "CHECKPOINT_COMMITS", 10)
    path = tmp_path / "s.db"
    store = await open_store(f"sqlite:///{path}")
    try:
        store.writer._limit_frames = 20  # a tiny bound: the checkpointer must truncate
        epochs = await _claimed(store, "t")
        for i in range(1, 200):
            await store.journal_write(step("t", i), node="n1", epoch=epochs["t"])
        checkpointer = store.writer._checkpointing
        if checkpointer is not None:
            await checkpointer
        stats = store.writer.stats
        assert stats["checkpoints"] >= 1 and stats["truncates"] >= 1, stats
        assert (path.parent / "s.db-wal").stat().st_size < 200 * 4096
    finally:
        await store.close()
