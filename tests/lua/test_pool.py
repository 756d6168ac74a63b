"""Reused (pooled) states keep calls isolated from each other."""

from __future__ import annotations

import pytest

from wippy_agents.errors import LuaLimitExceeded
from wippy_agents.lua import LuaHost

from .conftest import fn_entry

TAMPER = """
string.upper = function() return "pwned" end
table.insert = nil
math.randomseed(42)
os.time = function() return 0 end
coroutine.wrap = nil
json.encode = function() return "pwned" end
leaked = "yes"
getmetatable = nil
return "tampered"
"""

CHECK = """
return {
  upper = ("a"):upper(), upper2 = string.upper("b"), insert = type(table.insert),
  time = os.time() > 0, wrap = type(coroutine.wrap), enc = json.encode({1}), leaked = leaked == nil,
  gm = type(getmetatable), r = math.random(1, 10^9),
}
"""


@pytest.fixture
def pooled(memreg) -> LuaHost:
    return LuaHost(services=memreg.services(), pool_size=1)


async def test_a_reused_state_gives_pristine_libraries_modules_and_globals(pooled):
    assert await pooled.call_function(fn_entry(TAMPER, modules=["json"])) == "tampered"
    out = await pooled.call_function(fn_entry(CHECK, modules=["json"]))
    assert pooled.pool.reused >= 1, "the second call must have reused the state"
    assert out["upper"] == "A" and out["upper2"] == "B"
    assert out["insert"] == "function" and out["wrap"] == "function" and out["gm"] == "function"
    assert out["time"] is True and out["enc"] == "[1]" and out["leaked"] is True


async def test_a_reused_state_reseeds_the_random_generator(pooled):
    await pooled.call_function(fn_entry("math.randomseed(7); return 1"))
    first = await pooled.call_function(fn_entry("return math.random(1, 10^9)"))
    await pooled.call_function(fn_entry("math.randomseed(7); return 1"))
    second = await pooled.call_function(fn_entry("return math.random(1, 10^9)"))
    assert first != second


async def test_same_source_twice_binds_each_call_its_own_environment(pooled):
    entry = fn_entry("x = (x or 0) + 1; return x")
    assert [await pooled.call_function(entry) for _ in range(3)] == [1, 1, 1]
    assert pooled.pool.reused >= 2


async def test_a_state_that_hit_a_limit_is_never_reused(pooled):
    with pytest.raises(LuaLimitExceeded):
        await pooled.call_function(fn_entry("while true do end", limits={"instructions": 100_000}))
    assert pooled.pool.idle() == 0
    created = pooled.pool.created
    assert await pooled.call_function(fn_entry("return 1")) == 1
    assert pooled.pool.created == created + 1


async def test_states_are_pooled_per_memory_limit(pooled):
    await pooled.call_function(fn_entry("return 1", limits={"memory": "8MiB"}))
    await pooled.call_function(fn_entry("return 1"))
    assert pooled.pool.reused == 0 and pooled.pool.created == 2


async def test_pool_off_creates_a_runtime_per_call(memreg):
    host = LuaHost(services=memreg.services(), pool_size=0)
    for _ in range(2):
        assert await host.call_function(fn_entry("return 2")) == 2
    assert host.pool.reused == 0


async def test_module_instances_do_not_carry_over_to_the_next_call(memreg):
    from wippy_agents.lua import LuaModule, builtin_modules

    first = LuaModule(name="llm", lua="return {name = function() return 'real' end}")
    user = LuaModule(name="agent", lua="return {peek = function() local m = use('llm'); return m and m.name() end}")
    host = LuaHost(services=memreg.services(), modules={**builtin_modules(), "llm": first, "agent": user},
                   pool_size=1)
    tamper = "llm.name = function() return 'pwned' end; return agent.peek()"
    assert await host.call_function(fn_entry(tamper, modules=["llm", "agent"])) == "pwned"
    # the next call in the same runtime does not list llm: it must not see the tampered instance
    assert await host.call_function(fn_entry("return agent.peek()", modules=["agent"])) is None
    assert await host.call_function(fn_entry("return agent.peek()", modules=["llm", "agent"])) == "real"
    assert host.pool.reused == 2
