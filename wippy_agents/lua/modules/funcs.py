"""``funcs``: call another function entry (Lua or not) through the host."""

from __future__ import annotations

from typing import Any

from wippy_agents.errors import UsageError
from wippy_agents.lua.modules.base import LuaModule, LuaOp

__all__ = ["MODULE"]

LUA = """
local M = {}
function M.call(id, ...)
  if type(id) ~= "string" then return nil, "funcs.call: expected an entry id string, got " .. type(id) end
  return host("funcs.call", id, ...)
end
return M
"""


async def call(ctx: Any, entry_id: str = "", args: Any = None, *more: Any) -> Any:
    if more:
        raise UsageError("funcs.call(id, args): pass the arguments as one table")
    return await ctx.host.call_from(ctx, ctx.resolve(entry_id), args)


MODULE = LuaModule(name="funcs", lua=LUA, ops={"funcs.call": LuaOp(fn=call, effect="wait", guard="tool.call")})
