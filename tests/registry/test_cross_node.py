"""Two nodes on one store see each other's changes (LISTEN/NOTIFY on PostgreSQL,
polling on SQLite) and a race between them ends in StaleVersion, not a fork."""

from __future__ import annotations

import pytest

from wippy_agents.errors import StaleVersion
from wippy_agents.registry import Registry
from wippy_agents.store import open_store

from .conftest import Recorder


@pytest.fixture
async def two_nodes(store_url, settings):
    stores = [await open_store(store_url), await open_store(store_url)]
    regs = [Registry(s, author_default=f"node{i}") for i, s in enumerate(stores)]
    try:
        for reg in regs:
            await reg.load(settings)
            reg.follow(poll_interval=0.02)
        yield regs
    finally:
        for reg in regs:
            await reg.close()
        for s in stores:
            await s.close()


async def test_a_change_on_one_node_reaches_the_other(two_nodes):
    a, b = two_nodes
    assert a.version == b.version == 1  # the second load found the files already stored
    rec = Recorder()
    b.subscribe(rec)
    cs = a.changeset(author="agent:a", reason="new tool")
    cs.create({"id": "app.generated:slug", "kind": "function.lua", "source": "return {}", "method": "handler"})
    version = await a.apply(cs)
    await rec.wait_for(lambda v, ids: v == version and ids == ["app.generated:slug"])
    assert b.get("app.generated:slug").data["source"] == "return {}" and b.version == version
    # and back
    rec_a = Recorder()
    a.subscribe(rec_a)
    cs = b.changeset(author="agent:b")
    cs.delete("app.generated:slug")
    v2 = await b.apply(cs)
    await rec_a.wait_for(lambda v, ids: v == v2)
    assert a.get("app.generated:slug") is None


async def test_racing_writers_one_wins_the_other_gets_stale_version(two_nodes):
    a, b = two_nodes
    # stop b from learning about a's write before it tries its own
    for task in list(b._tasks):
        task.cancel()
    ca, cb = a.changeset(), b.changeset()
    ca.create({"id": "app.db:a", "kind": "registry.entry"})
    cb.create({"id": "app.db:b", "kind": "registry.entry"})
    assert await a.apply(ca) == 2
    with pytest.raises(StaleVersion, match="based on version 1 is stale: another node wrote version 2"):
        await b.apply(cb)
    # b caught up while refusing, and a changeset prepared now applies
    assert b.version == 2 and b.get("app.db:a") is not None and b.get("app.db:b") is None
    cb = b.changeset()
    cb.create({"id": "app.db:b", "kind": "registry.entry"})
    assert await b.apply(cb) == 3
