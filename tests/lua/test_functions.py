"""function.lua calls through LuaHost: results, errors, methods, imports."""

from __future__ import annotations

import asyncio

import pytest

from wippy_agents.errors import LuaCompileError, LuaError, PermissionDenied, UsageError
from wippy_agents.lua import LuaHost, Services

from .conftest import fn_entry


async def test_first_return_value_is_the_result(run):
    assert await run("return {sum = a.x + a.y}, 'ignored'", {"x": 2, "y": 3}) == {"sum": 5}


async def test_nil_err_raises_lua_error_with_the_message(run):
    with pytest.raises(LuaError, match=r"app.test:fn: city not found") as info:
        await run("return nil, 'city not found'")
    assert info.value.details["error"] == "city not found"


async def test_raised_error_carries_the_line(run):
    with pytest.raises(LuaError, match=r"app.test:fn:3: boom"):
        await run("local x = 1\nerror('boom')")


async def test_error_names_the_source_path_when_there_is_one(host):
    entry = fn_entry("error('x')")
    entry["data"]["source_path"] = "tools/weather.lua"
    with pytest.raises(LuaError, match=r"^app.test:fn: tools/weather.lua:2: x"):
        await host.call_function(entry)


async def test_nil_result_without_error_is_none(run):
    assert await run("return nil") is None


async def test_method_defined_as_global(host):
    entry = fn_entry("function main(a) return a * 2 end", body=False, method="main")
    assert await host.call_function(entry, 21) == 42


async def test_chunk_returning_a_function_without_method(host):
    entry = fn_entry("return function(a) return a .. '!' end", body=False, method=None)
    entry["data"]["method"] = None
    assert await host.call_function(entry, "hi") == "hi!"


async def test_missing_method_is_a_clear_error(host):
    with pytest.raises(LuaError, match=r'method "run" not found'):
        await host.call_function(fn_entry("return {}", body=False, method="run"))


async def test_compile_error_at_call_names_entry_and_line(host):
    with pytest.raises(LuaCompileError, match=r"app.test:fn:2:"):
        await host.call_function(fn_entry("return {\nhandler = = 1}", body=False))


async def test_entry_by_id_through_services(host, memreg):
    memreg.entries["app.x:f"] = fn_entry("return 'by id'", id="app.x:f")
    assert await host.call_function("app.x:f") == "by id"


async def test_unknown_module_name_is_refused_at_load(host):
    with pytest.raises(UsageError, match=r"unknown module\(s\) \['sockets'\]"):
        await host.call_function(fn_entry("return 1", modules=["sockets"]))


async def test_bad_limits_name_the_entry(host):
    with pytest.raises(UsageError, match=r"entry 'app.test:fn': limits.timeout"):
        await host.call_function(fn_entry("return 1", limits={"timeout": "soon"}))


async def test_policy_can_refuse_a_module(memreg):
    async def authorize(actor, action, resource):
        if resource == "registry":
            raise PermissionDenied(f"{actor!r} may not use lua.module {resource!r}")

    host = LuaHost(services=memreg.services(authorize=authorize))
    assert await host.call_function(fn_entry("return json.encode({1})", modules=["json"]), actor="agent:a") == "[1]"
    with pytest.raises(PermissionDenied, match="registry"):
        await host.call_function(fn_entry("return 1", modules=["registry"]), actor="agent:a")


async def test_each_call_has_a_fresh_state(run, host):
    entry = fn_entry("counter = (counter or 0) + 1; string.mine = true; return counter")
    assert await host.call_function(entry) == 1
    assert await host.call_function(entry) == 1
    assert await run("return string.mine == nil") is True


async def test_imports_bring_libraries_into_the_same_state(host, memreg):
    memreg.entries["app.lib:strings"] = {
        "id": "app.lib:strings", "kind": "library.lua", "meta": {},
        "data": {"source": "local M = {}\nfunction M.shout(s) return s:upper() .. '!' end\nreturn M"},
    }
    entry = fn_entry("local s = require('strings'); return s.shout(a)", imports={"strings": "app.lib:strings"})
    assert await host.call_function(entry, "hi") == "HI!"


async def test_library_uses_its_own_modules_and_bare_names_resolve_in_its_namespace(host, memreg):
    memreg.entries["app.lib:enc"] = {
        "id": "app.lib:enc", "kind": "library.lua", "meta": {},
        "data": {"source": "return {enc = function(v) return json.encode(v) end}", "modules": ["json"]},
    }
    entry = fn_entry("return require('enc').enc({a})", id="app.lib:user", imports={"enc": "enc"})
    assert await host.call_function(entry, 5) == "[5]"


async def test_library_loads_once_per_state(host, memreg):
    memreg.entries["app.lib:once"] = {
        "id": "app.lib:once", "kind": "library.lua", "meta": {}, "data": {"source": "return {t = {}}"},
    }
    entry = fn_entry("return require('o').t == require('o').t", imports={"o": "app.lib:once"})
    assert await host.call_function(entry) is True


async def test_import_cycle_is_refused(host, memreg):
    for name, other in (("a", "b"), ("b", "a")):
        memreg.entries[f"app.lib:{name}"] = {
            "id": f"app.lib:{name}", "kind": "library.lua", "meta": {},
            "data": {"source": "return {}", "imports": {"x": f"app.lib:{other}"}},
        }
    with pytest.raises(UsageError, match="import cycle"):
        await host.call_function(fn_entry("return 1", imports={"a": "app.lib:a"}))


async def test_import_of_a_function_entry_is_refused(host, memreg):
    memreg.entries["app.lib:f"] = fn_entry("return 1", id="app.lib:f")
    with pytest.raises(UsageError, match="not a library.lua"):
        await host.call_function(fn_entry("return 1", imports={"f": "app.lib:f"}))


async def test_require_of_unknown_name_is_clear(run):
    with pytest.raises(LuaError, match=r'module "nope" not found'):
        await run("require('nope')")


async def test_a_thousand_calls_wait_concurrently_on_one_loop(host):
    entry = fn_entry("time.sleep(0.05); return a", modules=["time"])
    results = await asyncio.wait_for(
        asyncio.gather(*(host.call_function(entry, i) for i in range(1000))), timeout=60
    )
    assert results == list(range(1000))


async def test_cancelling_a_waiting_call_propagates(host):
    started = asyncio.Event()

    async def mark(ctx):
        started.set()
        return True

    from wippy_agents.lua.modules.base import LuaModule, LuaOp

    host.add_module(LuaModule(name="json", lua="return {mark = function() return host('test.mark') end}",
                              ops={"test.mark": LuaOp(fn=mark, effect="read", guard=None)}))
    task = asyncio.ensure_future(host.call_function(fn_entry("json.mark(); time.sleep(30)", modules=["json", "time"])))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_host_requests_pass_through_user_coroutines(run):
    code = """
    local co = coroutine.wrap(function(x)
      local y = coroutine.yield(x + 1)
      time.sleep(0)
      local t = time.duration("250ms")
      coroutine.yield(y * t)
      return "end"
    end)
    local r1 = co(1)
    local r2 = co(4)
    local r3 = co()
    return {r1, r2, r3}
    """
    assert await run(code, modules=["time"]) == [2, 1.0, "end"]


async def test_services_not_configured_answers_nil_err(run):
    host = LuaHost(services=Services())
    with pytest.raises(LuaError, match="the registry_version service is not configured"):
        await host.call_function(fn_entry("local v, err = registry.version(); error(err)", modules=["registry"]))
