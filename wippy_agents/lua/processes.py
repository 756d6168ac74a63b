"""``LuaProcesses``: the node-wide side of Lua processes.

It owns the ``process.host`` supervisors (``simple_one_for_one``), spawns
Lua processes on them, remembers recent exit
results (for the ``result`` of EXIT events), delivers CANCEL with a grace
period, sends OUTDATED to opted-in processes when their entry changes, and
boots ``process.service`` entries (see ``service_entries``).

Host settings (from the entry): ``restart`` (SPEC §4: as with Erlang's
``spawn``, a crashed spawned process is not restarted by default --
``temporary``: its links and monitors tell the spawner, which decides; a
host opts in with ``transient`` (restart after a crash) or ``permanent``
(also after a normal return); ``process.terminate`` victims are never
restarted), ``max_restarts``/``period`` (intensity of an opted-in host,
default 10 in 10 s; past it the supervisor gives up and this manager starts
the host again, empty; a ``temporary`` host never counts restarts, so a
crash loop on it harms no other process), ``shutdown_timeout`` (default
5 s, then kill) and ``max_processes``.  ``strategy`` is always
``simple_one_for_one``: children are independent dynamic processes.

Example (inside a running loop)::

    procs = LuaProcesses(node, lua_host, registry=registry)
    await procs.open()                     # a supervisor per process.host entry
    pid = await procs.spawn("app.workers:handler", "app:processes", {"n": 1})
    await procs.start_services()           # auto_start services, dependency order
    await procs.close()
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import OrderedDict
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any, Awaitable, Callable

from wippy_agents.errors import EntryNotFound, ProcessDead, StartError, UsageError, WippyError
from wippy_agents.lua.limits import parse_duration
from wippy_agents.lua.modules.channel import MODULE as CHANNEL_MODULE
from wippy_agents.lua.modules.process import process_module
from wippy_agents.lua.process_driver import CANCEL, OUTDATED, LuaProcessCtl, lua_process_body, reason_error
from wippy_agents.runtime import KILL, NORMAL, SHUTDOWN, ChildSpec, Supervisor, SupervisorSpec

__all__ = ["LuaProcesses", "Setup", "DEFAULT_CANCEL_GRACE"]

log = logging.getLogger(__name__)

DEFAULT_CANCEL_GRACE = 5.0
MAX_RESULTS = 10_000  # exit results kept for EXIT events of processes that are already gone
_HOST_DEFAULTS = {"restart": "temporary", "max_restarts": 10, "period": 10.0, "shutdown_timeout": 5.0}
_RESTARTS = ("temporary", "transient", "permanent")


@dataclass(kw_only=True)
class Setup:
    """What a spawner hands its child out of band (never copied into Lua): one-shot monitor/link."""

    actor: Any = None
    monitor_by: str | None = None
    link_to: str | None = None
    start_error: str | None = None


class LuaProcesses:
    """Lua processes on one node: hosts, spawning, services, cancel, upgrade notices."""

    def __init__(self, node: Any, host: Any, *, registry: Any = None) -> None:
        self.node = node
        self.host = host
        self.registry = registry
        self.live: dict[str, LuaProcessCtl] = {}
        self.hosts: dict[str, str] = {}  # process.host id -> supervisor pid
        self._host_data: dict[str, Mapping[str, Any]] = {}
        self._counts: dict[str, int] = {}
        self._setups: dict[str, Setup] = {}
        self._actors: dict[str, Any] = {}  # token -> actor, kept for restarts
        self._results: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._graces: dict[str, asyncio.TimerHandle] = {}
        self._waiters: dict[str, asyncio.Future] = {}
        self._tokens = itertools.count(1)
        self.services: dict[str, str] = {}  # process.service id -> keeper pid, in start order
        self._closing = False
        self._service_tasks: set[asyncio.Task] = set()
        self._service_lock = asyncio.Lock()
        host.add_module(CHANNEL_MODULE)
        host.add_module(process_module(self))
        host.processes = self
        self._unhook = node.on_exit(self._on_exit)
        self._sub = registry.subscribe(self._on_change) if registry is not None else None

    # -- hosts -------------------------------------------------------------------
    async def open(self) -> None:
        """Start a supervisor for every ``process.host`` entry in the registry."""
        if self.registry is not None:
            for entry in self.registry.find(kind="process.host"):
                self.start_host(str(entry.id), entry.data)

    def start_host(self, host_id: str, data: Mapping[str, Any] | None = None) -> str:
        """Start (or return) the supervisor of host ``host_id``; ``data`` holds the entry's settings."""
        pid = self.hosts.get(host_id)
        if pid is not None and self.node.is_alive(pid):
            return pid
        data = {**_HOST_DEFAULTS, **{k: v for k, v in (data or {}).items() if v is not None}}
        if data["restart"] not in _RESTARTS:
            raise UsageError(f"process host {host_id!r}: restart must be one of {', '.join(_RESTARTS)}, "
                             f"got {data['restart']!r}", id=host_id)
        template = ChildSpec(id=host_id, start=lua_process_body, args=(self,), restart=data["restart"],
                             shutdown=float(data["shutdown_timeout"]), start_timeout=30.0)
        spec = SupervisorSpec(strategy="simple_one_for_one", max_restarts=int(data["max_restarts"]),
                              period=float(data["period"]), children=(template,))
        pid = self.node.spawn_supervisor(spec)
        self.hosts[host_id] = pid
        self._host_data[host_id] = data
        log.info("process host %s started as %s", host_id, pid, extra={"pid": pid})
        return pid

    def shutdown_timeout(self, host_id: str) -> float:
        return float(self._host_data.get(host_id, _HOST_DEFAULTS)["shutdown_timeout"])

    # -- spawning ----------------------------------------------------------------
    async def spawn(self, entry_id: str, host_id: str, *args: Any, actor: Any = None,
                    parent: LuaProcessCtl | None = None, monitor: bool = False, link: bool = False) -> str:
        """Start ``entry_id`` (a ``process.lua``) on host ``host_id`` with ``args``; returns its pid.

        Blocks until the process has loaded its code.  ``monitor``/``link``
        attach ``parent`` to the child before it runs a single instruction.
        Raises ``EntryNotFound``, ``UsageError`` (wrong kind, host full),
        ``StartError`` (the code does not load), ``PermissionDenied``.
        """
        sup = self.hosts.get(host_id)
        if sup is None or not self.node.is_alive(sup):
            entry = self.registry.get(host_id) if self.registry is not None else None
            if entry is None or entry.kind != "process.host":
                raise EntryNotFound(f"process host {host_id!r} not found: spawn needs a process.host entry id",
                                    id=host_id)
            sup = self.start_host(host_id, entry.data)
        entry = await self.host.services.entry(entry_id, actor=actor)
        kind = entry.get("kind") if type(entry) is dict or isinstance(entry, Mapping) else entry.kind
        if kind != "process.lua":
            raise UsageError(f"cannot spawn {entry_id!r}: it is a {kind}, not a process.lua entry", id=entry_id)
        await self.authorize(actor, "process.spawn", entry_id)
        limit = self._host_data.get(host_id, {}).get("max_processes")
        if limit is not None and self._counts.get(host_id, 0) >= int(limit):
            raise UsageError(f"process host {host_id!r} is full (max_processes={limit})", id=host_id)
        token = f"t{next(self._tokens)}"
        setup = Setup(actor=actor, monitor_by=parent.pid if monitor and parent else None,
                      link_to=parent.pid if link and parent else None)
        self._setups[token] = setup
        self._actors[token] = actor
        via = parent.proc if parent is not None else self.node
        try:
            return await Supervisor.start_child(via, sup, entry_id, list(args), token, host_id, timeout=60.0)
        except StartError:
            self._actors.pop(token, None)
            raise StartError(f"process.spawn {entry_id!r} on {host_id!r}: {setup.start_error or 'failed to start'}",
                             id=entry_id) from None
        finally:
            self._setups.pop(token, None)

    async def call_process(self, entry_id: str, actor: Any, run: Callable[[LuaProcessCtl], Awaitable[Any]]) -> Any:
        """Run ``run(ctl)`` (a function call) in a fresh process that lives for the call (SPEC §5).

        The process exits ``normal`` when the call returns and with the call's
        error when it fails, so processes linked to it are told (and killed
        unless they trap links), monitors get their EXIT; a cancelled caller
        kills it.  Returns what ``run`` returns, raises what it raises.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()

        async def body(proc: Any) -> None:
            ctl = LuaProcessCtl(proc, self, entry_id, actor, None)
            self.started(ctl)
            try:
                try:
                    value = await run(ctl)
                except Exception as exc:  # the caller gets the error; the process exits with it
                    if not done.done():
                        done.set_exception(exc)
                    text = str(exc)
                    self.note_result(proc.pid, {"error": text})
                    proc.stop(text or type(exc).__name__)
                if not done.done():
                    done.set_result(value)
                self.note_result(proc.pid, {"value": value})
            finally:
                self.stopped(ctl)
                ctl.cancel_timers()

        pid = self.node.spawn(body)
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            self.node.exit(pid, KILL)
            raise
        finally:
            if not done.done():
                done.cancel()

    def take_setup(self, token: str | None) -> Setup | None:
        """The child's side of ``spawn``: its one-shot setup (None on a restart)."""
        if token is None:
            return None
        setup = self._setups.get(token)
        if setup is None:
            return Setup(actor=self._actors.get(token)) if token in self._actors else None
        return setup

    def apply_setup(self, ctl: LuaProcessCtl, setup: Setup) -> None:
        if setup.monitor_by is not None:
            watcher = self.live.get(setup.monitor_by)
            if watcher is not None:
                watcher.monitor(ctl.pid)
            setup.monitor_by = None
        if setup.link_to is not None:
            ctl.proc.link(setup.link_to)
            setup.link_to = None

    def started(self, ctl: LuaProcessCtl) -> None:
        self.live[ctl.pid] = ctl
        if ctl.host_id is not None:
            self._counts[ctl.host_id] = self._counts.get(ctl.host_id, 0) + 1

    def stopped(self, ctl: LuaProcessCtl) -> None:
        if self.live.pop(ctl.pid, None) is not None and ctl.host_id is not None:
            self._counts[ctl.host_id] -= 1

    async def authorize(self, actor: Any, action: str, resource: str) -> None:
        check = self.host.services.authorize
        if check is not None:
            await check(actor, action, resource)

    # -- results, cancel, terminate ----------------------------------------------
    def note_result(self, pid: str, result: dict[str, Any]) -> None:
        self._results[pid] = result
        if len(self._results) > MAX_RESULTS:
            self._results.popitem(last=False)

    def result_of(self, pid: str, reason: Any) -> dict[str, Any]:
        """``{value = ...}`` or ``{error = "..."}`` for the exit of ``pid`` with ``reason``."""
        known = self._results.get(pid)
        if known is not None:
            return dict(known)
        return {} if reason == NORMAL else {"error": reason_error(reason)}

    def cancel(self, pid: str, reason: Any = None, *, grace: Any = None, sender: str | None = None) -> bool:
        """Deliver CANCEL to ``pid``; kill it if it is still alive after ``grace`` seconds.  False if dead."""
        if not self.node.is_alive(pid):
            return False
        seconds = DEFAULT_CANCEL_GRACE if grace is None else parse_duration(grace, where="process.cancel grace")
        payload = {"reason": reason if isinstance(reason, str) else "cancelled"}
        sender_proc = self.node.process(sender) if sender is not None else None
        if sender_proc is not None:
            sender_proc.send(pid, CANCEL, payload)
        else:
            self.node.send(pid, CANCEL, payload)
        if pid not in self._graces:
            loop = asyncio.get_running_loop()
            self._graces[pid] = loop.call_later(seconds, self._grace_over, pid)
        return True

    def _grace_over(self, pid: str) -> None:
        self._graces.pop(pid, None)
        if self.node.is_alive(pid):
            log.warning("process %s did not exit within its cancel grace period; terminating it", pid,
                        extra={"pid": pid})
            self.node.exit(pid, KILL)

    async def terminate(self, pid: str) -> bool:
        """Kill ``pid`` (untrappable); False if it was not alive.  A victim is never restarted, also
        on a host that restarts crashed processes (its supervisor is told to drop it first)."""
        if not self.node.is_alive(pid):
            return False
        ctl = self.live.get(pid)
        host_id = ctl.host_id if ctl is not None else None
        sup = self.hosts.get(host_id) if host_id is not None else None
        if sup is None or self._host_data.get(host_id, _HOST_DEFAULTS)["restart"] == "temporary":
            self.node.exit(pid, KILL)
            return True
        # the supervisor reads "drop this child" before the EXIT of the kill, so it does not restart it
        drop = asyncio.ensure_future(Supervisor.terminate_child(self.node, sup, pid, timeout=None))
        await asyncio.sleep(0)  # the request is sent when the task first runs
        self.node.exit(pid, KILL)
        try:
            await drop
        except (UsageError, ProcessDead):  # the child or its host went away meanwhile
            pass
        return True

    # -- node and registry events ------------------------------------------------
    def _on_exit(self, pid: str, reason: Any) -> None:
        handle = self._graces.pop(pid, None)
        if handle is not None:
            handle.cancel()
        fut = self._waiters.pop(pid, None)
        if fut is not None and not fut.done():
            fut.set_result(reason)
        for host_id, sup in list(self.hosts.items()):
            if sup == pid:
                del self.hosts[host_id]
                if self._closing:
                    continue
                log.error("process host %s (%s) stopped: %s; starting it again", host_id, pid,
                          reason_error(reason), extra={"pid": pid})
                try:
                    self.start_host(host_id, self._host_data.get(host_id))
                except UsageError:  # the node is stopping
                    pass

    def _on_change(self, version: int, changed: list[str]) -> None:
        for entry_id in changed:
            entry = self.registry.get(entry_id)
            if (entry is None and entry_id in self.services) or (entry is not None
                                                                 and entry.kind == "process.service"):
                self._follow_service(entry_id, entry)
            if entry is None:
                continue
            if entry.kind == "process.host" and entry_id not in self.hosts:
                self.start_host(entry_id, entry.data)
            elif entry.kind == "process.lua":
                for ctl in list(self.live.values()):
                    if ctl.entry_id == entry_id and ctl.upgradable:
                        self.node.send(ctl.pid, OUTDATED, {"version": version, "id": entry_id})

    # -- services ----------------------------------------------------------------
    async def start_services(self, entries: list[Any] | None = None) -> list[str]:
        """Start the ``auto_start`` services (and what they depend on) in dependency order.

        ``entries`` defaults to the registry's ``process.service`` entries.
        Returns the service ids in start order.  Raises ``ConfigError`` for
        a dependency cycle or an unknown dependency.
        """
        from wippy_agents.lua.service_entries import ServiceSpec, start_order

        if entries is None:
            entries = self.registry.find(kind="process.service") if self.registry is not None else []
        order = start_order([ServiceSpec.from_entry(e) for e in entries])
        for spec in order:
            if spec.id in self.services and self.node.is_alive(self.services[spec.id]):
                continue
            await self._start_service(spec)
        return [spec.id for spec in order]

    async def _start_service(self, spec: Any) -> None:
        from wippy_agents.lua.service_entries import keep_service

        if spec.host not in self.hosts and self.registry is not None:
            host_entry = self.registry.get(spec.host)
            if host_entry is not None:
                self.start_host(spec.host, host_entry.data)
        self.services[spec.id] = await self.node.start(keep_service, self, spec, trap_exit=True, timeout=120.0)

    def _follow_service(self, service_id: str, entry: Any) -> None:
        """A ``process.service`` entry was added, changed or deleted while the node runs (SPEC §4)."""
        if self._closing:
            return
        task = asyncio.get_running_loop().create_task(self._apply_service(service_id, entry))
        self._service_tasks.add(task)
        task.add_done_callback(self._service_tasks.discard)

    async def _apply_service(self, service_id: str, entry: Any) -> None:
        from wippy_agents.lua.service_entries import ServiceSpec

        async with self._service_lock:  # one change at a time, in the order they came
            if self._closing:
                return
            try:
                spec = ServiceSpec.from_entry(entry) if entry is not None else None
            except WippyError as exc:
                log.error("service %s: cannot follow the change: %s", service_id, exc)
                return
            old = self.services.pop(service_id, None)
            if old is not None:
                await self.stop_pid(old, 60.0)
            if spec is None:
                log.info("service %s stopped: its entry was deleted", service_id)
            elif spec.auto_start:
                try:
                    await self._start_service(spec)
                except WippyError as exc:
                    log.error("service %s: cannot start: %s", service_id, exc)
                    return
                log.info("service %s %s", service_id, "upgraded (restarted on its new entry)" if old else "started")

    async def stop_pid(self, pid: str, timeout: float) -> None:
        """Shut ``pid`` down and wait for it; kill it after ``timeout`` seconds."""
        if not self.node.is_alive(pid):
            return
        fut = self._waiters.setdefault(pid, asyncio.get_running_loop().create_future())
        self.node.exit(pid, SHUTDOWN)
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            self.node.exit(pid, KILL)
            await asyncio.wait_for(fut, 5.0)

    async def close(self) -> None:
        """Stop services (reverse start order), then hosts; no timers left behind.  Idempotent."""
        if self._closing:
            return
        self._closing = True
        if self._sub is not None:
            self._sub.cancel()
        for task in list(self._service_tasks):
            task.cancel()
        for service_id, pid in reversed(list(self.services.items())):
            await self.stop_pid(pid, 60.0)
        self.services.clear()
        for host_id, pid in list(self.hosts.items()):
            await self.stop_pid(pid, self.shutdown_timeout(host_id) + 5.0)
        for handle in self._graces.values():
            handle.cancel()
        self._graces.clear()
        self._unhook()
