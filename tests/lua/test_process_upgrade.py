"""Upgrade of opted-in Lua processes on an entry change (SPEC §4): OUTDATED, same pid and mailbox."""

from __future__ import annotations

import asyncio

import pytest

from wippy_agents.lua import UNGUARDED, LuaHost, registry_services
from wippy_agents.lua.processes import LuaProcesses
from wippy_agents.registry import Registry
from wippy_agents.runtime import Node

V1 = """
return {handler = function(c, state)
  process.set_options{upgradable = %s}
  process.send(c, "v1", {pid = process.pid()})
  local inbox, events = process.inbox(), process.events()
  local n = 0
  while true do
    local r = channel.select{inbox:case_receive(), events:case_receive()}
    if r.channel == events and r.value.kind == process.event.OUTDATED then
      local ok, err = process.upgrade(c, {n = n})
      process.send(c, "upgrade_failed", {err = err})
    elseif r.channel == inbox then
      n = n + 1
      process.send(c, "v1_got", {topic = r.value:topic(), n = n})
    end
  end
end}
"""

V2 = """
return {handler = function(c, state)
  process.send(c, "v2", {pid = process.pid(), n = state.n})
  local msg = process.inbox():receive()
  process.send(c, "v2_got", {topic = msg:topic()})
end}
"""


class Env:
    def __init__(self, node, reg, procs):
        self.node, self.reg, self.procs = node, reg, procs
        self.q: asyncio.Queue = asyncio.Queue()
        self.collector = node.spawn(self._collect)

    async def _collect(self, proc):
        while True:
            m = await proc.receive()
            self.q.put_nowait((m.topic, m.payload))

    async def next(self):
        return await asyncio.wait_for(self.q.get(), 10)

    async def put(self, source: str, *, create: bool = False):
        cs = self.reg.changeset(author="test")
        fields = {"kind": "process.lua", "source": source, "method": "handler"}
        if create:
            cs.create({"id": "app:up", **fields})
        else:
            cs.update("app:up", fields)
        return await self.reg.apply(cs)


@pytest.fixture
async def env():
    node = Node("u")
    reg = Registry()
    host = LuaHost(node=node, registry=reg, services=registry_services(reg, guard=UNGUARDED))
    procs = LuaProcesses(node, host, registry=reg)
    cs = reg.changeset(author="test")
    cs.create({"id": "app:processes", "kind": "process.host"})
    await reg.apply(cs)
    await procs.open()
    e = Env(node, reg, procs)
    yield e
    await procs.close()
    await node.stop()
    await reg.close()


async def test_an_upgradable_process_continues_on_the_new_code_with_its_pid_and_mailbox(env):
    await env.put(V1 % "true", create=True)
    pid = await env.procs.spawn("app:up", "app:processes", env.collector)
    assert await env.next() == ("v1", {"pid": pid})
    env.node.send(pid, "before", 1)
    assert await env.next() == ("v1_got", {"topic": "before", "n": 1})
    await env.put(V2)
    env.node.send(pid, "after", 2)  # queued behind OUTDATED: the new code must get it from the same mailbox
    assert await env.next() == ("v2", {"pid": pid, "n": 1})
    assert await env.next() == ("v2_got", {"topic": "after"})


async def test_a_process_that_did_not_opt_in_keeps_running_the_old_code(env):
    await env.put(V1 % "false", create=True)
    pid = await env.procs.spawn("app:up", "app:processes", env.collector)
    assert (await env.next())[0] == "v1"
    await env.put(V2)
    env.node.send(pid, "ping", 1)
    assert await env.next() == ("v1_got", {"topic": "ping", "n": 1})


async def test_a_failed_upgrade_is_nil_err_and_the_old_code_goes_on(env):
    await env.put(V1 % "true", create=True)
    pid = await env.procs.spawn("app:up", "app:processes", env.collector)
    await env.next()
    await env.put("this is not lua")  # no compile validator on this bare registry
    topic, payload = await env.next()
    assert topic == "upgrade_failed" and "app:up" in payload["err"]
    env.node.send(pid, "still", 1)
    assert await env.next() == ("v1_got", {"topic": "still", "n": 1})


async def test_saving_the_source_file_upgrades_a_running_process_under_the_watcher(tmp_path):
    import yaml

    from wippy_agents.app import App

    (tmp_path / "src").mkdir()
    (tmp_path / "wippy.yaml").write_text(yaml.safe_dump({"sources": ["src"],
                                                         "store": f"sqlite:///{tmp_path}/state.db"}))
    entries = tmp_path / "src" / "app.yaml"

    def write(source: str) -> None:
        entries.write_text(yaml.safe_dump({"namespace": "app", "entries": [
            {"name": "processes", "kind": "process.host"},
            {"name": "up", "kind": "process.lua", "source": source},
        ]}))

    write(V1 % "true")
    app = await App.open(str(tmp_path), watch=True)
    try:
        q: asyncio.Queue = asyncio.Queue()

        async def collect(proc):
            while True:
                m = await proc.receive()
                q.put_nowait((m.topic, m.payload))

        collector = app.node.spawn(collect)
        pid = await app.lua.spawn_process("app:up", host="app:processes", args=[collector])
        assert await asyncio.wait_for(q.get(), 10) == ("v1", {"pid": pid})
        write(V2)
        assert await asyncio.wait_for(q.get(), 20) == ("v2", {"pid": pid, "n": 0})
    finally:
        await app.close()


WATCHER = """
return {handler = function(c)
  local updates = registry.watch("app.db:*")
  process.send(c, "ready", {})
  local first = updates:receive()
  local r = channel.select{updates:case_receive(), time.after("50ms"):case_receive()}
  process.send(c, "got", {version = first.version, changed = first.changed, second = r.channel == updates})
end}
"""


async def test_registry_watch_is_a_channel_of_matching_changes(env):
    cs = env.reg.changeset(author="test")
    cs.create({"id": "app:watcher", "kind": "process.lua", "source": WATCHER, "modules": ["registry", "time"]})
    await env.reg.apply(cs)
    await env.procs.spawn("app:watcher", "app:processes", env.collector)
    assert (await env.next())[0] == "ready"
    cs = env.reg.changeset(author="test")
    cs.create({"id": "app.other:x", "kind": "registry.entry", "v": 1})  # not watched
    await env.reg.apply(cs)
    cs = env.reg.changeset(author="test")
    cs.create({"id": "app.db:main", "kind": "registry.entry", "host": "db"})
    version = await env.reg.apply(cs)
    assert await env.next() == ("got", {"version": version, "changed": ["app.db:main"], "second": False})


async def test_registry_watch_in_a_function_call_works_in_its_call_process(env):
    cs = env.reg.changeset(author="test")
    cs.create({"id": "app:fn", "kind": "function.lua", "modules": ["registry"],
               "source": "return {handler = function() local ch, err = registry.watch('x:*'); "
                         "return {ch = ch == nil, err = err} end}"})
    await env.reg.apply(cs)
    out = await env.procs.host.call_function(env.reg.get("app:fn"), None)
    assert out["ch"] is False and out.get("err") is None
