"""``security``: ``security.can(action, resource)`` and ``security.actor()``, answered by the host's guard."""

from __future__ import annotations

from typing import Any

from wippy_agents.errors import PermissionDenied
from wippy_agents.lua.modules.base import LuaModule, LuaOp

__all__ = ["MODULE"]

LUA = """
local M = {}
function M.can(action, resource) return host("security.can", action, resource) end
function M.actor() return host("security.actor") end
return M
"""


def _guard(ctx: Any) -> Any:
    guard = ctx.services.guard
    if guard is None or not hasattr(guard, "can"):
        raise PermissionDenied("security: this Lua host has no security layer to ask")
    return guard


async def can(ctx: Any, action: Any = None, resource: Any = None) -> bool:
    """Whether the caller may do ``action`` on ``resource`` (no audit, never asks a person;
    an ``ask`` rule answers true)."""
    if not isinstance(action, str) or not isinstance(resource, str):
        raise PermissionDenied("security.can(action, resource): both must be strings")
    return _guard(ctx).can(ctx.actor, action, resource)


async def actor(ctx: Any) -> dict[str, Any]:
    """Who the code runs as."""
    return _guard(ctx).describe(ctx.actor)


MODULE = LuaModule(name="security", lua=LUA, ops={
    "security.can": LuaOp(fn=can, effect="read", guard=None),
    "security.actor": LuaOp(fn=actor, effect="read", guard=None),
})
