"""``registry``: get, find, version, snapshot():changes():create/update/delete/apply.

Every read and write goes through the host's ``Services`` (one call path, so
the security layer can enforce policy there).  Errors come back as ``nil, err``.
"""

from __future__ import annotations

from typing import Any

from wippy_agents.errors import UsageError
from wippy_agents.lua.modules.base import LuaModule, LuaOp
from wippy_agents.lua.seams import entry_to_data

__all__ = ["MODULE"]

LUA = """
local M = {}
function M.get(id) return host("registry.get", id) end
function M.find(query) return host("registry.find", query or {}) end
function M.version() return host("registry.version") end
function M.watch(pattern)
  -- a channel of {version = n, changed = {ids}}; served by the process layer
  local id, err = host("registry.watch", pattern)
  if id == nil then return nil, err end
  local channel = use("channel")
  if channel == nil then return nil, "registry.watch: channels are not available on this host" end
  return channel._watch(id)
end

local Changes = {}
Changes.__index = Changes
function Changes:create(entry)
  self._ops[#self._ops + 1] = {op = "create", entry = entry}
  return self
end
function Changes:update(id, fields)
  if type(id) == "table" then fields = id; id = fields.id end
  self._ops[#self._ops + 1] = {op = "update", id = id, entry = fields}
  return self
end
function Changes:delete(id)
  self._ops[#self._ops + 1] = {op = "delete", id = id}
  return self
end
function Changes:ops() return self._ops end
function Changes:apply(reason) return host("registry.apply", self._ops, self._base, reason) end

local Snapshot = {}
Snapshot.__index = Snapshot
function Snapshot:version() return self._version end
function Snapshot:get(id) return host("registry.get", id) end
function Snapshot:find(query) return host("registry.find", query or {}) end
function Snapshot:changes() return setmetatable({_ops = {}, _base = self._version}, Changes) end

function M.snapshot()
  local v, err = host("registry.version")
  if v == nil then return nil, err end
  return setmetatable({_version = v}, Snapshot)
end
return M
"""


async def get(ctx: Any, entry_id: Any = None) -> Any:
    if not isinstance(entry_id, str):
        raise UsageError(f"registry.get: expected an entry id string, got {entry_id!r}")
    return entry_to_data(await ctx.services.entry(ctx.resolve(entry_id), actor=ctx.actor))


async def find(ctx: Any, query: Any = None) -> Any:
    if query is None or query == []:
        query = {}
    if not isinstance(query, dict):
        raise UsageError("registry.find: expected a table of criteria like {kind = 'function.lua'}")
    found = await ctx.services.need("find_entries")(query, actor=ctx.actor)
    return [entry_to_data(e) for e in found]


async def version(ctx: Any) -> int:
    return await ctx.services.need("registry_version")(actor=ctx.actor)


async def apply(ctx: Any, ops: Any = None, base_version: Any = None, reason: Any = None) -> int:
    if ops in (None, {}):
        ops = []
    if not isinstance(ops, list):
        raise UsageError("changes:apply: malformed change list")
    return await ctx.services.need("registry_apply")(
        ops, actor=ctx.actor, base_version=base_version, reason=reason or f"changed by {ctx.entry_id}"
    )


MODULE = LuaModule(
    name="registry",
    lua=LUA,
    ops={
        "registry.get": LuaOp(fn=get, effect="read", guard="registry.read"),
        "registry.find": LuaOp(fn=find, effect="read", guard="registry.read"),
        "registry.version": LuaOp(fn=version, effect="read", guard=None),
        # each written entry is checked by the registry's write guard when the changeset applies
        "registry.apply": LuaOp(fn=apply, effect="write", guard="registry.write"),
    },
)
