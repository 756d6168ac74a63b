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
  ``registry_apply`` that stamps Lua-written code with the writer's policies;
* the Lua ``security`` module (``security.can``, ``security.actor``);
* checks on the Lua ops that reach other code or data (``funcs.call`` of a tool,
  ``agent.run``, ``registry.get``/``registry.find`` need ``registry.read`` and never show
  secret-named values).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Mapping, Sequence

from ..app import on_open
from ..errors import PermissionDenied
from .actor import as_actor
from .engine import Security
from .policy import glob_match
from .secrets import redact
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
        guard_lua_ops(security, lua)
        from ..lua.modules.base import LuaModule  # the Lua layer sits above this one: imported at wiring time

        lua.add_module(LuaModule(name="security", lua=SECURITY_LUA, ops=security_ops(security)))


SECURITY_LUA = """
local M = {}
function M.can(action, resource) return host("security.can", action, resource) end
function M.actor() return host("security.actor") end
return M
"""


def security_ops(security: Security) -> dict[str, Any]:
    """The Lua ``security`` module: ``security.can(action, resource)`` -> bool (no audit, never asks
    a person; an ``ask`` rule answers true) and ``security.actor()`` -> who the code runs as."""

    async def can(ctx: Any, action: Any = None, resource: Any = None) -> bool:
        if not isinstance(action, str) or not isinstance(resource, str):
            raise PermissionDenied("security.can(action, resource): both must be strings")
        return security.check(ctx.actor, action, resource).allowed

    async def actor(ctx: Any) -> dict[str, Any]:
        who = as_actor(ctx.actor)
        return {"id": who.id, "kind": who.kind, "label": who.label, "policies": list(who.policies),
                "owner": who.is_owner, "limits": [list(x) for x in who.limits], "task_id": who.task_id}

    return {"security.can": can, "security.actor": actor}


def guard_lua_ops(security: Security, host: Any) -> None:
    """Checks on Lua calls that reach other code or data: ``funcs.call`` of a tool needs
    ``tool.call`` (as the model would); ``agent.run`` may only start an agent holding no more
    policies than the caller (the rule for delegates); ``registry.get`` needs ``registry.read``
    and ``registry.find`` leaves out what the caller may not read."""
    funcs = host.modules.get("funcs")
    if funcs is not None and "funcs.call" in funcs.ops:
        inner_call = funcs.ops["funcs.call"]

        async def call(ctx: Any, entry_id: Any = "", *args: Any) -> Any:
            target = ctx.resolve(entry_id) if isinstance(entry_id, str) else entry_id
            entry = security.registry.get(target) if isinstance(target, str) else None
            if entry is not None and entry.meta.get("type") == "tool":
                await security.enforce(ctx.actor, "tool.call", target, details={"via": f"funcs.call in {ctx.entry_id}"})
            return await inner_call(ctx, entry_id, *args)

        host.add_module(dataclasses.replace(funcs, ops={**funcs.ops, "funcs.call": call}))
    registry = host.modules.get("registry")
    if registry is not None and {"registry.get", "registry.find"} <= set(registry.ops):
        inner_get, inner_find = registry.ops["registry.get"], registry.ops["registry.find"]

        async def get(ctx: Any, entry_id: Any = None) -> Any:
            if isinstance(entry_id, str):
                await security.enforce(ctx.actor, "registry.read", ctx.resolve(entry_id),
                                       details={"via": f"registry.get in {ctx.entry_id}"})
            return _shown(await inner_get(ctx, entry_id))

        async def find(ctx: Any, query: Any = None) -> Any:
            found = await inner_find(ctx, query)  # entries the code may not read are left out
            return [_shown(e) for e in found if security.check(ctx.actor, "registry.read", str(e.get("id"))).allowed]

        host.add_module(dataclasses.replace(registry, ops={**registry.ops, "registry.get": get, "registry.find": find}))
    agent = host.modules.get("agent")
    if agent is not None and "agent.run" in agent.ops:
        inner_run = agent.ops["agent.run"]

        async def run(ctx: Any, agent_id: Any = None, *args: Any) -> Any:
            target = ctx.resolve(agent_id) if isinstance(agent_id, str) else agent_id
            entry = security.registry.get(target) if isinstance(target, str) else None
            actor = as_actor(ctx.actor)
            held = actor.held_policies()
            if entry is not None and held is not None:
                policies = {p if ":" in p else f"{entry.id.namespace}:{p}" for p in entry.data.get("policies") or ()}
                wider = sorted(policies - held)
                if wider:
                    await security.deny(actor, "agent.run", target, f"agent {target!r} holds policies {wider} that "
                                        "the caller does not hold", details={"via": f"agent.run in {ctx.entry_id}"})
            return await inner_run(ctx, agent_id, *args)

        host.add_module(dataclasses.replace(agent, ops={**agent.ops, "agent.run": run}))
    for name, action in (("agent", "agent.run"), ("llm", "llm.call")):
        _refuse_when_forbidden(security, host, name, action)


def _shown(entry: Any) -> Any:
    """An entry as Lua sees it: secret-named values redacted (SPEC §8: never visible to Lua)."""
    if not isinstance(entry, dict):
        return entry
    return {**entry, "meta": redact(entry.get("meta") or {}), "data": redact(entry.get("data") or {})}


def _refuse_when_forbidden(security: Security, host: Any, name: str, action: str) -> None:
    """Every op of module ``name`` refuses for an actor that forbids ``action`` (a dry run: a
    tool's examples must not start agents or pay for model calls)."""
    module = host.modules.get(name)
    if module is None:
        return

    def wrap(op_name: str, inner: Any) -> Any:
        async def op(ctx: Any, *args: Any) -> Any:
            actor = as_actor(ctx.actor)
            if any(glob_match(action, pattern) for pattern in actor.forbid):
                await security.deny(actor, action, op_name, f"{action} is not available here ({actor.label} runs "
                                    "without side effects, e.g. while a tool's examples are checked)")
            return await inner(ctx, *args)

        return op

    host.add_module(dataclasses.replace(module, ops={k: wrap(k, v) for k, v in module.ops.items()}))


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
