"""Supervisor and child specifications, validated when they are built.

An invalid spec raises ``InvalidSpec`` from its constructor — before anything
is spawned — with a message that names the child id and the field::

    SupervisorSpec(strategy="one_for_one", max_restarts=3, period=5.0, children=[
        ChildSpec(id="db", start=DbActor, args=("sqlite:///x.db",)),
        ChildSpec(id="workers", start=SupervisorSpec(strategy="simple_one_for_one",
                                                     children=[ChildSpec(id="w", start=worker)])),
    ])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from wippy_agents.errors import InvalidSpec

__all__ = ["ChildSpec", "SupervisorSpec", "Strategy", "Restart", "Shutdown"]

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one", "simple_one_for_one"]
Restart = Literal["permanent", "transient", "temporary"]
Shutdown = float | Literal["brutal_kill", "infinity"]

_STRATEGIES = get_args(Strategy)
_RESTARTS = get_args(Restart)


@dataclass(frozen=True, kw_only=True)
class ChildSpec:
    """How a supervisor starts, restarts and stops one child.

    ``start`` is an async body ``async def body(proc, *args)``, an ``Actor``
    subclass, or a ``SupervisorSpec`` (a nested supervisor). ``shutdown`` is
    seconds to wait after ``shutdown`` before ``kill``, ``"brutal_kill"`` (kill
    at once) or ``"infinity"`` (wait; the default for nested supervisors).
    ``start_timeout`` bounds how long the child may take to initialise.
    """

    id: str
    start: Any
    args: tuple = ()
    restart: Restart = "permanent"
    shutdown: Shutdown | None = None
    name: str | None = None
    trap_exit: bool = False
    start_timeout: float | None = 5.0

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise InvalidSpec(f"child id must be a non-empty str, got {self.id!r}", child=repr(self.id))
        where = f"child {self.id!r}"
        if not (isinstance(self.start, SupervisorSpec) or callable(self.start)):
            raise InvalidSpec(f"{where}: start must be an async function, an Actor subclass or a SupervisorSpec, "
                              f"not {type(self.start).__name__}", child=self.id, field="start")
        if not isinstance(self.args, (tuple, list)):
            raise InvalidSpec(f"{where}: args must be a tuple, not {type(self.args).__name__}", child=self.id,
                              field="args")
        object.__setattr__(self, "args", tuple(self.args))
        if self.restart not in _RESTARTS:
            raise InvalidSpec(f"{where}: unknown restart {self.restart!r}; use one of {', '.join(_RESTARTS)}",
                              child=self.id, field="restart")
        if self.shutdown is None:
            object.__setattr__(self, "shutdown", "infinity" if self.is_supervisor else 5.0)
        elif self.shutdown not in ("brutal_kill", "infinity") and not (
            isinstance(self.shutdown, (int, float)) and not isinstance(self.shutdown, bool) and self.shutdown >= 0
        ):
            raise InvalidSpec(f"{where}: shutdown must be seconds >= 0, 'brutal_kill' or 'infinity', "
                              f"got {self.shutdown!r}", child=self.id, field="shutdown")
        if self.start_timeout is not None and not (
            isinstance(self.start_timeout, (int, float)) and self.start_timeout > 0
        ):
            raise InvalidSpec(f"{where}: start_timeout must be seconds > 0 or None, got {self.start_timeout!r}",
                              child=self.id, field="start_timeout")
        if self.name is not None and (not isinstance(self.name, str) or not self.name or self.name[0] in "<#"):
            raise InvalidSpec(f"{where}: name must be a non-empty str not starting with '<' or '#'",
                              child=self.id, field="name")

    @property
    def is_supervisor(self) -> bool:
        """True when this child is a nested supervisor."""
        return isinstance(self.start, SupervisorSpec)


@dataclass(frozen=True, kw_only=True)
class SupervisorSpec:
    """A supervisor: its strategy, restart intensity and children (started in order).

    More than ``max_restarts`` restarts within ``period`` seconds make the
    supervisor stop all children and exit with ``"shutdown"``, so its parent
    decides. ``simple_one_for_one`` takes exactly one child: the template for
    children added with ``Supervisor.start_child``.
    """

    strategy: Strategy = "one_for_one"
    max_restarts: int = 3
    period: float = 5.0
    children: tuple[ChildSpec, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.strategy not in _STRATEGIES:
            raise InvalidSpec(f"unknown supervisor strategy {self.strategy!r}; use one of {', '.join(_STRATEGIES)}",
                              field="strategy")
        if isinstance(self.max_restarts, bool) or not isinstance(self.max_restarts, int) or self.max_restarts < 0:
            raise InvalidSpec(f"max_restarts (intensity) must be an int >= 0, got {self.max_restarts!r}",
                              field="max_restarts")
        if isinstance(self.period, bool) or not isinstance(self.period, (int, float)) or self.period <= 0:
            raise InvalidSpec(f"period must be seconds > 0, got {self.period!r}", field="period")
        if not isinstance(self.children, (tuple, list)):
            raise InvalidSpec(f"children must be a list of ChildSpec, not {type(self.children).__name__}",
                              field="children")
        object.__setattr__(self, "children", tuple(self.children))
        seen: set[str] = set()
        for i, child in enumerate(self.children):
            if not isinstance(child, ChildSpec):
                raise InvalidSpec(f"children[{i}] must be a ChildSpec, not {type(child).__name__}",
                                  field=f"children[{i}]")
            if child.id in seen:
                raise InvalidSpec(f"duplicate child id {child.id!r} (children[{i}]); ids must be unique",
                                  child=child.id, field=f"children[{i}]")
            seen.add(child.id)
        names = [c.name for c in self.children if c.name is not None]
        if len(names) != len(set(names)):
            dup = next(n for n in names if names.count(n) > 1)
            raise InvalidSpec(f"two children register the same name {dup!r}", field="children")
        if self.strategy == "simple_one_for_one":
            if len(self.children) != 1:
                raise InvalidSpec("simple_one_for_one needs exactly one child spec (the template), "
                                  f"got {len(self.children)}", field="children")
            if self.children[0].name is not None:
                raise InvalidSpec(f"child {self.children[0].id!r}: a simple_one_for_one template cannot register "
                                  "a name (it would be taken twice)", child=self.children[0].id, field="name")
