"""``LuaModule`` and ``LuaOp``: one Lua module = a small trusted Lua wrapper + declared host ops.

Every host op says once, where it is defined, what it does and what guards it:

* ``effect``: ``pure`` (computes from its arguments), ``read`` (reads node or
  registry state), ``write`` (changes something outside the Lua state) or
  ``wait`` (may wait: a call, a sleep, a receive). The process driver starts a
  new compute slice after a ``wait``; the workflow journal runs ``pure`` ops
  directly, journals ``read`` ops as idempotent steps and the others as
  non-idempotent ones.
* ``guard``: the policy action the Lua host asks security about before the op
  runs (``tool.call``, ``registry.read`` ...), or ``None`` for an op that needs
  no permission. It must be given either way: an op cannot be registered
  without saying.
* ``journaled``: the op journals its own steps when it runs inside a task
  (model calls, agent runs), so the workflow journal must not wrap it again.

>>> LuaOp(fn=encode, effect="pure", guard=None)                 # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Literal, Mapping, Sequence, get_args

from wippy_agents.errors import UsageError

__all__ = ["LuaModule", "LuaOp", "OpHandler", "Effect", "EFFECTS", "KNOWN_MODULES"]

# async handler(ctx, *args) -> value (raise a WippyError for `nil, err`)
OpHandler = Callable[..., Awaitable[Any]]
Effect = Literal["pure", "read", "write", "wait"]
EFFECTS: tuple[str, ...] = get_args(Effect)

# Every module name SPEC §5 defines: naming one that is not listed in
# `modules:` gives "not enabled" instead of a bare nil.
KNOWN_MODULES = frozenset(
    {"json", "time", "registry", "funcs", "llm", "agent", "security", "log", "uuid", "http", "process", "channel"}
)


@dataclass(frozen=True, kw_only=True, slots=True)
class LuaOp:
    """One host operation: its handler, its effect and its guarding policy action (both required)."""

    fn: OpHandler
    effect: Effect
    guard: str | None
    journaled: bool = False
    # the guarded resource named from the op's arguments (default: the first argument)
    resource: Callable[[Sequence[Any]], str] | None = None

    def __post_init__(self) -> None:
        if self.effect not in EFFECTS:
            raise UsageError(f"Lua op effect {self.effect!r} is not one of {', '.join(EFFECTS)}")
        if self.guard is not None and (not isinstance(self.guard, str) or "." not in self.guard):
            raise UsageError(f"Lua op guard {self.guard!r} must be a policy action such as 'tool.call', or None")


@dataclass(frozen=True, kw_only=True)
class LuaModule:
    """A Lua module: ``lua`` is trusted text returning the module table; it may
    call ``host(op, ...)`` (yields to the driver) and ``emit(level, msg, fields)``.

    ``ops`` maps each op name to its ``LuaOp`` declaration; a module whose op
    is not declared (a bare function, a missing effect or guard) fails to
    register with a ``UsageError`` naming the op. ``always`` modules are
    visible to all code whatever its ``modules:`` say (SPEC §5: ``process``
    and ``channel``).
    """

    name: str
    lua: str
    ops: Mapping[str, LuaOp] = field(default_factory=dict)
    always: bool = False

    def __post_init__(self) -> None:
        for op_name, op in self.ops.items():
            if not isinstance(op, LuaOp):
                raise UsageError(
                    f"Lua module {self.name!r}: op {op_name!r} is not declared; give it as "
                    "LuaOp(fn=..., effect='pure'|'read'|'write'|'wait', guard='<policy action>' or None)")

    @property
    def lua_bytes(self) -> bytes:
        return self.lua.encode("utf-8")

    def replace_ops(self, fns: Mapping[str, OpHandler]) -> "LuaModule":
        """The module with some ops' handlers replaced; each keeps its declaration."""
        ops = dict(self.ops)
        for op_name, fn in fns.items():
            if op_name not in ops:
                raise UsageError(f"Lua module {self.name!r} has no op {op_name!r} to replace")
            old = ops[op_name]
            ops[op_name] = LuaOp(fn=fn, effect=old.effect, guard=old.guard, journaled=old.journaled,
                                 resource=old.resource)
        return LuaModule(name=self.name, lua=self.lua, ops=ops, always=self.always)
