"""Sandboxed Lua 5.4 for wippy-agents: states under limits, the value bridge,
the coroutine<->asyncio driver, the Lua modules and the function host.

>>> from wippy_agents.lua import compile_check
>>> compile_check("return 1", "demo")
"""

from wippy_agents.lua.code import CodeSpec
from wippy_agents.lua.context import CallContext
from wippy_agents.lua.driver import drive
from wippy_agents.lua.host import LoadedCode, LuaHost
from wippy_agents.lua.limits import Limits, parse_duration, parse_size
from wippy_agents.lua.modules import EFFECTS, KNOWN_MODULES, LuaModule, LuaOp, builtin_modules
from wippy_agents.lua.pool import StatePool
from wippy_agents.lua.sandbox import LuaState, compile_check
from wippy_agents.lua.seams import UNGUARDED, OpGuard, Services, entry_to_data, registry_services
from wippy_agents.lua.value import from_lua, to_lua

__all__ = [
    "EFFECTS",
    "KNOWN_MODULES",
    "UNGUARDED",
    "CallContext",
    "CodeSpec",
    "Limits",
    "LoadedCode",
    "LuaHost",
    "LuaModule",
    "LuaOp",
    "LuaState",
    "OpGuard",
    "Services",
    "StatePool",
    "builtin_modules",
    "compile_check",
    "drive",
    "entry_to_data",
    "from_lua",
    "parse_duration",
    "parse_size",
    "registry_services",
    "to_lua",
]
