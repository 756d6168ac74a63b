"""Sandboxed Lua 5.4 for wippy-agents: states under limits, the value bridge,
the coroutine<->asyncio driver, the Lua modules and the function host.

>>> from wippy_agents.lua import compile_check
>>> compile_check("return 1", "demo")
"""

from wippy_agents.lua.limits import Limits, parse_duration, parse_size
from wippy_agents.lua.sandbox import LuaState, compile_check
from wippy_agents.lua.value import from_lua, to_lua

__all__ = [
    "Limits",
    "LuaState",
    "compile_check",
    "from_lua",
    "parse_duration",
    "parse_size",
    "to_lua",
]
