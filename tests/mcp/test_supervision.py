"""The MCP server as a supervised process: first use, restart after a crash, list changes, the node's stop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

from wippy_agents.agents import ToolCallContext, dispatch_tool

from .conftest import calls_made, counter, mcp_app

LUA_CALLER = {"namespace": "app.lua", "entries": [
    {"name": "who", "kind": "function.lua", "modules": ["funcs"],
     "source": "return {handler = function() return funcs.call('app.mcp:counter/whoami', {}) end}"},
    {"name": "bumper", "kind": "function.lua", "modules": ["funcs"],
     "source": "return {handler = function(a) return funcs.call('app.mcp:counter/bump', {note = a.note}) end}"},
]}


async def until(probe, ok, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        value = await probe() if asyncio.iscoroutinefunction(probe) else probe()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"condition not met in {timeout}s (last value {value!r})"
        await asyncio.sleep(0.02)


async def whoami(app) -> int:
    entry = app.registry.get("app.mcp:counter/whoami")
    return json.loads(await dispatch_tool(app, entry, {}, ToolCallContext(app=app)))["pid"]


async def test_a_crashed_server_is_restarted_and_the_next_call_works(make_app, tmp_path):
    app = await make_app(mcp_app([{"text": "-"}], servers=[counter(tmp_path)], tools=["app.mcp:counter/*"]))
    first = await whoami(app)
    os.kill(first, signal.SIGKILL)
    clients = app.mcp
    await until(lambda: clients.status()["app.mcp:counter"], lambda s: s["up"] and s["starts"] == 2)
    second = await whoami(app)
    assert second != first
    assert clients.status()["app.mcp:counter"]["deaths"] == 1


async def test_a_server_that_keeps_dying_is_given_up_with_a_reason_the_model_reads(make_app, tmp_path):
    app = await make_app(mcp_app([{"text": "-"}], servers=[counter(tmp_path, max_restarts=1)],
                                 tools=["app.mcp:counter/*"]))
    clients = app.mcp
    os.kill(await whoami(app), signal.SIGKILL)
    await until(lambda: clients.status()["app.mcp:counter"], lambda s: s["up"] and s["starts"] == 2)
    os.kill(await whoami(app), signal.SIGKILL)  # a second death within the period: over max_restarts
    await until(lambda: clients.status()["app.mcp:counter"], lambda s: s["given_up"] is not None)
    entry = app.registry.get("app.mcp:counter/whoami")
    from wippy_agents.errors import ToolError
    import pytest

    with pytest.raises(ToolError, match="died 2 times within 60 s and was given up"):
        await dispatch_tool(app, entry, {}, ToolCallContext(app=app))


async def test_tools_list_changed_refreshes_the_tools_as_a_registry_change(make_app, tmp_path):
    app = await make_app(mcp_app([{"text": "-"}], servers=[counter(tmp_path)], tools=["app.mcp:counter/*"]))
    seen: list[list[str]] = []
    app.registry.subscribe(lambda version, changed: seen.append(changed))
    before = app.registry.version
    await dispatch_tool(app, app.registry.get("app.mcp:counter/grow"), {}, ToolCallContext(app=app))
    await until(lambda: app.registry.get("app.mcp:counter/late"), lambda e: e is not None)
    assert app.registry.version == before + 1
    assert ["app.mcp:counter/late"] in seen
    assert app.mcp.list_changed_seen["app.mcp:counter"] == 1
    late = await dispatch_tool(app, app.registry.get("app.mcp:counter/late"), {}, ToolCallContext(app=app))
    assert late == "I came late"


async def test_lua_calls_mcp_tools_through_funcs_call_under_the_same_policies(make_app, tmp_path):
    rules = [{"effect": "allow", "actions": ["lua.module"], "resources": ["*"]},
             {"effect": "allow", "actions": ["tool.call"], "resources": ["app.mcp:counter/whoami"]}]
    app = await make_app(mcp_app([{"text": "-"}], servers=[counter(tmp_path)], tools=["app.mcp:counter/*"],
                                 rules=rules, extra=[LUA_CALLER]))
    from wippy_agents.errors import WippyError
    from wippy_agents.security.actor import Actor
    import pytest

    agent = Actor.agent("app.agents:a", ["app.security:p"])
    got = await app.call("app.lua:who", {}, actor=agent)
    assert json.loads(got)["pid"] > 0
    with pytest.raises(WippyError, match="app.mcp:counter/bump"):
        await app.call("app.lua:bumper", {"note": "no"}, actor=agent)
    assert calls_made(tmp_path) == []
    assert '"count": 1' in await app.call("app.lua:bumper", {"note": "yes"})  # a person's own call
    assert calls_made(tmp_path) == ["yes"]


async def test_servers_start_on_first_use_and_stop_with_the_node(make_app, tmp_path):
    app = await make_app(mcp_app([{"text": "-"}], servers=[counter(tmp_path)], tools=["app.mcp:counter/*"]))
    pid = await whoami(app)
    await app.close()
    assert not _alive(pid)
    # Reopened: the tools are in the registry already, so nothing starts until a call.
    again = await make_app(mcp_app([{"text": "-"}], servers=[counter(tmp_path)], tools=["app.mcp:counter/*"]))
    assert again.registry.get("app.mcp:counter/bump") is not None
    assert again.mcp.status()["app.mcp:counter"]["starts"] == 0
    assert await whoami(again) != pid
    assert again.mcp.status()["app.mcp:counter"]["starts"] == 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


async def test_changing_the_server_entry_restarts_it_and_rewrites_its_tools(make_app, tmp_path):
    app = await make_app(mcp_app([{"text": "-"}], servers=[counter(tmp_path)], tools=["app.mcp:counter/*"]))
    before = await whoami(app)
    cs = app.registry.changeset(author="cli")
    cs.update("app.mcp:counter", {"prefix": "k_", "tools": ["whoami"]})
    await app.registry.apply(cs)
    await until(lambda: app.registry.get("app.mcp:counter/bump"), lambda e: e is None)
    assert app.registry.get("app.mcp:counter/whoami").meta["alias"] == "k_whoami"
    assert await whoami(app) != before  # the old process was stopped, a new one listed the tools
    cs = app.registry.changeset(author="cli")
    cs.delete("app.mcp:counter")
    await app.registry.apply(cs)
    await until(lambda: app.registry.find(kind="mcp.tool"), lambda found: found == [])
