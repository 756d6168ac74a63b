"""The sandbox escape corpus: every attempt is refused with a clear error, and
the host keeps working afterwards (SPEC §5, issue 4)."""

from __future__ import annotations

import os

import pytest

from wippy_agents.errors import InvalidPayload, LuaError, LuaLimitExceeded

from .conftest import fn_entry

SMALL = {"instructions": 2_000_000, "timeout": "5s"}
TINY_MEM = {"memory": "8MiB", "timeout": "5s"}
MARKER = "/tmp/wippy-lua-escape-marker"

# (id, code, extra entry fields, expected error type, regex the message must match)
CORPUS = [
    ("os.execute", f'os.execute("touch {MARKER}")', {}, LuaError, r"os\.execute is not available"),
    ("os.getenv", 'return os.getenv("HOME")', {}, LuaError, r"os\.getenv is not available"),
    ("os.remove", 'os.remove("/tmp/x")', {}, LuaError, r"os\.remove is not available"),
    ("os.exit", "os.exit(1)", {}, LuaError, r"os\.exit is not available"),
    ("io.open", 'return io.open("/etc/passwd"):read("a")', {}, LuaError, r"io is not available"),
    ("io.popen", 'return io.popen("id")', {}, LuaError, r"io is not available"),
    ("require os", 'local os2 = require("os"); os2.execute("id")', {}, LuaError, r'module "os" not found'),
    ("require io", 'require("io")', {}, LuaError, r'module "io" not found'),
    ("require debug", 'require("debug")', {}, LuaError, r'module "debug" not found'),
    ("package.loaded", "return package.loaded.os", {}, LuaError, r"package is not available"),
    ("dofile", 'dofile("/etc/passwd")', {}, LuaError, r"dofile is not available"),
    ("loadfile", 'loadfile("/etc/passwd")', {}, LuaError, r"loadfile is not available"),
    ("string.dump", "return string.dump(function() end)", {}, LuaError, r"string\.dump is not available"),
    ("string.dump via method", 'return ("x").dump(print)', {}, LuaError, r"string\.dump is not available"),
    ("load bytecode via dump", "return load(string.dump(function() return 1 end))", {}, LuaError,
     r"string\.dump is not available"),
    ("load mode b", 'local f, err = load("\\27LuaT\\0", "x", "b"); error(err)', {}, LuaError,
     r'mode b is not allowed'),
    ("load mode bt", 'local f, err = load("return 1", "x", "bt"); error(err)', {}, LuaError,
     r'mode bt is not allowed'),
    ("load binary chunk in text mode", 'local f, err = load("\\27LuaT\\0\\25\\147\\r\\n"); error(err)', {}, LuaError,
     r"attempt to load a binary chunk"),
    ("load with reader function", 'local f, err = load(function() return nil end); error(err)', {}, LuaError,
     r"only source text"),
    ("load default env is the sandbox", 'return load("return os.execute")()', {}, LuaError,
     r"os\.execute is not available"),
    ("load with nil env", 'return load("return io.open", "x", "t", nil)()', {}, LuaError,
     r"attempt to index a nil value"),
    ("getmetatable string __index", 'return getmetatable("").__index.dump', {}, LuaError,
     r"attempt to index a boolean value"),
    ("getmetatable string is hidden", 'error("mt=" .. tostring(getmetatable("")))', {}, LuaError, r"mt=false"),
    ("setmetatable on a string", 'setmetatable("", {__index = {}})', {}, LuaError, r"bad argument #1 to 'setmetatable'"),
    ("change protected _G metatable", "setmetatable(_G, nil)", {}, LuaError, r"cannot change a protected metatable"),
    ("debug.getinfo", "return debug.getinfo(1)", {}, LuaError, r"debug is not available"),
    ("debug.sethook removes the limit", "debug.sethook(); while true do end", {}, LuaError, r"debug is not available"),
    ("debug.getregistry", "return debug.getregistry()", {}, LuaError, r"debug is not available"),
    ("collectgarbage", 'return collectgarbage("count")', {}, LuaError, r"collectgarbage is not available"),
    ("python global", 'return python.eval("1")', {}, LuaError, r"python is not available"),
    ("python.as_itemgetter", "return python.as_itemgetter", {}, LuaError, r"python is not available"),
    ("rawget python", 'return rawget(_G, "python").builtins', {}, LuaError, r"attempt to index a nil value"),
    ("__globals__ through arguments", "return a.__class__.__globals__", {}, LuaError, r"attempt to index a nil value"),
    ("rawget _G _G io", 'local g = rawget(_G, "_G"); return g.io.open', {}, LuaError, r"io is not available"),
    ("_ENV replaced", "local _ENV = setmetatable({}, {__index = _G}); return io.open", {}, LuaError,
     r"io is not available"),
    ("_ENV rawset escape", 'rawset(_G, "io", nil); return io.open("/etc/passwd")', {}, LuaError,
     r"io is not available"),
    ("__gc finalizer", "setmetatable({}, {__gc = function() while true do end end})", {}, LuaError,
     r"__gc metamethods are not allowed"),
    ("pcall-wrapped infinite loop", "pcall(function() while true do end end); return 'escaped'", {"limits": SMALL},
     LuaLimitExceeded, r"instruction limit"),
    ("pcall in a loop", "while true do pcall(function() while true do end end) end", {"limits": SMALL},
     LuaLimitExceeded, r"instruction limit"),
    ("xpcall with a looping handler",
     "xpcall(function() while true do end end, function() while true do end end); return 'escaped'",
     {"limits": SMALL}, LuaLimitExceeded, r"instruction limit"),
    ("infinite loop in coroutine.create",
     "local co = coroutine.create(function() while true do end end); coroutine.resume(co); return 'escaped'",
     {"limits": SMALL}, LuaLimitExceeded, r"instruction limit"),
    ("infinite loop in coroutine.wrap",
     "local f = coroutine.wrap(function() while true do end end); pcall(f); return 'escaped'",
     {"limits": SMALL}, LuaLimitExceeded, r"instruction limit"),
    ("loop in nested coroutines under pcall",
     "pcall(coroutine.wrap(function() coroutine.wrap(function() while true do end end)() end)); return 'escaped'",
     {"limits": SMALL}, LuaLimitExceeded, r"instruction limit"),
    ("wall clock of a busy loop", "while true do end", {"limits": {"instructions": 10**12, "timeout": "0.3s"}},
     LuaLimitExceeded, r"wall-clock"),
    ("memory bomb string.rep", 'local s = string.rep("x", 2^30); return #s', {"limits": TINY_MEM},
     LuaLimitExceeded, r"memory limit"),
    ("memory bomb doubling", 'local s = "x"; while true do s = s .. s end', {"limits": TINY_MEM},
     LuaLimitExceeded, r"memory limit"),
    ("memory bomb table growth", "local t = {}; while true do t[#t + 1] = {1, 2, 3} end", {"limits": TINY_MEM},
     LuaLimitExceeded, r"memory limit"),
    ("memory error swallowed by pcall",
     'for i = 1, 100 do pcall(string.rep, "x", 2^28) end; return "survived"', {"limits": TINY_MEM},
     LuaLimitExceeded, r"memory limit"),
    ("deep recursion", "local function f(n) return 1 + f(n + 1) end; return f(1)", {}, LuaError,
     r"stack overflow"),
    ("deep coroutine nesting", "local function f() return coroutine.wrap(f)() end; return f()", {}, LuaError,
     r"stack overflow"),
    ("pathological string.find",
     'return string.find(string.rep("a", 40000), string.rep("a*", 40) .. "b")', {}, LuaError,
     r"string\.find: pattern .* too complex"),
    ("pathological string.match", 'return string.match(string.rep("a", 40000), string.rep("(a-)", 20) .. "b")',
     {}, LuaError, r"string\.match: pattern .* too complex"),
    ("quadratic match scanned under the wall clock", 'return string.match(string.rep("a", 40000), "(a*)*b")',
     {"limits": {"timeout": "0.5s"}}, LuaLimitExceeded, r"wall-clock limit exceeded"),
    ("pathological gsub", 'return string.gsub(string.rep("a", 5000), "a*a*a*b", "")', {}, LuaError,
     r"string\.gsub: pattern .* too complex"),
    ("pathological gmatch", 'for x in string.rep("a", 5000):gmatch("a-a-a-b") do end', {}, LuaError,
     r"string\.gmatch: pattern .* too complex"),
    ("string.rep of an empty string 2^62 times", 'local s = string.rep("", 2^62); error("len=" .. #s)', {}, LuaError,
     r"len=0"),
    ("table.move huge range", "return table.move({}, 1, 2^40, 1, {})", {}, LuaError,
     r"table\.move: range .* over the sandbox limit"),
    ("table.unpack huge", "return select('#', table.unpack({}, 1, 1e8))", {}, LuaError, r"too many results"),
    ("huge JSON decode", 'local v, err = json.decode(string.rep("1,", 5e6)); error(err)', {"modules": ["json"]},
     LuaError, r"over the 8388608-byte limit"),
    ("deep JSON decode", 'local v, err = json.decode(string.rep("[", 5000)); error(err)', {"modules": ["json"]},
     LuaError, r"json\.decode"),
    ("cyclic JSON encode", "local t = {}; t.t = t; local v, err = json.encode(t); error(err)", {"modules": ["json"]},
     LuaError, r"deeper than 100 levels"),
    ("module not listed (global)", "return json.encode({})", {}, LuaError,
     r'module "json" is not enabled for app\.test:fn: list it under modules:'),
    ("module not listed (require)", 'return require("registry").get("x")', {}, LuaError,
     r'module "registry" is not enabled'),
    ("yield to the host from a C callback",
     'table.sort({3, 2, 1}, function(x, y) time.sleep(0) return x < y end)', {"modules": ["time"]}, LuaError,
     r"time\.sleep cannot be called here"),
    ("bare yield to the driver", "coroutine.yield(1)", {}, LuaError, r"coroutine\.yield called outside a coroutine"),
    ("error object with a looping __tostring",
     "error(setmetatable({}, {__tostring = function() while true do end end}))", {"limits": SMALL}, LuaError,
     r"a table error value"),
    ("sleep past the wall clock", 'time.sleep("10s")', {"modules": ["time"], "limits": {"timeout": "0.2s"}},
     LuaLimitExceeded, r"wall-clock limit exceeded .* while waiting in time\.sleep"),
]


@pytest.mark.parametrize("code,extra,exc,pattern", [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
async def test_escape_attempt_is_blocked(host, code, extra, exc, pattern):
    entry = fn_entry(code, **extra)
    with pytest.raises(exc, match=pattern) as info:
        await host.call_function(entry, {"x": 1})
    assert "app.test:fn" in str(info.value)
    assert not os.path.exists(MARKER)
    # the host is unharmed: the next call in a fresh state works
    assert await host.call_function(fn_entry("return a.x + 41"), {"x": 1}) == 42


def test_corpus_has_at_least_forty_attempts():
    assert len(CORPUS) >= 40


async def test_python_callable_argument_never_reaches_lua(host):
    with pytest.raises(InvalidPayload, match="builtin_function_or_method cannot cross into Lua"):
        await host.call_function(fn_entry("return a.f"), {"f": os.system})


async def test_python_object_argument_never_reaches_lua(host):
    with pytest.raises(InvalidPayload, match="cannot cross into Lua"):
        await host.call_function(fn_entry("return a"), object())


async def test_gc_metamethod_added_later_is_never_run(host):
    # 5.4 marks an object for finalization only at setmetatable time
    code = "local mt = {}; setmetatable({}, mt); mt.__gc = function() while true do end end; return 'ok'"
    assert await host.call_function(fn_entry(code), None) == "ok"


async def test_limit_in_one_call_leaves_a_concurrent_call_alone(host):
    import asyncio

    slow = host.call_function(fn_entry('time.sleep("50ms"); return "fine"', modules=["time"]), None)
    bomb = host.call_function(fn_entry("while true do end", limits=SMALL), None)
    results = await asyncio.gather(slow, bomb, return_exceptions=True)
    assert results[0] == "fine"
    assert isinstance(results[1], LuaLimitExceeded)


HOOKLESS = [
    ("xpcall handler after a limit",
     "xpcall(function() while true do end end, function(e) while true do end end); return 'escaped'"),
    ("__close in a coroutine closed after a limit",
     "local co = coroutine.create(function() local x <close> = setmetatable({}, {__close = function() "
     "while true do end end}); while true do end end); coroutine.resume(co); coroutine.close(co); return 'escaped'"),
    ("__close in coroutine.wrap after a limit",
     "local f = coroutine.wrap(function() local x <close> = setmetatable({}, {__close = function() "
     "while true do end end}); while true do end end); pcall(f); return 'escaped'"),
    ("__close during pcall unwinding",
     "pcall(function() local x <close> = setmetatable({}, {__close = function() while true do end end}); "
     "while true do end end); return 'escaped'"),
]


@pytest.mark.parametrize("code", [c[1] for c in HOOKLESS], ids=[c[0] for c in HOOKLESS])
async def test_no_user_code_runs_with_hooks_disabled(host, code):
    # each of these would spin forever (hooks off) if user code ran from inside the hook's error
    with pytest.raises(LuaLimitExceeded):
        await host.call_function(fn_entry(code, limits={"instructions": 500_000, "timeout": "2s"}), None)
    assert await host.call_function(fn_entry("return 1"), None) == 1
