"""``LuaGuard``: security's answer to the Lua host's op guard seam (``lua.seams.OpGuard``).

The Lua host asks it before every op whose declaration names a ``guard``
action (``lua/modules/*``: ``LuaOp(..., guard="tool.call")``); nothing here
knows op names. What each action means:

==================  ==============================================================
every action        refused when the actor forbids it (a dry run: a tool's
                    examples must not start agents, pay for model calls, send)
``tool.call``       ``tool.call`` on the target when it is a tool (as the model would)
``registry.read``   ``registry.read`` on the id when one is given; the result is
                    shown without secrets, and a search leaves out entries the
                    caller may not read
``agent.run``       the started agent holds no policy the caller does not hold,
                    and the caller may use the ``agent`` module
``llm.call``        the caller may use the ``llm`` module (checked live: a policy
                    changed since the code loaded applies to the next call)
``registry.write``  the caller may use the ``registry`` module; every written
                    entry is then checked by the registry's write guard
``http.request``    ``http.request`` on the URL's host; with ``addresses`` (what the
                    http module resolved it to) an internal address needs a rule
                    that names the host (``Security.enforce_url``)
anything else       ``enforce(actor, action, <first argument>)``
==================  ==============================================================
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from .actor import as_actor
from .engine import Security
from .policy import glob_match
from .secrets import redact

__all__ = ["LuaGuard"]

# Guard actions whose resource is an entry id (a bare name means the caller's namespace).
_ENTRY_ACTIONS = frozenset({"tool.call", "registry.read", "agent.run", "process.spawn"})
# Actions a module grants as a whole: re-checked as the module's own permission.
_MODULE_OF = {"llm.call": "llm", "agent.run": "agent", "registry.write": "registry"}


class LuaGuard:
    """Checks Lua ops for one ``Security``; see the module docstring for the rules."""

    def __init__(self, security: Security) -> None:
        self.security = security

    async def check(self, ctx: Any, name: str, op: Any, args: Sequence[Any]) -> Callable[[Any], Any] | None:
        security = self.security
        action: str = op.guard
        actor = as_actor(ctx.actor)
        via = {"via": f"{name} in {ctx.entry_id}"}
        for pattern in actor.forbid:
            if glob_match(action, pattern):
                await security.deny(actor, action, name, f"{action} is not available here ({actor.label} runs "
                                    "without side effects, e.g. while a tool's examples are checked)", details=via)
        first = op.resource(args) if op.resource is not None else (args[0] if args else None)
        target = ctx.resolve(first) if action in _ENTRY_ACTIONS and isinstance(first, str) and first else first
        if action == "tool.call":
            entry = security.registry.get(target) if isinstance(target, str) else None
            if entry is not None and entry.meta.get("type") == "tool":
                await security.enforce(actor, "tool.call", target, details=via)
            return None
        if action == "registry.read":
            if isinstance(target, str):
                await security.enforce(actor, "registry.read", target, details=via)
                return _shown
            return lambda found: self._readable(actor, found)
        if action == "agent.run":
            await self._agent_run(actor, target, via)
        if action == "http.request":
            url = first.get("url") if isinstance(first, Mapping) else first
            addresses = first.get("addresses") if isinstance(first, Mapping) else None
            await security.enforce_url(actor, str(url or ""), addresses=addresses if isinstance(addresses, list)
                                       else (), details=via)
            return None
        module = _MODULE_OF.get(action)
        if module is not None:
            await security.enforce(actor, "lua.module", module, details=via)
            return None
        await security.enforce(actor, action, target if isinstance(target, str) else name, details=via)
        return None

    def can(self, actor: Any, action: str, resource: str) -> bool:
        """``security.can`` for Lua: a check without audit that never asks a person."""
        return self.security.check(actor, action, resource).allowed

    def describe(self, actor: Any) -> dict[str, Any]:
        """``security.actor()`` for Lua: who the code runs as."""
        who = as_actor(actor)
        return {"id": who.id, "kind": who.kind, "label": who.label, "policies": list(who.policies),
                "owner": who.is_owner, "limits": [list(x) for x in who.limits], "task_id": who.task_id}

    async def _agent_run(self, actor: Any, target: Any, via: dict[str, str]) -> None:
        entry = self.security.registry.get(target) if isinstance(target, str) else None
        held = actor.held_policies()
        if entry is None or held is None:
            return
        policies = {p if ":" in p else f"{entry.id.namespace}:{p}" for p in entry.data.get("policies") or ()}
        wider = sorted(policies - held)
        if wider:
            await self.security.deny(actor, "agent.run", target, f"agent {target!r} holds policies {wider} that the "
                                     "caller does not hold", details=via)

    def _readable(self, actor: Any, found: Any) -> Any:
        if not isinstance(found, list):
            return found
        check = self.security.check
        return [_shown(e) for e in found if check(actor, "registry.read", str(e.get("id"))).allowed]


def _shown(entry: Any) -> Any:
    """An entry as Lua sees it: secret-named values redacted (SPEC §8: never visible to Lua)."""
    if not isinstance(entry, dict):
        return entry
    return {**entry, "meta": redact(entry.get("meta") or {}), "data": redact(entry.get("data") or {})}
