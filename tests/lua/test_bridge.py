"""Value bridge, limits parsing, the pattern guard's equivalence, exports."""

from __future__ import annotations

import time

import lupa.lua54
import pytest

import wippy_agents.lua as lua_pkg
from wippy_agents.errors import ConfigError, InvalidPayload, LuaError
from wippy_agents.lua import Limits, LuaState, from_lua, parse_duration, to_lua


@pytest.fixture
def state():
    return LuaState(Limits(timeout=5))


def echo(state, value):
    env = state.new_env("t:echo")
    fn = state.load("return function(v) return v end", "echo", env)
    th = state.new_thread(fn)
    state.start(time.monotonic() + 5)
    out = state.step(th)
    f = out[1][2]
    return from_lua(f(to_lua(state.lua, value)))


@pytest.mark.parametrize("value", [
    None, True, False, 0, -7, 2**62, 1.5, "", "Łódź ✓", [1, 2, 3], {"a": {"b": [1, {"c": False}]}},
    {"1": "string key stays a string"}, {5: "x", 7: "y"}, [[], [[]]],
])
def test_round_trip_keeps_data(state, value):
    expected = value
    if value == [[], [[]]]:
        expected = [{}, [{}]]  # an empty table has no shape: it comes back as {}
    assert echo(state, value) == expected


def test_huge_python_int_becomes_a_float(state):
    assert echo(state, 2**80) == float(2**80)


def test_invalid_utf8_from_lua_is_replaced_not_fatal(state):
    env = state.new_env("t:x")
    fn = state.load("return function() return '\\xff\\xfeok' end", "x", env)
    th = state.new_thread(fn)
    state.start(time.monotonic() + 5)
    assert from_lua(state.step(th)[1][2]()) == "\ufffd\ufffdok"


@pytest.mark.parametrize("bad", [object(), print, {1.5: "x"}, {(1,): 2}, {1, 2}])
def test_non_data_never_crosses_into_lua(state, bad):
    with pytest.raises(InvalidPayload):
        to_lua(state.lua, bad)


def test_too_deep_python_data_is_refused(state):
    v: list = []
    for _ in range(200):
        v = [v]
    with pytest.raises(InvalidPayload, match="deeper than 100"):
        to_lua(state.lua, v)


def test_lua_functions_and_cycles_do_not_leave_lua(state):
    t = state.lua.execute(b"local t = {}; t.self = t; return t")
    with pytest.raises(LuaError, match="deeper than 100"):
        from_lua(t)
    f = state.lua.execute(b"return {f = function() end}")
    with pytest.raises(LuaError, match="function cannot leave Lua"):
        from_lua(f)


def test_strings_cross_as_lua_strings_not_userdata(state):
    typ = state.lua.execute(b"return function(v) return type(v.k), type(next(v)) end")
    assert typ(to_lua(state.lua, {"k": "v"})) == (b"string", b"string")


def test_sandbox_has_no_python_global(state):
    assert state.lua.execute(b"return python") is None


@pytest.mark.parametrize("value,seconds", [(5, 5.0), ("5s", 5.0), ("100ms", 0.1), ("2m", 120.0), ("1.5h", 5400.0)])
def test_parse_duration(value, seconds):
    assert parse_duration(value) == pytest.approx(seconds)


def test_limits_from_entry():
    assert Limits.from_entry_value({"memory": "16MiB", "instructions": 1000, "timeout": "2s"}) == Limits(
        max_memory=16 << 20, max_instructions=1000, timeout=2.0)
    assert Limits.from_entry_value(None) == Limits()
    with pytest.raises(ConfigError, match="unknown limit"):
        Limits.from_entry_value({"cpu": 1})
    with pytest.raises(ConfigError, match="instructions"):
        Limits.from_entry_value({"instructions": -1})


# The guard's scan mode (anchored matcher from each start, in Lua) must give
# exactly what the C matcher gives.  Force it with a tiny step budget.
CASES = [
    ("hello world from lua", "o"), ("hello world", "(%w+) (%w+)"), ("k1=v1, k2=v2", "(%w+)=(%w+)"),
    ("aaa", "a-"), ("abc", ""), ("abc", "x*"), ("  trim  ", "^%s*(.-)%s*$"), ("a.b.c", "%."),
    ("one two  three", "%s*"), ("[x][y]", "%b[]"), ("THE (quick) fox", "%f[%a]%a+"), ("abab", "(a)(b)%1"),
    ("x=1,y=22", "()(%d+)()"), ("αβγ", "[\x80-\xff]+"),
]


def _guarded_and_raw(fn, args):
    guarded = LuaState(Limits(timeout=5), force_scan=True)
    raw = lupa.lua54.LuaRuntime(encoding=None)
    env = guarded.new_env("t:g")
    body = {
        "find": "return {string.find(s, p)}",
        "match": "return {string.match(s, p)}",
        "gmatch": "local out = {} for a, b in string.gmatch(s, p) do out[#out + 1] = {a, b} end return out",
        "gsub_s": "return {string.gsub(s, p, '<%0>')}",
        "gsub_f": "return {string.gsub(s, p, function(x) return type(x) == 'string' and x:upper() or nil end)}",
        "gsub_t": "return {string.gsub(s, p, {a = 'A', hello = 'HI'})}",
        "gsub_n": "return {string.gsub(s, p, '#', 1)}",
    }[fn]
    src = f"return function(s, p) {body} end"
    g_fn = guarded.load(src, "g", env)
    th = guarded.new_thread(g_fn)
    guarded.start(time.monotonic() + 5)
    g = guarded.step(th)[1][2]
    r = raw.execute(src.encode())
    s, p = (a.encode() for a in args)
    return from_lua(g(s, p)), from_lua(r(s, p))


@pytest.mark.parametrize("fn", ["find", "match", "gmatch", "gsub_s", "gsub_f", "gsub_t", "gsub_n"])
@pytest.mark.parametrize("subject,pattern", CASES)
def test_scan_mode_matches_the_c_matcher(fn, subject, pattern):
    guarded, raw = _guarded_and_raw(fn, (subject, pattern))
    assert guarded == raw


