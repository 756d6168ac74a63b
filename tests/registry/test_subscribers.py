"""registry.changed delivered to processes of the runtime, and the package's exports."""

from __future__ import annotations

import asyncio

import wippy_agents.registry as registry_pkg
from wippy_agents.registry import CHANGED_TOPIC, Registry
from wippy_agents.runtime import Node


async def test_a_process_receives_registry_changed_after_the_change_is_live():
    reg = Registry()
    got: asyncio.Queue = asyncio.Queue()

    async def body(proc):
        while True:
            msg = await proc.receive(CHANGED_TOPIC)
            # the change is live when the message arrives
            await got.put((msg.payload, reg.get("app.db:main") is not None))

    async with Node("local") as node:
        pid = node.spawn(body)
        reg.subscribe_pid(node, pid)
        cs = reg.changeset(author="test")
        cs.create({"id": "app.db:main", "kind": "registry.entry", "host": "db"})
        await reg.apply(cs)
        payload, live = await asyncio.wait_for(got.get(), 5)
        assert payload == {"version": 1, "changed": ["app.db:main"]} and live
        node.exit(pid, "kill")
        cs = reg.changeset()
        cs.delete("app.db:main")
        await reg.apply(cs)  # a dead subscriber is dropped, not an error
        assert len(reg._subs) == 0
    await reg.close()


async def test_pattern_subscription_sees_only_matching_ids():
    reg = Registry()
    seen = []
    reg.subscribe(lambda v, ids: seen.append(ids), pattern="app.db:*")
    cs = reg.changeset()
    cs.create({"id": "app.db:main", "kind": "registry.entry"})
    cs.create({"id": "app.other:x", "kind": "registry.entry"})
    await reg.apply(cs)
    cs = reg.changeset()
    cs.create({"id": "app.other:y", "kind": "registry.entry"})
    await reg.apply(cs)
    assert seen == [["app.db:main"]]


def test_exports_are_what_we_mean():
    assert set(registry_pkg.__all__) == {
        "AppSettings", "CHANGED_TOPIC", "Change", "Changeset", "Entry", "EntryId", "FileWatcher", "LoadResult",
        "Problem", "Registry", "Snapshot", "Subscriber", "Validator", "WriteGuard", "kinds", "load_file",
        "load_sources", "lint", "code_validator",
    }
    for name in registry_pkg.__all__:
        assert getattr(registry_pkg, name) is not None
