"""``log``: debug/info/warn/error to Python logging, tagged with the entry id.

Records are buffered in Lua (no yield, so logging works anywhere, even in a
``table.sort`` comparator) and flushed by the driver after every resume.
"""

from __future__ import annotations

from wippy_agents.lua.modules.base import LuaModule

__all__ = ["MODULE"]

LUA = """
local M = {}
for _, level in ipairs({"debug", "info", "warn", "error"}) do
  M[level] = function(message, fields)
    if fields ~= nil and type(fields) ~= "table" then fields = {value = fields} end
    emit(level, message, fields)
  end
end
return M
"""

MODULE = LuaModule(name="log", lua=LUA)
