"""``StatePool``: reuse bootstrapped Lua runtimes between function calls.

Creating a runtime and running the sandbox bootstrap is most of a trivial
call's cost.  A state may serve another call only when isolation still holds:

* the call ended (result or Lua error) without tripping any limit and was not
  cancelled mid-run (``LuaHost`` only releases in those cases);
* every call gets a new environment, new module tables, new library tables
  (``string``/``table``/``math``/``utf8``/``os``/``coroutine``: user code can
  only ever mutate its own copies; the string metatable is re-pointed) and a
  reseeded ``math.random``; nothing else in the runtime is reachable from
  user code (no ``debug``, no real ``_G``, no registry);
* states are pooled per memory limit (``max_memory`` is fixed at creation).

What a reused state can still reveal is garbage left by earlier calls
(memory is reclaimed by the collector, including an emergency collection
before a memory error), the same as sharing a process.
"""

from __future__ import annotations

from wippy_agents.lua.limits import Limits
from wippy_agents.lua.sandbox import LuaState

__all__ = ["StatePool"]


class StatePool:
    """At most ``size`` idle states per memory limit; never blocks.

    >>> pool = StatePool(2)
    >>> state = pool.acquire(Limits())
    >>> pool.release(state); pool.idle()
    1
    """

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._idle: dict[int, list[LuaState]] = {}
        self.created = 0
        self.reused = 0

    def acquire(self, limits: Limits) -> LuaState:
        """A clean state for ``limits``: a reused one if available, else a new one."""
        idle = self._idle.get(limits.max_memory)
        if idle:
            state = idle.pop()
            state.reset(limits)
            self.reused += 1
            return state
        self.created += 1
        return LuaState(limits)

    def release(self, state: LuaState) -> None:
        """Give back a state whose call ended cleanly; a tripped or closed one is dropped."""
        if self.size <= 0 or not state.reusable:
            return
        idle = self._idle.setdefault(state.limits.max_memory, [])
        if len(idle) < self.size:
            idle.append(state)

    def idle(self) -> int:
        return sum(len(v) for v in self._idle.values())
