"""SPEC §5: code always runs in a process.

A function called from a process runs with its caller's pid, inbox and
events; one called from Python gets a fresh process that lives for the call
(it exits with the call, so links and monitors on it end with the call).
"""

from __future__ import annotations

import pytest

from tests.lua.proc_helpers import close_rig, make_rig, wait_until

WORKER = """return {handler = function(c)
  local msg = process.inbox():receive()
  local task = msg:payload()
  if task.data == "crash" then error("task " .. task.id .. " failed") end
  process.send(msg:from(), "done", {id = task.id, by = process.pid()})
  process.inbox():receive()
  error("second task: crash")
end}"""

# the seed's example (SPEC §5) as written, in a function.lua
SEED_FN = """return {handler = function()
  local pid = process.spawn("app.workers:handler", "app:processes")
  process.send(pid, "task", {id = 1, data = "ok"})
  process.monitor(pid)
  local inbox, events = process.inbox(), process.events()
  local r = channel.select{inbox:case_receive(), events:case_receive(), time.after("5s"):case_receive()}
  local reply = r.value:payload()
  process.send(pid, "task", {id = 2, data = "crash"})
  local ev = events:receive()
  return {me = process.pid(), reply = reply.id, by_spawned = reply.by == pid, kind = ev.kind,
          from_spawned = ev.from == pid, error = ev.result.error}
end}"""


def fn(id: str, source: str, **data):
    return {"id": id, "kind": "function.lua", "meta": {}, "data": {"source": source, **data}}


@pytest.fixture
async def rig():
    r = await make_rig()
    yield r
    await close_rig(r)


async def test_the_seed_example_runs_as_written_in_a_function(rig):
    rig.entries.add({"id": "app.workers:handler", "kind": "process.lua", "meta": {},
                     "data": {"source": WORKER, "method": "handler"}})
    rig.entries.add(fn("app:seed", SEED_FN, modules=["time"]))
    out = await rig.procs.host.call_function("app:seed", None)
    assert out["reply"] == 1 and out["by_spawned"] is True
    assert out["kind"] == "EXIT" and out["from_spawned"] is True and "second task: crash" in out["error"]
    await wait_until(lambda: out["me"] in rig.exits)
    assert rig.exits[out["me"]] == "normal"


async def test_a_function_called_from_a_process_inherits_its_pid_inbox_and_events(rig):
    rig.entries.add(fn("app:whoami", "return {handler = function() "
                                     "local m = process.inbox():receive(); return {pid = process.pid(), got = m:topic()} end}"))
    rig.add("app:caller", """
      local c = ...
      process.send(process.pid(), "for-the-function", {})
      local r = funcs.call("app:whoami", {})
      process.send(c, "r", {mine = process.pid(), theirs = r.pid, got = r.got})
    """, modules=["funcs"])
    caller = await rig.spawn("app:caller", rig.collector)
    topic, r, _ = await rig.report()
    assert r == {"mine": caller, "theirs": caller, "got": "for-the-function"}


async def test_a_call_from_python_gets_its_own_process_and_links_end_with_the_call(rig):
    rig.add("app:child", "local c = ...; process.send(c, 'child up', process.pid()); process.inbox():receive()")
    rig.entries.add(fn("app:fails", "return {handler = function(a) "
                                    "local child = process.spawn_linked('app:child', 'app:processes', a.c); "
                                    "process.inbox():receive() end}", limits={"timeout": "5s"}))
    rig.entries.add(fn("app:caller_pid", "return {handler = function() return process.pid() end}"))
    first = await rig.procs.host.call_function("app:caller_pid", None)
    second = await rig.procs.host.call_function("app:caller_pid", None)
    assert first != second and first.startswith("<")  # a fresh process per call
    # a call that fails ends its process with the error: its linked child dies with it
    import asyncio

    call = asyncio.ensure_future(rig.procs.host.call_function("app:fails", {"c": rig.collector}))
    topic, child, _ = await rig.report()
    assert topic == "child up"
    call.cancel()  # the caller gives up: the call's process is killed, and the link takes the child
    with pytest.raises(asyncio.CancelledError):
        await call
    await wait_until(lambda: child in rig.exits)
    assert rig.exits[child] == "killed"
