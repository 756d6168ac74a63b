"""``uuid``: random version-4 UUIDs from the OS generator."""

from __future__ import annotations

import uuid as _uuid
from typing import Any

from wippy_agents.lua.modules.base import LuaModule, LuaOp

__all__ = ["MODULE"]

LUA = """
local M = {}
function M.v4() return host("uuid.v4") end
M.new = M.v4
return M
"""


async def v4(ctx: Any) -> str:
    return str(_uuid.uuid4())


MODULE = LuaModule(name="uuid", lua=LUA, ops={"uuid.v4": LuaOp(fn=v4, effect="read", guard=None)})
