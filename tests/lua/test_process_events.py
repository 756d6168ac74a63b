"""Lua processes: monitors, links, cancel/terminate, names, and the seed example (SPEC §4, §5)."""

from __future__ import annotations

import pytest

from tests.lua.proc_helpers import close_rig, make_rig, wait_until

WORKER = """
  local inbox = process.inbox()
  process.registry.register("worker-1")
  while true do
    local msg = inbox:receive()
    if msg:topic() == "task" then
      local task = msg:payload()
      if task.data == "crash" then error("task " .. task.id .. " failed") end
      process.send(msg:from(), "done", {id = task.id, by = process.pid()})
    end
  end
"""

# The seed example of SPEC §5, as a driver that reports what it observed.
SEED = """
  local c = ...
  local pid = process.spawn("app.workers:handler", "app:processes")
  process.send(pid, "task", {id = 1, data = "crash"})
  process.monitor(pid)
  local inbox, events = process.inbox(), process.events()
  local r = channel.select{inbox:case_receive(), events:case_receive(), time.after("5s"):case_receive()}
  local ev = r.value
  local report = {spawned = pid, kind = ev.kind, is_exit = ev.kind == process.event.EXIT, from = ev.from,
                  error = ev.result.error, via_events = r.channel == events}
  -- its host restarts it: the new incarnation registers the same name
  local new
  for i = 1, 500 do
    new = process.registry.lookup("worker-1")
    if new and new ~= pid then break end
    time.sleep("10ms")
  end
  report.restarted = new
  process.send(new, "task", {id = 2, data = "ok"})
  local done = inbox:receive()
  report.done = done:payload()
  process.send(c, "seed", report)
"""


@pytest.fixture
async def rig():
    r = await make_rig()
    yield r
    await close_rig(r)


@pytest.fixture
async def restarting_rig():
    r = await make_rig(restart="transient")  # the seed's host opts in to restarts (SPEC §4)
    yield r
    await close_rig(r)


async def test_seed_example_crash_observed_as_exit_event_and_restarted_by_host(restarting_rig):
    rig = restarting_rig
    rig.add("app.workers:handler", WORKER)
    rig.add("app:driver", SEED, modules=["time"])
    await rig.spawn("app:driver", rig.collector)
    topic, r, _ = await rig.report()
    assert topic == "seed"
    assert r["kind"] == "EXIT" and r["is_exit"] is True and r["via_events"] is True
    assert r["from"] == r["spawned"]
    assert "task 1 failed" in r["error"]
    assert r["restarted"] != r["spawned"] and r["restarted"].startswith("<")
    assert r["done"] == {"id": 2, "by": r["restarted"]}


async def test_monitored_normal_exit_gives_exit_event_with_the_return_value(rig):
    rig.add("app:short", "return {answer = 42}")
    rig.add("app:watch", """
      local c = ...
      local pid = process.spawn_monitored("app:short", "app:processes")
      local ev = process.events():receive()
      process.send(c, "ev", {kind = ev.kind, from_ok = ev.from == pid, result = ev.result})
    """)
    await rig.spawn("app:watch", rig.collector)
    p = (await rig.report())[1]
    assert p == {"kind": "EXIT", "from_ok": True, "result": {"value": {"answer": 42}}}


async def test_monitoring_a_dead_pid_gives_an_exit_event_at_once(rig):
    rig.add("app:short", "return 1")
    rig.add("app:late", """
      local c, dead = ...
      process.monitor(dead)
      local ev = process.events():receive()
      process.send(c, "ev", {kind = ev.kind, from = ev.from, result = ev.result})
    """)
    dead = await rig.spawn("app:short")
    await wait_until(lambda: not rig.node.is_alive(dead))
    await rig.spawn("app:late", rig.collector, dead)
    p = (await rig.report())[1]
    assert p["kind"] == "EXIT" and p["from"] == dead and p["result"] == {"value": 1}


async def test_unmonitor_drops_the_exit_event(rig):
    rig.add("app:wait", "process.inbox():receive()")
    rig.add("app:w", """
      local c, target = ...
      process.monitor(target)
      process.unmonitor(target)
      process.send(c, "ready", {})
      local r = channel.select{process.events():case_receive(), time.after("100ms"):case_receive()}
      process.send(c, "r", {timer = r.channel ~= process.events()})
    """, modules=["time"])
    target = await rig.spawn("app:wait")
    await rig.spawn("app:w", rig.collector, target)
    assert (await rig.report())[0] == "ready"
    await rig.procs.terminate(target)
    assert (await rig.report())[1] == {"timer": True}


async def test_linked_abnormal_exit_kills_the_caller(rig):
    rig.add("app:crash", "process.inbox():receive(); error('boom')")
    rig.add("app:linker", """
      local c = ...
      local pid = process.spawn_linked("app:crash", "app:processes")
      process.send(c, "child", pid)
      process.inbox():receive()
      process.send(c, "survived", {})
    """)
    linker = await rig.spawn("app:linker", rig.collector)
    _, child, _ = await rig.report()
    rig.node.send(child, "go")
    await wait_until(lambda: linker in rig.exits)
    assert "boom" in rig.exits[linker]  # killed with the linked process's reason
    assert "survived" not in rig.queued_topics()


async def test_trap_links_turns_a_linked_crash_into_a_link_down_event(rig):
    rig.add("app:crash", "process.inbox():receive(); error('boom')")
    rig.add("app:trapper", """
      local c = ...
      process.set_options{trap_links = true}
      local pid = process.spawn_linked("app:crash", "app:processes")
      process.send(pid, "go", {})
      local ev = process.events():receive()
      process.send(c, "ev", {kind = ev.kind, is_link_down = ev.kind == process.event.LINK_DOWN,
                             from_ok = ev.from == pid, error = ev.result.error})
    """)
    await rig.spawn("app:trapper", rig.collector)
    p = (await rig.report())[1]
    assert p["kind"] == "LINK_DOWN" and p["is_link_down"] and p["from_ok"]
    assert "boom" in p["error"]


async def test_a_linked_normal_exit_neither_kills_nor_signals(rig):
    rig.add("app:short", "return 1")
    rig.add("app:l", """
      local c = ...
      process.set_options{trap_links = true}
      process.spawn_linked("app:short", "app:processes")
      local r = channel.select{process.events():case_receive(), time.after("100ms"):case_receive()}
      process.send(c, "r", {event = r.channel == process.events()})
    """, modules=["time"])
    await rig.spawn("app:l", rig.collector)
    assert (await rig.report())[1] == {"event": False}


async def test_cancel_delivers_an_event_and_lets_the_target_clean_up(rig):
    rig.add("app:polite", """
      local c = ...
      local ev = process.events():receive()
      process.send(c, "cleanup", {kind = ev.kind, reason = ev.reason, is_cancel = ev.kind == process.event.CANCEL})
      return "cleaned"
    """)
    rig.add("app:canceller", "local target = ...; process.cancel(target, 'enough')")
    target = await rig.spawn("app:polite", rig.collector)
    await rig.spawn("app:canceller", target)
    p = (await rig.report())[1]
    assert p == {"kind": "CANCEL", "reason": "enough", "is_cancel": True}
    await wait_until(lambda: not rig.node.is_alive(target))
    assert rig.procs.result_of(target, "normal") == {"value": "cleaned"}


async def test_cancel_ignored_is_terminated_after_the_grace_period(rig):
    rig.add("app:stubborn", "process.inbox():receive()")
    target = await rig.spawn("app:stubborn")
    assert rig.procs.cancel(target, "now", grace=0.05) is True
    await wait_until(lambda: not rig.node.is_alive(target), timeout=5)
    assert rig.procs.result_of(target, "killed") == {"error": "killed"}


async def test_terminate_cannot_be_caught_even_when_trapping(rig):
    rig.add("app:trapper", """
      local c = ...
      process.set_options{trap_links = true}
      process.send(c, "ready", {})
      local ev = process.events():receive()
      process.send(c, "caught", {})
    """)
    rig.add("app:killer", "local t = ...; process.terminate(t)")
    target = await rig.spawn("app:trapper", rig.collector)
    await rig.report()
    await rig.spawn("app:killer", target)
    await wait_until(lambda: target in rig.exits)
    assert rig.exits[target] == "killed"
    assert "caught" not in rig.queued_topics()


async def test_name_is_freed_before_the_exit_event_arrives(rig):
    rig.add("app:named", "process.registry.register('svc-a'); process.inbox():receive(); error('bye')")
    rig.add("app:w", """
      local c, target = ...
      process.monitor(target)
      local before = process.registry.lookup("svc-a")
      process.send(target, "go", {})
      local ev = process.events():receive()
      local after, err = process.registry.lookup("svc-a")
      process.send(c, "r", {before = before, after = after or "nil"})
    """)
    target = await rig.spawn("app:named")
    # spawn returns once the process exists; its Lua (on a worker thread) registers the name a moment later
    await wait_until(lambda: rig.node.whereis("svc-a") == target)
    await rig.spawn("app:w", rig.collector, target)
    p = (await rig.report())[1]
    # the host restarts the crashed process and it may register again; it is never the dead pid
    assert p["before"] == target and p["after"] != target


async def test_a_raised_lua_error_is_an_abnormal_exit_with_the_message(rig):
    rig.add("app:crash", "error('exploded here')")
    pid = await rig.spawn("app:crash")
    await wait_until(lambda: rig.procs.result_of(pid, "normal") != {})
    assert "exploded here" in rig.procs.result_of(pid, "normal")["error"]


async def test_nil_err_return_is_an_abnormal_exit(rig):
    rig.add("app:nilerr", "return nil, 'could not'")
    pid = await rig.spawn("app:nilerr")
    await wait_until(lambda: rig.procs.result_of(pid, "normal") != {})
    assert rig.procs.result_of(pid, "normal") == {"error": "could not"}


async def test_monitoring_by_registered_name_gives_the_exit_event_with_the_pid(rig):
    rig.add("app:named", "process.registry.register('by-name'); process.inbox():receive(); return 'ok'")
    rig.add("app:w", """
      local c = ...
      process.monitor("by-name")
      process.send("by-name", "go", {})
      local ev = process.events():receive()
      local again = process.unmonitor("by-name")
      process.send(c, "r", {kind = ev.kind, from = ev.from, value = ev.result.value, again = again})
    """)
    named = await rig.spawn("app:named")
    # Lua runs on worker threads: the name exists once the process got that far
    await wait_until(lambda: rig.node.whereis("by-name") == named)
    await rig.spawn("app:w", rig.collector)
    p = (await rig.report())[1]
    assert p == {"kind": "EXIT", "from": named, "value": "ok", "again": False}


async def test_a_transient_host_restarts_a_crash_but_not_a_normal_return(restarting_rig):
    rig = restarting_rig
    from wippy_agents.runtime import Supervisor

    rig.add("app:short", "return 1")
    rig.add("app:crash", "local c = ...; process.send(c, 'up', {}); process.inbox():receive(); error('x')")
    sup = rig.procs.hosts["app:processes"]
    short = await rig.spawn("app:short")
    await wait_until(lambda: short in rig.exits)
    # the EXIT reached the host before this call, so its answer reflects the decision
    assert await Supervisor.which_children(rig.node, sup) == []
    crash = await rig.spawn("app:crash", rig.collector)
    assert (await rig.report())[0] == "up"
    rig.node.send(crash, "go")
    assert (await rig.report())[0] == "up"  # the restarted incarnation
    children = await Supervisor.which_children(rig.node, sup)
    assert len(children) == 1 and children[0]["pid"] not in (crash, None)


async def test_a_full_host_refuses_to_spawn(rig):
    rig.procs.start_host("app:small", {"max_processes": 1})
    rig.add("app:idle", "process.inbox():receive()")
    await rig.procs.spawn("app:idle", "app:small")
    rig.add("app:spawner", "local c = ...; local p, err = process.spawn('app:idle', 'app:small'); "
                           "process.send(c, 'r', {p = p == nil, err = err})")
    await rig.spawn("app:spawner", rig.collector)
    p = (await rig.report())[1]
    assert p["p"] is True and "full" in p["err"] and "max_processes=1" in p["err"]
