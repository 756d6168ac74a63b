"""The Lua modules, one file each: a trusted Lua wrapper plus async host ops.

``builtin_modules()`` is what a ``LuaHost`` starts with; the process layer
adds ``process``/``channel`` (``always=True``) with ``LuaHost.add_module``.
"""

from __future__ import annotations

from wippy_agents.lua.modules import funcs, http, json, log, registry, security, time, uuid
from wippy_agents.lua.modules.base import EFFECTS, KNOWN_MODULES, Effect, LuaModule, LuaOp, OpHandler

__all__ = ["EFFECTS", "KNOWN_MODULES", "Effect", "LuaModule", "LuaOp", "OpHandler", "builtin_modules"]


def builtin_modules() -> dict[str, LuaModule]:
    """Fresh name -> module map of the modules this package ships."""
    return {m.MODULE.name: m.MODULE for m in (json, time, log, uuid, funcs, registry, security, http)}
