"""How the security layer joins a node: ``install`` and the seams it offers the Lua layer.

``App.open`` calls ``install(registry, store)`` before anything can write to
the registry or run code, and hands ``lua_seams(security)`` to the Lua
host's services. Nothing is looked up by name or wrapped after the fact:
the registry write guard is installed here, and every Lua op that declares
a guard action is checked by ``LuaGuard`` through the host's one op path.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .actor import as_actor
from .engine import Security
from .guard import RegistryGuard
from .lua_guard import LuaGuard
from .stamp import stamp_change

__all__ = ["install", "lua_seams"]


def install(registry: Any, store: Any) -> Security:
    """The node's ``Security``, with the registry write guard (``registry.write`` and the
    no-escalation rules) installed on ``registry``: every write — a file, the CLI, an agent's
    tool, Lua's ``changes:apply()``, a rollback — meets it in ``Registry.apply``."""
    security = Security(registry, store)
    registry.add_write_guard(RegistryGuard(security))
    return security


def lua_seams(security: Security) -> dict[str, Any]:
    """Keyword arguments for ``lua.registry_services``: the op guard, the ``lua.module`` check,
    ``run_as`` (code runs narrowed to its creator's policies) and the stamp put on Lua-written code."""

    async def authorize(actor: Any, action: str, resource: str) -> None:
        await security.enforce(actor, action, resource)

    async def run_as(actor: Any, entry: Any) -> Any:
        return security.run_as(actor, entry)

    def stamp(changes: Sequence[Mapping[str, Any]], actor: Any) -> list[dict[str, Any]]:
        who = as_actor(actor)
        return [stamp_change(security.registry, change, who) for change in changes]

    return {"guard": LuaGuard(security), "authorize": authorize, "run_as": run_as, "stamp": stamp}
