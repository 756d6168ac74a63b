"""Registry versions, run-time entries, change feed and audit, on both backends."""

from __future__ import annotations

import asyncio

import pytest

from wippy_agents.errors import InvalidPayload, StaleVersion, StoreError, UsageError
from wippy_agents.store import AuditRecord, VersionRecord, open_store


def version(n: int, **kw) -> VersionRecord:
    return VersionRecord(version=n, created_at=kw.pop("created_at", 1000.0 + n), author=kw.pop("author", "cli"),
                         reason=kw.pop("reason", f"change {n}"),
                         changes=kw.pop("changes", [{"op": "create", "id": f"app:e{n}", "entry": {"n": n}}]))


def audit(actor="cli:root", action="registry.write", resource="app:x", decision="allow", **details) -> AuditRecord:
    return AuditRecord(at=1.0, actor=actor, action=action, resource=resource, decision=decision, details=details)


async def test_an_empty_store_has_head_zero_and_no_history(store):
    assert await store.registry_head() == 0
    assert await store.registry_history() == []
    assert await store.registry_get_version(1) is None
    assert await store.runtime_entries() == []


async def test_appended_versions_come_back_newest_first_with_their_changes(store):
    for n in (1, 2, 3):
        await store.registry_append(version(n))
    assert await store.registry_head() == 3
    history = await store.registry_history()
    assert [v.version for v in history] == [3, 2, 1]
    assert history[-1] == version(1)
    assert [v.version for v in await store.registry_history(limit=2)] == [3, 2]
    assert await store.registry_get_version(2) == version(2)


async def test_append_of_a_version_other_than_head_plus_one_is_stale(store):
    await store.registry_append(version(1))
    for bad in (version(1, reason="again"), version(3), version(0), version(-1)):
        with pytest.raises(StaleVersion, match="the head is 1, so the next is 2"):
            await store.registry_append(bad)
    assert await store.registry_head() == 1
    assert (await store.registry_get_version(1)).reason == "change 1"


async def test_concurrent_appenders_of_one_version_exactly_one_wins(store_url):
    stores = [await open_store(store_url) for _ in range(4)]
    try:
        outcomes = await asyncio.gather(
            *(s.registry_append(version(1, author=f"node{i}")) for i, s in enumerate(stores)),
            return_exceptions=True)
        assert sum(o is None for o in outcomes) == 1
        assert all(isinstance(o, StaleVersion) for o in outcomes if o is not None)
        assert [v.version for v in await stores[0].registry_history()] == [1]
    finally:
        for s in stores:
            await s.close()


async def test_runtime_entries_are_upserted_and_deleted_with_the_version(store):
    a = {"id": "app.gen:a", "kind": "function.lua", "source": "return {}"}
    b = {"id": "app.gen:b", "kind": "prompt", "text": "hi"}
    await store.registry_append(version(1), runtime_upserts=[a, b])
    assert await store.runtime_entries() == [a, b]
    a2 = {**a, "source": "return {x = 1}"}
    await store.registry_append(version(2), runtime_upserts=[a2], runtime_deletes=["app.gen:b"])
    assert await store.runtime_entries() == [a2]


async def test_append_is_atomic_a_failing_part_stores_nothing(store):
    await store.registry_append(version(1))
    bad_audit = audit(decision="maybe")  # violates the decision CHECK constraint
    with pytest.raises(StoreError, match="registry_append failed"):
        await store.registry_append(version(2), runtime_upserts=[{"id": "app:x"}], audit=[bad_audit])
    assert await store.registry_head() == 1
    assert await store.runtime_entries() == []
    assert await store.audit_list() == []


async def test_append_refuses_entries_without_an_id_and_non_json_data(store):
    with pytest.raises(UsageError, match="no string 'id'"):
        await store.registry_append(version(1), runtime_upserts=[{"kind": "prompt"}])
    with pytest.raises(InvalidPayload, match="registry version 1 changes"):
        await store.registry_append(version(1, changes=[{"entry": {1, 2}}]))
    assert await store.registry_head() == 0


async def test_append_records_its_audit_lines(store):
    await store.registry_append(version(1), audit=[audit(resource="app:e1", version=1)])
    [line] = await store.audit_list()
    assert (line.resource, line.details, line.decision) == ("app:e1", {"version": 1}, "allow")
    assert isinstance(line.id, int)


async def test_audit_lists_newest_first_by_actor_with_a_limit(store):
    await store.audit_append([audit(actor="a", resource="r1"), audit(actor="b", resource="r2", why="x")])
    await store.audit_append([audit(actor="a", resource="r3", decision="deny")])
    await store.audit_append([])
    assert [r.resource for r in await store.audit_list()] == ["r3", "r2", "r1"]
    assert [r.resource for r in await store.audit_list(actor="a")] == ["r3", "r1"]
    assert [r.resource for r in await store.audit_list(limit=1)] == ["r3"]
    lines = await store.audit_list()
    assert lines[0].id > lines[1].id > lines[2].id
    assert lines[1].details == {"why": "x"}


async def test_changes_feed_yields_versions_from_other_writers_only(store_url):
    reader, writer = await open_store(store_url), await open_store(store_url)
    try:
        feed = reader.registry_changes(poll_interval=0.02, since=0)
        await writer.registry_append(version(1))
        assert await asyncio.wait_for(anext(feed), 5) == 1
        # the reader's own append is not news to it; the next foreign one is
        await reader.registry_append(version(2))
        await writer.registry_append(version(3))
        assert await asyncio.wait_for(anext(feed), 5) == 3
        await feed.aclose()
    finally:
        await reader.close()
        await writer.close()


async def test_changes_feed_since_a_version_reports_what_came_after_it(store):
    await store.registry_append(version(1))
    other = await open_store(store.url)
    try:
        await other.registry_append(version(2))
        feed = store.registry_changes(poll_interval=0.02, since=1)
        assert await asyncio.wait_for(anext(feed), 5) == 2
        await feed.aclose()
    finally:
        await other.close()


async def test_changes_feed_ends_when_the_store_closes(store):
    other = await open_store(store.url)
    try:
        feed = store.registry_changes(poll_interval=0.02, since=0)
        await other.registry_append(version(1))
        assert await asyncio.wait_for(anext(feed), 5) == 1
    finally:
        await other.close()
    waiting = asyncio.ensure_future(anext(feed))
    await store.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 5)


async def test_changes_feed_of_a_closed_store_is_empty(store):
    await store.close()
    assert [v async for v in store.registry_changes(poll_interval=0.02)] == []
