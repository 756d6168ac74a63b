"""Task signals (migration 3): append-only rows read by (task, topic, id > after)."""

from __future__ import annotations

import pytest

from wippy_agents.errors import JournalCorrupt, TaskNotFound
from wippy_agents.store import TaskRecord

pytestmark = pytest.mark.postgres


async def test_signals_come_back_per_topic_in_send_order(store):
    await store.task_create(TaskRecord(id="t1", kind="k", target="app:x", input=None))
    first = await store.signal_send("t1", "n", {"v": 1})
    await store.signal_send("t1", "other", "x")
    second = await store.signal_send("t1", "n", [2])
    assert first < second
    assert await store.signal_next("t1", "n", after=0) == (first, {"v": 1})
    assert await store.signal_next("t1", "n", after=first) == (second, [2])
    assert await store.signal_next("t1", "n", after=second) is None
    assert (await store.signal_next("t1", "other", after=0))[1] == "x"


async def test_a_signal_for_an_unknown_task_is_refused(store):
    with pytest.raises(TaskNotFound, match="'ghost'"):
        await store.signal_send("ghost", "n", 1)


async def test_an_undecodable_signal_payload_is_a_clear_error(store, raw_sql):
    await store.task_create(TaskRecord(id="t1", kind="k", target="app:x", input=None))
    sid = await store.signal_send("t1", "n", 1)
    await raw_sql("UPDATE task_signals SET payload = '{nope' WHERE id = $1", sid)
    with pytest.raises(JournalCorrupt, match="task_signals row"):
        await store.signal_next("t1", "n", after=0)
