"""``CallContext``: what a host operation knows about the Lua code that asked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wippy_agents.lua.sandbox import LuaState
from wippy_agents.lua.seams import Services

if TYPE_CHECKING:
    from wippy_agents.lua.host import LuaHost

__all__ = ["CallContext"]


@dataclass(kw_only=True, slots=True)
class CallContext:
    """One running piece of Lua code: its entry, actor, state and call depth.

    ``extra`` is free for layers above (a process keeps its pid/mailbox there).
    """

    host: LuaHost
    entry_id: str
    actor: Any
    state: LuaState
    depth: int = 0
    extra: dict[str, Any] | None = None

    @property
    def services(self) -> Services:
        return self.host.services

    @property
    def namespace(self) -> str:
        return self.entry_id.rpartition(":")[0]

    def resolve(self, ref: str) -> str:
        """A bare name means the caller's namespace (SPEC §3)."""
        return ref if ":" in ref else f"{self.namespace}:{ref}"
