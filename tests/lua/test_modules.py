"""The non-process Lua modules: json, time, log, uuid, funcs, registry."""

from __future__ import annotations

import logging
import re

import pytest

from wippy_agents.errors import LuaError, PermissionDenied
from wippy_agents.lua import UNGUARDED, LuaHost, registry_services

from .conftest import fn_entry


async def test_json_round_trip(run):
    code = "local s = json.encode(a); local v = json.decode(s); return {s = s, v = v}"
    out = await run(code, {"b": [1, 2.5, "x", True], "u": "Łódź ✓"}, modules=["json"])
    assert out["v"] == {"b": [1, 2.5, "x", True], "u": "Łódź ✓"}
    assert '"u":"Łódź ✓"' in out["s"]


async def test_json_decode_error_is_nil_err(run):
    out = await run("local v, err = json.decode('{nope'); return {v = v, err = err}", modules=["json"])
    assert "v" not in out and out["err"].startswith("json.decode:")


async def test_json_encode_refuses_functions_and_nan(run):
    out = await run("local _, e1 = json.encode({f = print}); local _, e2 = json.encode(0/0); return {e1, e2}",
                    modules=["json"])
    assert "function cannot leave Lua" in out[0]
    assert "json.encode" in out[1]


async def test_time_now_duration_and_sleep(run):
    out = await run("local t0 = time.now(); local ok = time.sleep('20ms'); "
                    "return {ok = ok, d = time.duration('1.5s'), m = time.duration('100ms'), dt = time.now() - t0}",
                    modules=["time"])
    assert out["ok"] is True and out["d"] == 1.5 and out["m"] == pytest.approx(0.1)
    assert out["dt"] >= 0.02


async def test_time_bad_duration_is_nil_err(run):
    out = await run("local ok, err = time.sleep('soon'); return err", modules=["time"])
    assert "expected a duration like '5s'" in out


async def test_time_after_in_a_function_is_nil_err(run):
    out = await run("local ch, err = time.after('1s'); return err", modules=["time"])
    assert "time.after needs a Lua process" in out


async def test_log_goes_to_python_logging_with_entry_and_fields(run, caplog):
    caplog.set_level(logging.DEBUG, logger="wippy_agents.lua.log")
    await run("log.info('hello', {n = 1}); log.warn('careful'); print('p', 2)", modules=["log"])
    recs = [(r.levelname, r.getMessage(), getattr(r, "entry", None), getattr(r, "fields", None))
            for r in caplog.records if r.name == "wippy_agents.lua.log"]
    assert recs == [("INFO", "hello", "app.test:fn", {"n": 1}), ("WARNING", "careful", "app.test:fn", None),
                    ("INFO", "p\t2", "app.test:fn", None)]


async def test_log_works_inside_a_c_callback(run, caplog):
    caplog.set_level(logging.INFO, logger="wippy_agents.lua.log")
    await run("table.sort({2, 1}, function(x, y) log.info('cmp') return x < y end)", modules=["log"])
    assert any(r.getMessage() == "cmp" for r in caplog.records)


async def test_uuid_v4(run):
    out = await run("return {uuid.v4(), uuid.v4()}", modules=["uuid"])
    assert out[0] != out[1]
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", u) for u in out)


async def test_funcs_call_lua_to_lua(host, memreg):
    memreg.entries["app.test:double"] = fn_entry("return a.n * 2", id="app.test:double")
    assert await host.call_function(fn_entry("return funcs.call('double', {n = a})", modules=["funcs"]), 21) == 42


async def test_funcs_call_error_comes_back_as_nil_err(host, memreg):
    memreg.entries["app.test:bad"] = fn_entry("return nil, 'no such city'", id="app.test:bad")
    out = await host.call_function(
        fn_entry("local v, err = funcs.call('app.test:bad', {}); return err", modules=["funcs"]))
    assert out == "app.test:bad: no such city"


async def test_funcs_call_of_a_missing_entry(run):
    out = await run("local v, err = funcs.call('app.x:none'); return err", modules=["funcs"])
    assert out == "entry 'app.x:none' not found"


async def test_funcs_call_reaches_python_functions_through_the_service(memreg):
    seen = []

    async def call_function(entry_id, args, *, actor=None):
        seen.append((entry_id, args, actor))
        return {"temp": 21}

    memreg.entries["app.py:weather"] = {"id": "app.py:weather", "kind": "function.python", "meta": {}, "data": {}}
    host = LuaHost(services=memreg.services(call_function=call_function))
    out = await host.call_function(fn_entry("return funcs.call('app.py:weather', {city = 'Lisbon'})",
                                            modules=["funcs"]), actor="agent:x")
    assert out == {"temp": 21}
    assert seen == [("app.py:weather", {"city": "Lisbon"}, "agent:x")]


async def test_funcs_call_recursion_is_bounded(host, memreg):
    memreg.entries["app.test:loop"] = fn_entry(
        "local v, err = funcs.call('app.test:loop', {}); if err then error(err, 0) end", id="app.test:loop",
        modules=["funcs"])
    with pytest.raises(LuaError, match="call depth over 16"):
        await host.call_function("app.test:loop")


async def test_registry_get_find_version(run, memreg):
    memreg.entries["app.db:pg"] = {"id": "app.db:pg", "kind": "registry.entry", "meta": {"type": "db"},
                                   "data": {"host": "db", "port": 5432}}
    out = await run("local e = registry.get('app.db:pg'); local f = registry.find{kind = 'registry.entry'};"
                    "local _, err = registry.get('app.db:none');"
                    "return {host = e.data.host, port = e.data.port, n = #f, v = registry.version(), err = err}",
                    modules=["registry"])
    assert out == {"host": "db", "port": 5432, "n": 1, "v": 1, "err": "entry 'app.db:none' not found"}


async def test_registry_snapshot_changes_apply(host, memreg):
    code = """
    local changes = registry.snapshot():changes()
    changes:create{id = "app.gen:slug", kind = "function.lua", meta = {type = "tool"}, source = "return {}"}
    changes:delete("app.gen:old")
    return changes:apply()
    """
    memreg.entries["app.gen:old"] = {"id": "app.gen:old", "kind": "registry.entry", "meta": {}, "data": {}}
    version = await host.call_function(fn_entry(code, modules=["registry"]), actor="agent:toolsmith")
    assert version == 2
    (changes, actor, base), = memreg.applied
    assert actor == "agent:toolsmith" and base == 1
    assert [c["op"] for c in changes] == ["create", "delete"]
    assert "app.gen:slug" in memreg.entries and "app.gen:old" not in memreg.entries


async def test_registry_write_refused_by_the_service_is_nil_err(memreg):
    async def registry_apply(changes, *, actor=None, base_version=None, reason=""):
        raise PermissionDenied(f"{actor!r} may not write {changes[0]['entry']['id']!r}")

    services = memreg.services()
    import dataclasses

    host = LuaHost(services=dataclasses.replace(services, registry_apply=registry_apply))
    code = ("local c = registry.snapshot():changes(); c:create{id = 'app.x:y', kind = 'registry.entry'};"
            "local v, err = c:apply(); return err")
    assert await host.call_function(fn_entry(code, modules=["registry"]), actor="agent:a") == \
        "'agent:a' may not write 'app.x:y'"


async def test_registry_module_against_the_real_registry():
    from wippy_agents.registry import Registry

    async with Registry() as reg:
        host = LuaHost(services=registry_services(reg, guard=UNGUARDED))
        code = """
        local c = registry.snapshot():changes()
        c:create{id = "app.gen:hello", kind = "function.lua", meta = {description = "hi"},
                 source = "return {handler = function() return 'hi' end}", method = "handler"}
        local v, err = c:apply()
        if not v then error(err) end
        return {v = v, got = registry.get("app.gen:hello").kind}
        """
        out = await host.call_function(fn_entry(code, modules=["registry"]), actor="agent:t")
        assert out["got"] == "function.lua" and out["v"] == reg.version
        assert await host.call_function(reg.get("app.gen:hello")) == "hi"
        out = await host.call_function(fn_entry(
            "local c = registry.snapshot():changes(); c:update('app.gen:nope', {x = 1}); local v, err = c:apply();"
            "return err", modules=["registry"]))
        assert "app.gen:nope" in out
