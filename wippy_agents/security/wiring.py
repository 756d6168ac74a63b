"""How the security layer joins an App (imported by ``app.py``; the hook runs at every open).

Installs, so that every path meets the checks where the effect happens:

* ``app.extensions["security"]``: the ``Security`` (the agents' tool dispatcher
  calls ``enforce(actor, "tool.call", id)``; the Lua process layer calls
  ``enforce(actor, "process.spawn" | "process.send", ...)``);
* the registry write guard (``registry.write`` + no-escalation rules), so a
  write from an agent tool, from Lua (``changes:apply()``) or from a rollback
  is checked in ``Registry.apply`` itself;
* the Lua host's ``authorize`` (``lua.module`` when a state gets a module),
  ``run_as`` (code runs narrowed to its creator's policies), and a
  ``registry_apply`` that stamps Lua-written code with the writer's policies.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Mapping, Sequence

from ..app import on_open
from .actor import as_actor
from .engine import Security
from .guard import RegistryGuard
from .stamp import stamp_change

__all__ = ["install"]

log = logging.getLogger(__name__)


@on_open
async def install(app: Any) -> None:
    """Create the app's ``Security`` and hook it into the registry and the Lua host."""
    security = Security(app.registry, app.store)
    app.extensions["security"] = security
    app.registry.add_write_guard(RegistryGuard(security))
    lua = getattr(app, "lua", None)
    if lua is not None:
        lua.services = lua_services(security, lua.services)


def lua_services(security: Security, services: Any) -> Any:
    """``services`` with the security seams filled in (a frozen dataclass, replaced)."""

    async def authorize(actor: Any, action: str, resource: str) -> None:
        await security.enforce(actor, action, resource)

    previous_apply = services.registry_apply

    async def registry_apply(changes: Sequence[Mapping[str, Any]], *, actor: Any = None,
                             base_version: int | None = None, reason: str = "") -> int:
        who = as_actor(actor)
        stamped = [stamp_change(security.registry, change, who) for change in changes]
        return await previous_apply(stamped, actor=who, base_version=base_version, reason=reason)

    async def run_as(actor: Any, entry: Any) -> Any:
        return security.run_as(actor, entry)

    fields = {"authorize": authorize}
    if previous_apply is not None:
        fields["registry_apply"] = registry_apply
    if "run_as" in {f.name for f in dataclasses.fields(services)}:
        fields["run_as"] = run_as
    else:
        log.warning("the Lua host has no run_as seam: code written by agents runs with its caller's permissions")
    return dataclasses.replace(services, **fields)
