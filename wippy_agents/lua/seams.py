"""What the Lua layer needs from the rest of the node, as plain async callables.

The Lua modules never import the registry or the security layer: every
registry read/write, cross-function call and permission check goes through
one of these callables, so the security layer can enforce policy in one
place.  A missing service makes the Lua API answer ``nil, err``.

``registry_services(registry)`` builds them from a live ``Registry``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Protocol, Sequence

from wippy_agents.errors import EntryNotFound, UsageError

__all__ = ["Services", "OpGuard", "UNGUARDED", "registry_services", "entry_to_data"]

GetEntry = Callable[..., Awaitable[Any]]          # (id, *, actor) -> entry | None
FindEntries = Callable[..., Awaitable[Sequence[Any]]]  # (query, *, actor) -> [entry]
RegistryVersion = Callable[..., Awaitable[int]]   # (*, actor) -> int
RegistryApply = Callable[..., Awaitable[int]]     # (changes, *, actor, base_version) -> version
CallFunction = Callable[..., Awaitable[Any]]      # (id, args, *, actor) -> value (non-Lua entries)
Authorize = Callable[..., Awaitable[None]]        # (actor, action, resource) -> None | raise PermissionDenied
RunAs = Callable[..., Awaitable[Any]]             # (actor, entry) -> the actor the entry's code runs as


class OpGuard(Protocol):
    """The security seam of Lua ops: asked before every op that declares a ``guard`` action.

    ``check`` raises ``PermissionDenied`` (audited by the guard) or returns
    None, or a function the op's result passes through (what the caller may
    see: secrets redacted, unreadable entries left out).
    """

    async def check(self, ctx: Any, name: str, op: Any, args: Sequence[Any]) -> Callable[[Any], Any] | None: ...

    def can(self, actor: Any, action: str, resource: str) -> bool:
        """``security.can`` for Lua: a decision without audit."""
        ...

    def describe(self, actor: Any) -> dict[str, Any]:
        """``security.actor()`` for Lua."""
        ...


class _Unguarded:
    """A guard that allows every op: for a host embedded without security (tests, benchmarks)."""

    async def check(self, ctx: Any, name: str, op: Any, args: Sequence[Any]) -> None:
        return None

    def can(self, actor: Any, action: str, resource: str) -> bool:
        return True

    def describe(self, actor: Any) -> dict[str, Any]:
        return {"id": str(actor), "kind": "unguarded", "label": str(actor), "policies": [], "owner": True,
                "limits": [], "task_id": None}


# Trust all code on this host (say so explicitly: a host with no guard refuses guarded ops).
UNGUARDED: OpGuard = _Unguarded()


@dataclass(frozen=True, kw_only=True)
class Services:
    """Async seams the Lua host calls; each is optional.

    ``registry_apply`` receives ``changes`` as a list of
    ``{"op": "create"|"update"|"delete", "id": str|None, "entry": dict|None}``
    and must do the permission check (the one call path for Lua writes).
    ``authorize(actor, action, resource)`` is asked for ``lua.module``
    before a state gets a module.  ``run_as(actor, entry)`` (security) gives
    the actor an entry's code runs as: narrowed to its creator's policies.
    ``guard`` checks every op that declares a guard action (``OpGuard``);
    without one such ops are refused.
    """

    get_entry: GetEntry | None = None
    find_entries: FindEntries | None = None
    registry_version: RegistryVersion | None = None
    registry_apply: RegistryApply | None = None
    call_function: CallFunction | None = None
    authorize: Authorize | None = None
    run_as: RunAs | None = None
    guard: OpGuard | None = None

    def need(self, name: str) -> Callable[..., Awaitable[Any]]:
        fn = getattr(self, name)
        if fn is None:
            raise UsageError(f"the {name} service is not configured on this Lua host")
        return fn

    async def entry(self, entry_id: str, *, actor: Any) -> Any:
        """The entry or ``EntryNotFound``."""
        found = await self.need("get_entry")(entry_id, actor=actor)
        if found is None:
            raise EntryNotFound(f"entry {entry_id!r} not found", id=entry_id)
        return found


def entry_to_data(entry: Any) -> dict[str, Any]:
    """``{id, kind, meta, data}`` of a registry ``Entry`` (or such a mapping)."""
    if isinstance(entry, Mapping):
        return {k: entry.get(k) for k in ("id", "kind", "meta", "data")}
    return {"id": str(entry.id), "kind": entry.kind, "meta": dict(entry.meta), "data": dict(entry.data)}


def registry_services(registry: Any, *, call_function: CallFunction | None = None,
                      authorize: Authorize | None = None, guard: OpGuard | None = None, run_as: RunAs | None = None,
                      stamp: Callable[[Sequence[Mapping[str, Any]], Any], Sequence[Mapping[str, Any]]] | None = None,
                      author: str = "lua") -> Services:
    """Services backed by a ``wippy_agents.registry.Registry`` (writes go through its guards).

    ``stamp(changes, actor)`` marks Lua-written code with its writer (security's ``lua_seams``).
    """

    async def get_entry(entry_id: str, *, actor: Any = None) -> Any:
        return registry.get(entry_id)

    async def find_entries(query: Mapping[str, Any], *, actor: Any = None) -> list[Any]:
        return registry.find(dict(query))

    async def registry_version(*, actor: Any = None) -> int:
        return registry.version

    async def registry_apply(changes: Sequence[Mapping[str, Any]], *, actor: Any = None,
                             base_version: int | None = None, reason: str = "") -> int:
        if stamp is not None:
            changes = stamp(changes, actor)
        cs = registry.changeset(author=str(actor) if actor is not None else author, reason=reason, actor=actor)
        cs.base_version = base_version
        for change in changes:
            op = change.get("op")
            if op == "create":
                cs.create(change.get("entry") or {})
            elif op == "update":
                cs.update(change.get("id"), change.get("entry") or {})
            elif op == "delete":
                cs.delete(change.get("id"))
            else:
                raise UsageError(f"unknown registry change op {op!r}: use create, update or delete")
        return await registry.apply(cs)

    return Services(get_entry=get_entry, find_entries=find_entries, registry_version=registry_version,
                    registry_apply=registry_apply, call_function=call_function, authorize=authorize,
                    guard=guard, run_as=run_as)
