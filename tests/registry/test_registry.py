"""The versioned registry over both stores: apply, history, rollback, bad changesets,
subscribers, restart persistence."""

from __future__ import annotations

import pytest

from wippy_agents.errors import PermissionDenied, StaleVersion, ValidationError, VersionNotFound
from wippy_agents.registry import AppSettings, Problem, Registry
from wippy_agents.store import open_store

from .conftest import Recorder

DB = {"id": "app.db:main", "kind": "registry.entry", "host": "db", "port": 5432}


async def test_load_writes_one_version_and_an_unchanged_reload_writes_none(registry, store, settings):
    assert registry.version == 1
    [record] = await registry.history()
    assert record.author == "loader" and {c["op"] for c in record.changes} == {"create"}
    again = Registry(store)
    assert await again.load(settings) == 1
    assert again.snapshot().ids() == registry.snapshot().ids()
    assert await store.registry_head() == 1


async def test_changeset_applies_create_update_delete_as_one_version(registry, store):
    rec = Recorder()
    seen_live: list[bool] = []
    registry.subscribe(rec)
    registry.subscribe(lambda v, ids: seen_live.append(registry.version == v and registry.get("app.db:main") is not None))
    cs = registry.changeset(author="cli:root", reason="add db, retune weather")
    cs.create(DB)
    cs.update("app.tools:weather", {"meta": {"type": "tool", "description": "Weather now"}, "method": "run"})
    v2 = await registry.apply(cs)
    assert v2 == 2 and registry.get("app.db:main").data == {"host": "db", "port": 5432}
    weather = registry.get("app.tools:weather")
    assert weather.data["method"] == "run" and weather.meta["description"] == "Weather now"
    assert weather.data["source"].startswith("return")  # untouched fields are kept
    assert rec.events == [(2, ["app.db:main", "app.tools:weather"])] and seen_live == [True]

    cs = registry.changeset(author="cli:root", reason="drop db")
    cs.delete("app.db:main")
    assert await registry.apply(cs) == 3
    assert registry.get("app.db:main") is None

    latest, middle = (await registry.history(limit=2))
    assert (latest.version, latest.author, latest.reason) == (3, "cli:root", "drop db")
    assert latest.changes[0]["op"] == "delete" and latest.changes[0]["before"]["data"]["host"] == "db"
    ops = {c["id"]: c for c in middle.changes}
    assert ops["app.tools:weather"]["op"] == "update"
    assert ops["app.tools:weather"]["before"]["data"]["method"] == "handler"
    audit = await store.audit_list(limit=10)
    assert {(a.actor, a.resource, a.details["version"]) for a in audit} >= {("cli:root", "app.db:main", 3)}


async def _refused(registry: Registry, store, build, error=ValidationError, match=None):
    """Apply a bad changeset: it raises, and nothing changes live or in the store."""
    before_version, before_ids = registry.version, registry.snapshot().ids()
    head = await store.registry_head()
    with pytest.raises(error, match=match) as err:
        await build()
    assert registry.version == before_version and registry.snapshot().ids() == before_ids
    assert await store.registry_head() == head
    return err.value


async def test_duplicate_id_in_one_changeset_is_refused(registry, store):
    async def build():
        cs = registry.changeset()
        cs.create(DB)
        cs.create({**DB, "port": 1})
        await registry.apply(cs)

    await _refused(registry, store, build, match="app.db:main: duplicate id in one changeset")


async def test_one_bad_entry_refuses_the_whole_changeset(registry, store):
    async def build():
        cs = registry.changeset()
        cs.create(DB)
        cs.create({"id": "app.x:bad", "kind": "prompt"})  # neither text nor source
        await registry.apply(cs)

    err = await _refused(registry, store, build, match="app.x:bad: prompt schema: needs exactly one of: text or source")
    assert registry.get("app.db:main") is None and err.details["problems"][0]["entry"] == "app.x:bad"


async def test_reference_to_a_missing_entry_is_refused(registry, store):
    async def build():
        cs = registry.changeset()
        cs.update("app.agents:assistant", {"model": "app.models:gone"})
        await registry.apply(cs)

    await _refused(registry, store, build, match=r"app.agents:assistant: model: refers to 'app.models:gone', which does not exist")


async def test_deleting_an_entry_others_still_reference_is_refused(registry, store):
    async def build():
        cs = registry.changeset()
        cs.delete("app.models:default")
        await registry.apply(cs)

    err = await _refused(registry, store, build, match="which this changeset deletes")
    [problem] = err.details["problems"]
    assert problem["entry"] == "app.agents:assistant" and problem["file"].endswith("assistant.yaml") and problem["line"] == 5  # the model: line
    # deleting the referrer in the same changeset is fine
    cs = registry.changeset()
    cs.delete("app.models:default")
    cs.delete("app.agents:assistant")
    assert await registry.apply(cs) == registry.version == 2


async def test_update_or_delete_of_a_missing_entry_is_refused(registry, store):
    async def build():
        cs = registry.changeset()
        cs.update("app.db:nope", {"x": 1})
        await registry.apply(cs)

    await _refused(registry, store, build, match="app.db:nope: cannot update: no such entry")


async def test_concurrent_changeset_on_a_stale_version_is_refused(registry, store):
    first, second = registry.changeset(reason="a"), registry.changeset(reason="b")
    first.create(DB)
    second.create({**DB, "id": "app.db:other"})
    assert await registry.apply(first) == 2

    async def build():
        await registry.apply(second)

    err = await _refused(registry, store, build, error=StaleVersion, match="based on version 1 is stale: the registry is at version 2")
    assert err.details == {"base_version": 1, "head": 2}


async def test_rollback_restores_an_old_state_as_a_new_version(registry, store):
    cs = registry.changeset()
    cs.create(DB)
    await registry.apply(cs)  # v2
    cs = registry.changeset()
    cs.update("app.db:main", {"port": 6543})
    cs.update("app.prompts:assistant", {"text": "You are terse."})
    await registry.apply(cs)  # v3
    rec = Recorder()
    registry.subscribe(rec)
    v = await registry.rollback(1, author="cli:root")
    assert v == 4 and registry.get("app.db:main") is None
    assert registry.get("app.prompts:assistant").data["text"] == "You are helpful."
    assert rec.events == [(4, ["app.db:main", "app.prompts:assistant"])]
    [record] = await registry.history(limit=1)
    assert (record.author, record.reason) == ("cli:root", "rollback to version 1")
    assert await registry.rollback(3) == 5 and registry.get("app.db:main").data["port"] == 6543


@pytest.mark.parametrize("version", [0, 7, -1])
async def test_rollback_to_a_version_that_does_not_exist_is_refused(registry, store, version):
    async def build():
        await registry.rollback(version)

    await _refused(registry, store, build, error=VersionNotFound, match=rf"registry version {version} does not exist; versions are 1..1")


async def test_validators_and_write_guards_can_refuse(registry, store):
    calls = []

    def no_todo(entries, snapshot):
        calls.append([str(e.id) for e in entries])
        return [Problem.about(e, "contains TODO") for e in entries if "TODO" in str(e.data)]

    async def guard(actor, changes):
        if actor == "agent:intruder":
            raise PermissionDenied(f"{actor!r} may not write {[str(c.id) for c in changes]}")

    registry.add_validator(no_todo)
    registry.add_write_guard(guard)

    async def build_invalid():
        cs = registry.changeset()
        cs.create({**DB, "note": "TODO"})
        await registry.apply(cs)

    await _refused(registry, store, build_invalid, match="app.db:main: contains TODO")

    async def build_denied():
        cs = registry.changeset(author="agent:intruder")
        cs.create(DB)
        await registry.apply(cs)

    await _refused(registry, store, build_denied, error=PermissionDenied, match="agent:intruder")
    cs = registry.changeset(author="cli")
    cs.create(DB)
    assert await registry.apply(cs) == 2 and calls[-1] == ["app.db:main"]


async def test_async_subscriber_gets_events_in_order(registry):
    got = []

    async def slow(version, changed):
        got.append(version)

    registry.subscribe(slow)
    for port in (1, 2, 3):
        cs = registry.changeset()
        (cs.create if port == 1 else cs.update)(*(([{**DB, "port": port}]) if port == 1 else ("app.db:main", {"port": port})))
        await registry.apply(cs)
    from .conftest import eventually

    await eventually(lambda: got == [2, 3, 4])


async def test_runtime_entries_come_back_after_restart(store_url, settings):
    store = await open_store(store_url)
    reg = Registry(store)
    await reg.load(settings)
    cs = reg.changeset(author="agent:x", reason="learned things")
    cs.create({"id": "app.generated:slug", "kind": "function.lua", "source": "return {handler=function(a) return a end}"})
    cs.update("app.prompts:assistant", {"text": "You are very helpful."})  # a file entry, changed at run time
    cs.delete("app.tools:weather")  # a file entry, deleted at run time
    cs.update("app.agents:assistant", {"tools": []})
    await reg.apply(cs)
    version = reg.version
    await reg.close()
    await store.close()

    store = await open_store(store_url)
    try:
        reg = Registry(store)
        assert await reg.load(settings) == version  # files + run-time overlay == the stored head
        assert reg.get("app.generated:slug").origin == "runtime"
        assert reg.get("app.prompts:assistant").data["text"] == "You are very helpful."
        assert reg.get("app.tools:weather") is None
        await reg.close()
    finally:
        await store.close()


async def test_files_edited_while_down_become_one_version_at_load(store, app):
    reg = Registry(store)
    await reg.load(AppSettings.load(app))
    (app / "tools" / "weather.lua").write_text("return { handler = function() return 1 end }\n")
    again = Registry(store)
    assert await again.load(AppSettings.load(app)) == 2
    [record] = await again.history(limit=1)
    assert [(c["op"], c["id"]) for c in record.changes] == [("update", "app.tools:weather")]


async def test_a_file_saved_after_a_runtime_change_wins_at_the_next_load(store, app):
    import os
    import time

    reg = Registry(store)
    await reg.load(AppSettings.load(app))
    cs = reg.changeset(author="agent:x")
    cs.update("app.tools:weather", {"method": "other"})
    cs.update("app.prompts:assistant", {"text": "agent text"})
    await reg.apply(cs)
    later = time.time() + 60
    os.utime(app / "tools" / "weather.lua", (later, later))  # weather's source saved after the agent's change
    again = Registry(store)
    await again.load(AppSettings.load(app))
    assert again.get("app.tools:weather").data["method"] == "handler"
    assert again.get("app.tools:weather").origin == "file"
    assert again.get("app.prompts:assistant").data["text"] == "agent text"  # its file was not saved since
    assert [r["id"] for r in await store.runtime_entries()] == ["app.prompts:assistant"]


async def test_a_load_with_a_bad_file_changes_nothing(registry, store, app):
    from wippy_agents.errors import LoadError

    (app / "tools" / "weather.yaml").write_text("namespace: app.tools\nentries:\n  - name: weather\n    kind: [\n")
    await _refused(registry, store, lambda: registry.load(AppSettings.load(app)), error=LoadError, match=r"weather.yaml:\d+: malformed YAML")
    assert registry.get("app.tools:weather") is not None


async def test_a_guard_waiting_for_approval_does_not_block_other_writes(registry, store):
    import asyncio

    asked, answer = asyncio.Event(), asyncio.Event()

    async def approval(actor, changes):
        if actor == "agent:slow":
            asked.set()
            await answer.wait()

    registry.add_write_guard(approval)
    slow = registry.changeset(author="agent:slow")
    slow.create(DB)
    pending = asyncio.ensure_future(registry.apply(slow))
    await asyncio.wait_for(asked.wait(), 5)
    fast = registry.changeset(author="cli")
    fast.create({**DB, "id": "app.db:other"})
    assert await asyncio.wait_for(registry.apply(fast), 5) == 2
    answer.set()
    with pytest.raises(StaleVersion, match="version 2 was applied while it was being checked"):
        await asyncio.wait_for(pending, 5)
    assert registry.get("app.db:main") is None and await store.registry_head() == 2


async def test_runtime_changesets_never_read_env_or_files(registry, monkeypatch):
    """Only files a person wrote may pull in secrets or other files; an agent's entry stays literal."""
    monkeypatch.setenv("WIPPY_TEST_SECRET", "s3cret")
    cs = registry.changeset(author="agent:x")
    cs.create({"id": "app.gen:leak", "kind": "registry.entry", "key": "${env:WIPPY_TEST_SECRET}", "body": "file:///etc/hostname"})
    await registry.apply(cs)
    entry = registry.get("app.gen:leak")
    assert entry.data == {"key": "${env:WIPPY_TEST_SECRET}", "body": "file:///etc/hostname"}
