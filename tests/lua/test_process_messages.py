"""Lua processes: pids, messages, channels and select (SPEC §5)."""

from __future__ import annotations

import pytest

from tests.lua.proc_helpers import close_rig, make_rig, wait_until


@pytest.fixture
async def rig():
    r = await make_rig()
    yield r
    await close_rig(r)


async def test_spawn_returns_a_string_pid_that_the_process_sees_as_its_own(rig):
    rig.add("app:me", "local c = ...; process.send(c, 'me', {pid = process.pid(), t = type(process.pid())})")
    pid = await rig.spawn("app:me", rig.collector)
    topic, payload, sender = await rig.report()
    assert isinstance(pid, str)
    assert payload == {"pid": pid, "t": "string"}
    assert sender == pid


async def test_a_message_has_topic_from_and_payload_as_plain_data(rig):
    rig.add("app:echo", """
      local c = ...
      local msg = process.inbox():receive()
      process.send(c, "got", {topic = msg:topic(), from = msg:from(), payload = msg:payload(),
                              kind = type(msg:payload())})
    """)
    pid = await rig.spawn("app:echo", rig.collector)
    rig.node.process(rig.collector).send(pid, "task", {"id": 1, "data": [1, 2]})
    _, payload, _ = await rig.report()
    assert payload == {"topic": "task", "from": rig.collector, "payload": {"id": 1, "data": [1, 2]}, "kind": "table"}


async def test_select_returns_channel_value_ok_and_the_case_that_fired(rig):
    rig.add("app:sel", """
      local c = ...
      local inbox, events = process.inbox(), process.events()
      local r = channel.select{inbox:case_receive(), events:case_receive(), time.after("5s"):case_receive()}
      process.send(c, "r", {is_inbox = r.channel == inbox, ok = r.ok, topic = r.value:topic()})
      local t = time.after("10ms")
      local r2 = channel.select{inbox:case_receive(), t:case_receive()}
      process.send(c, "r2", {is_timer = r2.channel == t, ok = r2.ok, value_type = type(r2.value)})
      local r3 = channel.select{inbox:case_receive(), default = true}
      process.send(c, "r3", {default = r3.default, ok = r3.ok})
    """, modules=["time"])
    pid = await rig.spawn("app:sel", rig.collector)
    rig.node.send(pid, "ping", 1)
    assert (await rig.report())[1] == {"is_inbox": True, "ok": True, "topic": "ping"}
    assert (await rig.report())[1] == {"is_timer": True, "ok": True, "value_type": "number"}
    assert (await rig.report())[1] == {"default": True, "ok": False}


async def test_time_after_yields_once(rig):
    rig.add("app:once", """
      local c = ...
      local t = time.after("1ms")
      local first = t:receive()
      local r = channel.select{t:case_receive(), time.after("30ms"):case_receive()}
      process.send(c, "r", {first = type(first), second_from_t = r.channel == t})
    """, modules=["time"])
    await rig.spawn("app:once", rig.collector)
    assert (await rig.report())[1] == {"first": "number", "second_from_t": False}


async def test_unselected_messages_stay_queued_in_order(rig):
    rig.add("app:sel", """
      local c = ...
      local ev = process.events():receive()   -- only events: messages wait in the mailbox
      local inbox = process.inbox()
      local a, b = inbox:receive(), inbox:receive()
      process.send(c, "r", {ev = ev.kind, a = a:payload(), b = b:payload()})
    """)
    pid = await rig.spawn("app:sel", rig.collector)
    rig.node.send(pid, "m", 1)
    rig.node.send(pid, "m", 2)
    rig.procs.cancel(pid, "go")
    assert (await rig.report())[1] == {"ev": "CANCEL", "a": 1, "b": 2}


async def test_local_buffered_channels_and_close(rig):
    rig.add("app:ch", """
      local c = ...
      local ch = channel.new(2)
      ch:send("a"); ch:send("b")
      local full = channel.select{ch:case_send("c"), default = true}
      local v1 = ch:receive()
      ch:close()
      local v2, ok2 = ch:receive()
      local v3, ok3 = ch:receive()
      local blocked, err = pcall(function() return channel.new(0):send(1) end)
      local r, serr = channel.select{channel.new(1):case_receive()}
      process.send(c, "r", {full = full.default, v1 = v1, v2 = v2, ok2 = ok2, ok3 = ok3, v3 = v3 or "nil",
                            blocked = blocked, err = err, r = r or "nil", serr = serr})
    """)
    await rig.spawn("app:ch", rig.collector)
    p = (await rig.report())[1]
    assert p["full"] is True and p["v1"] == "a" and p["v2"] == "b" and p["ok2"] is True
    assert p["ok3"] is False and p["v3"] == "nil"
    assert p["blocked"] is False and "would block forever" in p["err"]
    assert p["r"] == "nil" and "would block forever" in p["serr"]


async def test_time_after_in_a_function_called_from_python_works(rig):
    # SPEC §5: code always runs in a process; a call from Python gets one for the call
    from wippy_agents.lua import LuaHost

    host: LuaHost = rig.procs.host
    value = await host.call_function({"id": "app:f", "kind": "function.lua", "data": {
        "source": "return {handler = function() local t = time.after('10ms'); return {fired = t:receive() ~= nil, "
                  "pid = process.pid()} end}",
        "modules": ["time"]}})
    assert value["fired"] is True and value["pid"].startswith("<")


async def test_send_with_a_reserved_topic_is_refused(rig):
    rig.add("app:r", "local c = ...; local ok, err = process.send(c, '__cancel', {}); process.send(c, 'r', {ok = ok == nil, err = err})")
    await rig.spawn("app:r", rig.collector)
    p = (await rig.report())[1]
    assert p["ok"] is True and "reserved" in p["err"]


async def test_spawn_errors_come_back_as_nil_err(rig):
    rig.add("app:bad", "this is not lua")
    rig.entries.add({"id": "app:fn", "kind": "function.lua", "meta": {}, "data": {"source": "return {}"}})
    rig.add("app:spawner", """
      local c = ...
      local out = {}
      for _, id in ipairs({"app:missing", "app:fn", "app:bad"}) do
        local pid, err = process.spawn(id, "app:processes")
        out[#out + 1] = {pid = pid or "nil", err = err}
      end
      local pid, err = process.spawn("app:bad", "app:nohost")
      out[#out + 1] = {pid = pid or "nil", err = err}
      process.send(c, "r", out)
    """)
    await rig.spawn("app:spawner", rig.collector)
    out = (await rig.report())[1]
    assert all(o["pid"] == "nil" for o in out)
    assert "app:missing" in out[0]["err"] and "not found" in out[0]["err"]
    assert "function.lua" in out[1]["err"] and "not a process.lua" in out[1]["err"]
    assert "app:bad" in out[2]["err"]
    assert "app:nohost" in out[3]["err"]


async def test_python_spawn_of_broken_code_raises_start_error_naming_the_entry(rig):
    from wippy_agents.errors import StartError

    rig.add("app:bad", "local x = = 1")
    with pytest.raises(StartError, match="app:bad"):
        await rig.spawn("app:bad")


async def test_a_thousand_lua_processes_wait_concurrently_and_all_answer(rig):
    rig.add("app:echo", """
      local inbox = process.inbox()
      local msg = inbox:receive()
      process.send(msg:from(), "pong", msg:payload())
    """)
    pids = [await rig.spawn("app:echo") for _ in range(1000)]
    collector = rig.node.process(rig.collector)
    for i, pid in enumerate(pids):
        collector.send(pid, "ping", i)
    got = sorted([(await rig.report())[1] for _ in pids])
    assert got == list(range(1000))


async def test_a_function_can_spawn_a_process_and_python_uses_host_spawn_process(rig):
    rig.add("app:child", "local c = ...; process.send(c, 'child', {})")
    rig.entries.add({"id": "app:fn", "kind": "function.lua", "meta": {}, "data": {
        "source": "return {handler = function(a) return process.spawn('app:child', 'app:processes', a.c) end}"}})
    pid = await rig.procs.host.call_function("app:fn", {"c": rig.collector})
    assert (await rig.report())[2] == pid
    pid2 = await rig.procs.host.spawn_process("app:child", host="app:processes", args=[rig.collector])
    assert (await rig.report())[2] == pid2 != pid


async def test_process_functions_work_in_a_function_call_it_runs_in_a_process_for_the_call(rig):
    rig.entries.add({"id": "app:fn", "kind": "function.lua", "meta": {}, "data": {
        "source": "return {handler = function() local p = process.pid(); "
                  "process.send(p, 'self', 1); local m = process.inbox():receive(); "
                  "return {p = p, topic = m:topic(), from = m:from()} end}"}})
    out = await rig.procs.host.call_function("app:fn", None)
    assert out["topic"] == "self" and out["from"] == out["p"]
    await wait_until(lambda: out["p"] in rig.exits)
    assert rig.exits[out["p"]] == "normal"  # the call's process ended with the call


async def test_a_returned_process_gives_its_state_back_and_nothing_leaks_to_the_next(rig):
    rig.add("app:first", "leaked_global = 'secret'; string.leak = true; return 1")
    rig.add("app:second", "return {global = leaked_global == nil, strlib = string.leak == nil}")
    pool = rig.procs.host.pool
    first = await rig.spawn("app:first")
    await wait_until(lambda: first in rig.exits)
    reused = pool.reused
    second = await rig.spawn("app:second")
    await wait_until(lambda: second in rig.exits)
    assert pool.reused == reused + 1
    assert rig.procs.result_of(second, "normal") == {"value": {"global": True, "strlib": True}}
