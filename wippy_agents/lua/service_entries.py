"""``process.service`` entries: started at boot, in dependency order, kept alive with backoff.

Each service gets a *keeper*: a small Python process (trapping exits) that
starts the service's Lua process linked to itself and applies the restart
policy when it exits:

* ``permanent`` restarts after any exit, ``transient`` only after an
  abnormal one, ``temporary`` never;
* before restart *k* within ``period`` seconds it waits
  ``backoff * 2**(k-1)`` seconds (capped at ``max_backoff``) — a crash loop
  does not spin the node;
* more than ``max_restarts`` restarts within ``period``: the keeper gives
  up on the service (one error line) and stays idle until shutdown.

A service that fails to start at boot is logged and retried the same way;
the services that depend on it are started anyway (``depends_on`` orders
the start, it is not a health check).  On shutdown the keeper stops its
Lua process (``shutdown``, then ``kill`` after the host's
``shutdown_timeout``); ``LuaProcesses.close`` stops keepers in reverse start
order.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Mapping

from wippy_agents.errors import ConfigError, ReceiveTimeout, StartError, UsageError
from wippy_agents.lua.process_driver import lua_process_body, reason_error
from wippy_agents.runtime import KILL, SHUTDOWN, Exit, Process
from wippy_agents.runtime.messages import is_abnormal
from wippy_agents.runtime.backoff import backoff_delay

if TYPE_CHECKING:
    from wippy_agents.lua.processes import LuaProcesses

__all__ = ["ServiceSpec", "start_order", "keep_service"]

log = logging.getLogger(__name__)

_NO_ARGS = object()


@dataclass(frozen=True, kw_only=True)
class ServiceSpec:
    """One ``process.service`` entry, checked.

    >>> ServiceSpec.from_entry({"id": "app:svc", "kind": "process.service",
    ...     "data": {"process": "worker", "host": "app:processes"}}).process
    'app:worker'
    """

    id: str
    process: str
    host: str
    args: Any = _NO_ARGS
    auto_start: bool = True
    depends_on: tuple[str, ...] = ()
    policy: Literal["permanent", "transient", "temporary"] = "permanent"
    max_restarts: int = 5
    period: float = 60.0
    backoff: float = 0.5
    max_backoff: float = 30.0

    @classmethod
    def from_entry(cls, entry: Any) -> ServiceSpec:
        if isinstance(entry, Mapping):
            entry_id, data = str(entry["id"]), entry.get("data") or {}
        else:
            entry_id, data = str(entry.id), entry.data
        ns = entry_id.rpartition(":")[0]

        def ref(value: Any, field: str) -> str:
            if not isinstance(value, str) or not value:
                raise ConfigError(f"service {entry_id!r}: {field} must be an entry id, got {value!r}", id=entry_id)
            return value if ":" in value else f"{ns}:{value}"

        restart = data.get("restart") or {}
        policy = restart.get("policy", "permanent")
        if policy not in ("permanent", "transient", "temporary"):
            raise ConfigError(f"service {entry_id!r}: restart.policy must be permanent, transient or temporary, "
                              f"got {policy!r}", id=entry_id)
        return cls(
            id=entry_id,
            process=ref(data.get("process"), "process"),
            host=ref(data.get("host"), "host"),
            args=data["args"] if "args" in data else _NO_ARGS,
            auto_start=bool(data.get("auto_start", True)),
            depends_on=tuple(ref(d, "depends_on") for d in data.get("depends_on") or ()),
            policy=policy,
            max_restarts=int(restart.get("max_restarts", cls.max_restarts)),
            period=float(restart.get("period", cls.period)),
            backoff=float(restart.get("backoff", cls.backoff)),
            max_backoff=float(restart.get("max_backoff", cls.max_backoff)),
        )

    def delay(self, attempt: int) -> float:
        """Seconds to wait before restart number ``attempt`` (1-based) within the period."""
        return backoff_delay(max(0, attempt - 1), base=self.backoff, cap=self.max_backoff, jitter=0)


def start_order(specs: list[ServiceSpec]) -> list[ServiceSpec]:
    """The ``auto_start`` services plus what they depend on, dependencies first (ties by id).

    Raises ``ConfigError`` naming an unknown dependency or a cycle.
    """
    by_id = {s.id: s for s in specs}
    wanted: dict[str, ServiceSpec] = {}
    stack = [s for s in specs if s.auto_start]
    while stack:
        spec = stack.pop()
        if spec.id in wanted:
            continue
        wanted[spec.id] = spec
        for dep in spec.depends_on:
            if dep not in by_id:
                raise ConfigError(f"service {spec.id!r} depends on {dep!r}, which is not a process.service entry",
                                  id=spec.id)
            stack.append(by_id[dep])
    order: list[ServiceSpec] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(spec: ServiceSpec, path: tuple[str, ...]) -> None:
        mark = state.get(spec.id)
        if mark == 2:
            return
        if mark == 1:
            cycle = path[path.index(spec.id):] + (spec.id,)
            raise ConfigError(f"services depend on each other in a cycle: {' -> '.join(cycle)}", id=spec.id)
        state[spec.id] = 1
        for dep in sorted(spec.depends_on):
            visit(wanted[dep], path + (spec.id,))
        state[spec.id] = 2
        order.append(spec)

    for service_id in sorted(wanted):
        visit(wanted[service_id], ())
    return order


async def keep_service(proc: Process, manager: LuaProcesses, spec: ServiceSpec) -> None:
    """Keeper process body (spawned with ``trap_exit=True``); see the module docstring."""
    restarts: deque[float] = deque()
    loop = asyncio.get_running_loop()
    child = await _start(proc, manager, spec)
    proc.init_ack()
    while True:
        if child is not None:
            msg = await proc.receive("EXIT", match=lambda m: type(m.payload) is Exit)
            ex = msg.payload
            if ex.pid == proc.parent:
                await _stop(proc, manager, spec, child)
                proc.stop(ex.reason)
            if ex.pid != child:
                continue
            reason: Any = ex.reason
            child = None
            if spec.policy == "temporary" or (spec.policy == "transient" and not is_abnormal(reason)):
                log.info("service %s exited (%s); not restarted (%s)", spec.id, reason_error(reason), spec.policy,
                         extra={"pid": proc.pid})
                await _idle(proc)
        now = loop.time()
        restarts.append(now)
        while restarts and restarts[0] <= now - spec.period:
            restarts.popleft()
        if len(restarts) > spec.max_restarts:
            log.error("service %s: more than %d restarts in %gs; giving up", spec.id, spec.max_restarts, spec.period,
                      extra={"pid": proc.pid})
            await _idle(proc)
        delay = spec.delay(len(restarts))
        log.warning("service %s: restarting in %gs", spec.id, delay, extra={"pid": proc.pid})
        try:
            msg = await proc.receive("EXIT", delay, match=lambda m: type(m.payload) is Exit
                                     and m.payload.pid == proc.parent)
            proc.stop(msg.payload.reason)
        except ReceiveTimeout:
            pass
        child = await _start(proc, manager, spec)


async def _start(proc: Process, manager: LuaProcesses, spec: ServiceSpec) -> str | None:
    args = [] if spec.args is _NO_ARGS else [spec.args]
    try:
        pid = await proc.start_link(lua_process_body, manager, spec.process, args, None, spec.host, timeout=60.0)
    except (StartError, UsageError) as exc:
        log.error("service %s failed to start: %s", spec.id, exc, extra={"pid": proc.pid})
        return None
    log.info("service %s started: %s as %s", spec.id, spec.process, pid, extra={"pid": pid})
    return pid


async def _stop(proc: Process, manager: LuaProcesses, spec: ServiceSpec, child: str) -> None:
    def from_child(m: Any) -> bool:
        return type(m.payload) is Exit and m.payload.pid == child

    proc.exit(child, SHUTDOWN)
    try:
        await proc.receive("EXIT", manager.shutdown_timeout(spec.host), match=from_child)
        return
    except ReceiveTimeout:
        log.warning("service %s ignored shutdown; killing it", spec.id, extra={"pid": child})
    proc.exit(child, KILL)
    try:
        await proc.receive("EXIT", 5.0, match=from_child)
    except ReceiveTimeout:
        log.error("service %s survived kill; abandoning it", spec.id, extra={"pid": child})


async def _idle(proc: Process) -> None:
    """Wait for the shutdown from the parent, then stop with its reason (never returns)."""
    msg = await proc.receive("EXIT", match=lambda m: type(m.payload) is Exit and m.payload.pid == proc.parent)
    proc.stop(msg.payload.reason)
