"""``LuaModule``: one Lua module = a small trusted Lua wrapper + async host ops."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping

__all__ = ["LuaModule", "OpHandler", "KNOWN_MODULES"]

# async handler(ctx, *args) -> value (raise a WippyError for `nil, err`)
OpHandler = Callable[..., Awaitable[Any]]

# Every module name SPEC §5 defines: naming one that is not listed in
# `modules:` gives "not enabled" instead of a bare nil.
KNOWN_MODULES = frozenset(
    {"json", "time", "registry", "funcs", "llm", "agent", "security", "log", "uuid", "http", "process", "channel"}
)


@dataclass(frozen=True, kw_only=True)
class LuaModule:
    """A Lua module: ``lua`` is trusted text returning the module table; it may
    call ``host(op, ...)`` (yields to the driver) and ``emit(level, msg, fields)``.

    ``always`` modules are visible to all code whatever its ``modules:`` say
    (SPEC §5: ``process`` and ``channel``).
    """

    name: str
    lua: str
    ops: Mapping[str, OpHandler] = field(default_factory=dict)
    always: bool = False

    @property
    def lua_bytes(self) -> bytes:
        return self.lua.encode("utf-8")
