"""Lua processes: a runtime process whose body drives a Lua coroutine.

``lua_process_body`` is the body a ``process.host`` supervisor (or a service
keeper) spawns.  It loads the ``process.lua`` entry into a fresh sandboxed
state, tells its starter it is up, then resumes the entry's method until it
returns.  Each time the Lua code yields a host request (``receive``,
``select``, ``send``, ``funcs.call`` ...) the body serves it and resumes the
coroutine with the answer, so a waiting Lua process is a suspended coroutine
plus one awaiting Python frame: thousands wait concurrently on one loop.

Limits hold per *slice*: the instruction budget and the wall-clock deadline
are reset after every wait (receive, select, sleep, ``funcs.call``, spawn
...), so a process may live for days while every stretch of computing
between two waits is bounded; quick host ops (``send``, ``pid``, ``monitor``
... ops whose declared effect is not ``wait``) are part of the slice, and a host wait is not
computing and is not bounded.

Exits:

* the method returns -> reason ``"normal"``; its first result is kept (see
  ``LuaProcesses.result_of``) for the ``result.value`` of EXIT events; a
  ``nil, err`` return is an abnormal exit with ``err`` as the reason;
* a raised Lua error or a limit hit -> abnormal exit whose reason is the
  error message (a str), logged as one line;
* exit signals follow the runtime: ``process.terminate`` kills (untrappable),
  a linked abnormal exit kills unless ``trap_links`` is set.

Events (``process.events()``) are made from mailbox messages here:
``DOWN`` -> ``EXIT``; a trapped link ``EXIT`` -> ``LINK_DOWN`` (normal exits
of linked processes are dropped; an ``EXIT`` from the parent asking for
shutdown -> ``CANCEL``); ``__cancel`` -> ``CANCEL``; ``__outdated`` ->
``OUTDATED``.  Topics starting with ``__`` are reserved.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from wippy_agents.errors import ControlSignal, LuaError, UsageError, WippyError
from wippy_agents.lua.context import CallContext
from wippy_agents.lua.driver import Resume, Slicing, run
from wippy_agents.lua.modules.channel import wait as _CHANNEL_WAIT
from wippy_agents.runtime import NORMAL, SHUTDOWN, Down, Exit, Message, Process
from wippy_agents.runtime.signals import reason_text

if TYPE_CHECKING:
    from wippy_agents.lua.processes import LuaProcesses
    from wippy_agents.lua.host import LoadedCode

__all__ = ["LuaProcessCtl", "lua_process_body", "reason_error", "Resume", "TIMER", "CANCEL",
           "OUTDATED", "WATCH"]

log = logging.getLogger(__name__)

TIMER, CANCEL, OUTDATED, WATCH = "__timer", "__cancel", "__outdated", "__watch"
_EVENTS = "events"
_INBOX = "inbox"
_DROP = object()
_ONLY_INBOX = [_INBOX]
_INBOX_POLL = [_INBOX, False]  # channel.wait("inbox", nonblock=false): a blocking receive
MAX_EARLY_TIMERS = 10_000  # fired timers nobody waited for yet (a select that moved on)


def reason_error(reason: Any) -> str:
    """The ``error`` text of an exit reason for Lua: a str or a ``WippyError``'s message as is
    (``"killed"``, ``"boom"``), anything else as ``runtime.reason_text`` says it."""
    if isinstance(reason, str):
        return reason
    if isinstance(reason, WippyError):
        return str(reason)
    return reason_text(reason)


def _is_watch(msg: Message) -> bool:
    return msg.topic == WATCH and msg.sender is None



class _Upgrade(ControlSignal):
    """Raised by the ``process.upgrade`` op to make the driver switch code."""

    def __init__(self, code: LoadedCode, args: list[Any]) -> None:
        super().__init__("upgrade")
        self.code, self.args = code, args


class LuaProcessCtl:
    """What the ``process``/``channel`` ops work on for one running Lua process."""

    # one per live Lua process (10,000 may wait at once): no __dict__, and the
    # rarely used timer/watch containers are made on first use
    __slots__ = ("proc", "pid", "manager", "entry_id", "actor", "host_id", "upgradable", "trap_links",
                 "monitors", "_monitor_keys", "timers", "early", "_timer_seq", "code", "watches")

    def __init__(self, proc: Process, manager: LuaProcesses, entry_id: str, actor: Any, host_id: str | None) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.manager = manager
        self.entry_id = entry_id
        self.actor = actor
        self.host_id = host_id
        self.upgradable = False
        self.trap_links = False
        self.monitors: dict[str, list[str]] = {}  # pid or name -> monitor refs held on it
        self._monitor_keys: dict[str, str] = {}  # ref -> the key in monitors
        self.timers: dict[int, str] = {}  # timer id -> runtime timer ref (pending)
        self.early: set[int] | None = None  # timers that fired while nobody waited on them (rarely used)
        self._timer_seq = 0
        self.code: LoadedCode | None = None  # what runs now (changes on upgrade)
        self.watches: list[Any] | None = None  # registry subscriptions behind registry.watch channels

    # -- options -----------------------------------------------------------------
    def set_options(self, options: Any) -> dict[str, Any]:
        if not isinstance(options, dict):
            raise UsageError("process.set_options: expected a table like {trap_links = true, upgradable = true}")
        unknown = set(options) - {"trap_links", "upgradable"}
        if unknown:
            raise UsageError(f"process.set_options: unknown option(s) {sorted(unknown)!r}; use trap_links, upgradable")
        for key, value in options.items():
            if not isinstance(value, bool):
                raise UsageError(f"process.set_options: {key} must be true or false, got {value!r}")
        if "trap_links" in options:
            self.trap_links = options["trap_links"]
            self.proc.trap_exit = self.trap_links
        if "upgradable" in options:
            self.upgradable = options["upgradable"]
        return self.options()

    def options(self) -> dict[str, Any]:
        return {"trap_links": self.trap_links, "upgradable": self.upgradable}

    # -- monitors and timers -----------------------------------------------------
    def monitor(self, target: str) -> None:
        ref = self.proc.monitor(target)
        self.monitors.setdefault(target, []).append(ref)
        self._monitor_keys[ref] = target  # target may be a name; DOWN names the pid

    def unmonitor(self, target: str) -> bool:
        refs = self.monitors.pop(target, None)
        for ref in refs or ():
            self._monitor_keys.pop(ref, None)
            self.proc.demonitor(ref, flush=True)
        return bool(refs)

    def start_timer(self, delay: float) -> int:
        self._timer_seq += 1
        tid = self._timer_seq
        self.timers[tid] = self.proc.send_after(delay, self.pid, TIMER, tid)
        return tid

    def cancel_timers(self) -> None:
        for ref in self.timers.values():
            self.proc.cancel_timer(ref)
        self.timers.clear()
        self.cancel_watches()

    def cancel_watches(self) -> None:
        """End every registry.watch subscription and drop its queued updates (exit, upgrade)."""
        if not self.watches:
            return  # no subscription: no __watch message can be queued either
        for sub in self.watches:
            sub.cancel()
        self.watches.clear()
        while self.proc.receive_nowait(match=_is_watch) is not None:
            pass

    def watch(self, pattern: str | None) -> str:
        """``registry.watch(pattern)``: subscribe this process; the id its channel waits on.

        Each change becomes a ``__watch`` message that stays in the mailbox
        until the channel is read (updates are never dropped).
        """
        registry = self.manager.registry
        if registry is None:
            raise UsageError("registry.watch: this node has no registry")
        if self.watches is None:
            self.watches = []
        wid = f"w{len(self.watches) + 1}"
        node, pid = self.manager.node, self.pid

        def deliver(version: int, changed: list[str]) -> None:
            if node.is_alive(pid):
                node.send(pid, WATCH, {"id": wid, "version": version, "changed": list(changed)})

        self.watches.append(registry.subscribe(deliver, pattern=pattern))
        return wid

    # -- waiting -----------------------------------------------------------------
    def _classify(self, msg: Message) -> Any:
        topic = msg.topic
        if topic == TIMER and msg.sender == self.pid:
            return msg.payload
        payload = msg.payload
        if topic == WATCH and msg.sender is None and type(payload) is dict:
            return payload.get("id")
        if (topic == "DOWN" and type(payload) is Down) or (topic == "EXIT" and type(payload) is Exit):
            return _EVENTS
        if topic == CANCEL or topic == OUTDATED:
            return _EVENTS
        return _INBOX

    async def wait(self, want: list[Any], nonblock: bool) -> Resume | None:
        """The first mailbox message a source in ``want`` asks for, as ``Resume((i, ...))``; None if
        ``nonblock`` and nothing is there.  Blocks until one arrives (cancellable)."""
        if want == _ONLY_INBOX:
            return await self._wait_inbox(nonblock)
        index: dict[Any, int] = {}
        for i, w in enumerate(want, 1):
            if self.early and w in self.early:  # a timer that fired while we were not looking
                self.early.discard(w)
                return Resume((i, time.time()))
            index.setdefault(w, i)
        classify = self._classify

        def match(msg: Message) -> bool:
            kind = classify(msg)
            # timer messages are always taken: one nobody waits for is noted as fired
            return kind in index or type(kind) is int

        while True:
            if nonblock:
                msg = self.proc.receive_nowait(match=match)
                if msg is None:
                    return None
            else:
                msg = await self.proc.receive(match=match)
            kind = classify(msg)
            if type(kind) is int:
                self.timers.pop(kind, None)
                if kind not in index:
                    if self.early is None:
                        self.early = set()
                    if len(self.early) < MAX_EARLY_TIMERS:
                        self.early.add(kind)
                    continue
                return Resume((index[kind], time.time()))
            if kind == _INBOX:
                return Resume((index[kind], msg.topic, msg.sender, msg.payload))
            if msg.topic == WATCH:
                return Resume((index[kind], {"version": msg.payload["version"], "changed": msg.payload["changed"]}))
            value = self._translate(msg)
            if value is not _DROP:
                return Resume((index[kind], value))

    def _is_inbox(self, msg: Message) -> bool:
        return self._classify(msg) == _INBOX

    async def _wait_inbox(self, nonblock: bool) -> Resume | None:
        # the hot path of a receive loop: no index, no closure
        if nonblock:
            msg = self.proc.receive_nowait(match=self._is_inbox)
            if msg is None:
                return None
        else:
            msg = await self.proc.receive(match=self._is_inbox)
        return Resume((1, msg.topic, msg.sender, msg.payload))

    def _translate(self, msg: Message) -> Any:
        payload = msg.payload
        topic = msg.topic
        if topic == "DOWN":
            key = self._monitor_keys.pop(payload.ref, None)
            refs = self.monitors.get(key) if key is not None else None
            if refs is not None:
                refs.remove(payload.ref)
                if not refs:
                    del self.monitors[key]
            return {"kind": "EXIT", "from": payload.pid, "result": self.manager.result_of(payload.pid, payload.reason)}
        if topic == "EXIT":
            if payload.pid == self.proc.parent and payload.reason == SHUTDOWN:
                return {"kind": "CANCEL", "from": payload.pid, "reason": SHUTDOWN}
            if payload.reason == NORMAL:
                return _DROP
            return {"kind": "LINK_DOWN", "from": payload.pid, "result": {"error": reason_error(payload.reason)}}
        data = payload if isinstance(payload, dict) else {}
        if topic == CANCEL:
            return {"kind": "CANCEL", "from": msg.sender, "reason": data.get("reason")}
        return {"kind": "OUTDATED", "from": msg.sender, "version": data.get("version")}

    async def upgrade(self, args: list[Any]) -> None:
        """``process.upgrade(...)``: load the entry's current code and continue there (same pid, same mailbox)."""
        code = await self.manager.host.load(self.entry_id, actor=self.actor)
        if code.spec.kind != "process.lua":
            raise UsageError(f"process.upgrade: {self.entry_id!r} is now a {code.spec.kind}, not a process.lua")
        raise _Upgrade(code, args)

    # -- running -----------------------------------------------------------------
    async def run(self, code: LoadedCode, args: list[Any]) -> Any:
        """Run ``code``'s method with ``args`` until it returns; follows upgrades.  Returns the first result."""
        while True:
            self.code = code
            try:
                return await self._drive(code, args)
            except _Upgrade as up:
                self.cancel_watches()  # the new code's channels cannot name the old ones
                log.info("lua process %s upgraded to the current %s", self.pid, self.entry_id,
                         extra={"pid": self.pid})
                code, args = up.code, up.args
            except BaseException:
                code = args = None  # a traceback keeps this frame, not the Lua state
                raise

    async def _drive(self, code: LoadedCode, args: list[Any]) -> Any:
        state = code.state
        spec = code.spec
        state.log_extra = {"pid": self.pid, "entry": self.entry_id}
        ctx = CallContext(host=self.manager.host, entry_id=spec.id, actor=code.actor, state=state,
                          extra={"process": self})
        host = self.manager.host
        ops = host.ops
        invoke = host.invoke
        proc = self.proc
        is_inbox = self._is_inbox

        async def handle(op: str, req: list[Any]) -> Any:
            declared = ops.get(op)
            if declared is not None and declared.fn is _CHANNEL_WAIT and req == _INBOX_POLL:
                # a receive loop's hot path: straight to the mailbox (the op would
                # add three coroutine frames to every waiting process)
                msg = await proc.receive(match=is_inbox)
                return Resume((1, msg.topic, msg.sender, msg.payload))
            return await invoke(ctx, op, req)  # its guard, then its handler

        def ends_slice(op: str, req: list[Any]) -> bool:
            # A slice is the computing between two waits: ops declared "wait" end it
            # (a channel.wait poll does not wait); the others continue its budget and deadline.
            declared = ops.get(op)
            return (declared is None or declared.effect == "wait") and not (
                op == "channel.wait" and len(req) > 1 and req[1])

        thread, send = code.thread_args(*args)
        slicing = Slicing(spec.limits.max_instructions, spec.limits.timeout, ends_slice)
        try:
            values = await run(state, thread, send, handle, who=spec.id, workers=self.manager.host.workers,
                               slicing=slicing)
        finally:  # a traceback keeps this frame: drop what holds the Lua runtime
            code = state = ctx = handle = ends_slice = thread = send = None
        value = values[0] if values else None
        if value is None and len(values) > 1 and values[1] is not None:
            err = values[1]
            raise LuaError(err if isinstance(err, str) else repr(err), entry=spec.id)
        return value


async def lua_process_body(proc: Process, manager: LuaProcesses, entry_id: str, args: list[Any],
                           token: str | None = None, host_id: str | None = None) -> None:
    """Process body of a Lua process: load ``entry_id``, ack the start, run it; see the module docstring.

    Its Lua state is released when it ends (back to the host's pool after a
    normal return, else dropped): nothing the process leaves behind -- an
    exit reason, a traceback -- keeps the runtime alive.
    """
    setup = manager.take_setup(token)
    actor = setup.actor if setup is not None else None
    ctl = LuaProcessCtl(proc, manager, entry_id, actor, host_id)
    manager.started(ctl)
    try:
        failure = await _live(proc, manager, ctl, entry_id, args, setup)
    finally:
        manager.stopped(ctl)
        ctl.cancel_timers()
        ctl.code = None
    if failure is not None:
        proc.stop(failure)  # raised here, with no Lua value in this frame


async def _live(proc: Process, manager: LuaProcesses, ctl: LuaProcessCtl, entry_id: str, args: list[Any],
                setup: Any) -> str | None:
    # the process's life up to its exit: None for a normal one, else the reason text
    if setup is not None:
        manager.apply_setup(ctl, setup)
    try:
        code = await manager.host.load(entry_id, actor=ctl.actor)
        if code.spec.kind != "process.lua":
            raise UsageError(f"{entry_id!r} is a {code.spec.kind}, not a process.lua entry", id=entry_id)
    except WippyError as exc:  # one line for the starter (StartError) and the log, no traceback
        log.error("lua process %s (%s) cannot start: %s", proc.pid, entry_id, exc, extra={"pid": proc.pid})
        if setup is not None:
            setup.start_error = str(exc)
        return str(exc)
    proc.init_ack()
    try:
        value = await ctl.run(code, list(args))
    except (LuaError, UsageError) as exc:
        text = str(exc)
        exc.__traceback__ = None  # its frames hold the Lua state
        manager.note_result(proc.pid, {"error": text})
        log.error("lua process %s (%s) failed: %s", proc.pid, entry_id, text, extra={"pid": proc.pid})
        return text
    finally:
        code = None
    manager.note_result(proc.pid, {"value": value})
    # A process that returned leaves its state at rest: the host's pool may hand it to
    # the next spawn or call (fresh env, modules and libraries; see lua/pool.py).
    pool = getattr(manager.host, "pool", None)
    if pool is not None and ctl.code is not None:
        pool.release(ctl.code.state)
    return None
