"""The node: owner of pids, registered names, timers and pending calls.

One ``Node`` per event loop. Pids are strings ``"<node.N>"``; monitor and
timer refs are strings ``"#Ref<node.N>"``; a call's ref is an opaque int —
all plain data that can travel in payloads or into Lua. ``node.pid``
(``"<node.0>"``) is the node itself, the sender of exit signals that come from
outside any process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from types import CoroutineType
from typing import Any, Callable

from wippy_agents.errors import (
    CallTimeout,
    InvalidSpec,
    NameTaken,
    ProcessDead,
    StartError,
    UnknownName,
    UsageError,
)

from .actor import Actor, run_actor
from .clock import SYSTEM_CLOCK, Clock
from .messages import KILL, NORMAL, SHUTDOWN, Message, ProcessInfo, make_message
from .payload import SHARED as _SHARED
from .payload import copy_payload
from .process import Process
from .signals import Signals, reason_text
from .spec import SupervisorSpec
from .supervisor import supervisor_body
from .timers import SLOTS_PER_SECOND, TIMED_OUT, Deadlines

__all__ = ["Node"]

logger = logging.getLogger(__name__)

_Future = asyncio.Future  # the C class: skips loop.create_future's Python frame on the hot path


class Node(Signals):
    """A local actor runtime: spawn processes, name them, send and call, stop it all.

    >>> async def echo(proc):
    ...     while True:
    ...         msg = await proc.receive()
    ...         proc.reply(msg, msg.payload)
    >>> async with Node("local") as node:
    ...     pid = node.spawn(echo)
    ...     assert await node.call(pid, "ping", {"n": 1}) == {"n": 1}

    Create it inside a running event loop (or bind on first use); use it from
    the loop's thread only. ``stop`` (called from outside any process) is the
    way to end it cleanly: every process gets ``shutdown``, laggards are
    killed, every task is awaited.
    """

    def __init__(self, name: str = "local", *, clock: Clock | None = None) -> None:
        if not isinstance(name, str) or not name or any(c in name for c in "<>.# "):
            raise UsageError(f"node name {name!r} must be a non-empty str without '<', '>', '.', '#' or spaces")
        self.name = name
        # where durable code on this node reads time and waits (the kernel's own timers use the loop's clock)
        self.clock: Clock = clock or SYSTEM_CLOCK
        self.pid = f"<{name}.0>"
        self._prefix = f"<{name}."
        self._ref_prefix = f"#Ref<{name}."
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._procs: dict[str, Process] = {}
        self._names: dict[str, str] = {}
        self._seq = 0
        self._ref_seq = 0
        self._calls: dict[str, asyncio.Future] = {}
        self._deadlines: Deadlines | None = None  # call timeouts, created with the loop binding
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._hooks: list[Callable[[str, Any], None]] = []
        self._stopping = False
        self._stopped = False

    async def __aenter__(self) -> Node:
        self._bind()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    def __repr__(self) -> str:
        return f"<Node {self.name!r} processes={len(self._procs)}>"

    def _bind(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def _clock(self) -> Callable[[], float]:
        """The loop's clock; ``time.monotonic`` itself when that is what ``loop.time`` wraps (no Python frame)."""
        loop = self._loop or self._bind()
        return time.monotonic if type(loop).time is asyncio.BaseEventLoop.time else loop.time

    def _wheel(self) -> Deadlines:
        if self._deadlines is None:
            self._deadlines = Deadlines(self._loop or self._bind(), self._clock())
        return self._deadlines

    def _new_ref(self) -> str:
        self._ref_seq += 1
        return f"{self._ref_prefix}{self._ref_seq}>"

    # -- spawning ---------------------------------------------------------------

    def spawn(self, body: Any, *args: Any, name: str | None = None, trap_exit: bool = False) -> str:
        """Start ``body(proc, *args)`` (an async function) or an ``Actor`` subclass; return its pid.

        Never waits: the body runs from the next loop turn. Raises
        ``NameTaken`` if ``name`` is in use, ``UsageError`` if ``body`` is not
        an async function / Actor or the node is stopping.
        """
        return self._spawn(body, args, name=name, trap_exit=trap_exit, parent=self.pid)

    async def start(
        self, body: Any, *args: Any, name: str | None = None, trap_exit: bool = False, timeout: float = 5.0
    ) -> str:
        """Spawn and wait until the process is initialised; return its pid.

        Initialised means: an Actor's ``on_start`` returned, or a function body
        called ``init_ack()`` / its first ``receive()``, or it returned normally.
        Raises ``StartError`` if it exits abnormally first, or takes longer
        than ``timeout`` (then it is killed). The node keeps running either way.
        """
        return await self._start(body, args, name=name, trap_exit=trap_exit, parent=None, link=False,
                                 timeout=timeout)

    def spawn_supervisor(self, spec: SupervisorSpec, *, name: str | None = None) -> str:
        """Spawn a supervisor for ``spec``; returns its pid at once (children start inside it).

        If a child fails to start, the supervisor exits with a ``StartError``
        reason; use ``start_supervisor`` to get that error raised here.
        """
        _check_spec(spec)
        return self._spawn(supervisor_body, (spec,), name=name, trap_exit=True, parent=self.pid)

    async def start_supervisor(self, spec: SupervisorSpec, *, name: str | None = None,
                               timeout: float | None = None) -> str:
        """Spawn a supervisor and wait until all its children have started; return its pid.

        Raises ``StartError`` naming the child that failed (the supervisor has
        then stopped the children it had started), ``InvalidSpec`` for a bad spec.
        """
        _check_spec(spec)
        return await self._start(supervisor_body, (spec,), name=name, trap_exit=True, parent=None, link=False,
                                 timeout=timeout)

    def _spawn(self, body: Any, args: tuple, *, name: str | None, trap_exit: bool, parent: str,
               link: Process | None = None) -> str:
        if self._stopping:
            raise UsageError(f"node {self.name!r} is stopping; cannot spawn {_body_name(body)}")
        if name is not None:
            self._check_name_free(name)
        loop = self._loop or self._bind()
        self._seq += 1
        pid = f"{self._prefix}{self._seq}>"
        proc = Process(self, pid, parent, trap_exit, body)
        if isinstance(body, type) and issubclass(body, Actor):
            coro = run_actor(body, proc, args)
            proc._auto_ack = False
        elif body is supervisor_body:
            coro = body(proc, *args)
            proc._auto_ack = False
        else:
            coro = body(proc, *args) if callable(body) else None
            if type(coro) is not CoroutineType:
                if hasattr(coro, "close"):
                    coro.close()
                raise UsageError(f"cannot spawn {_body_name(body)}: a process body must be an async function "
                                 "`async def body(proc, *args)` or a subclass of runtime.Actor")
        self._procs[pid] = proc
        if name is not None:
            self._names[name] = pid
            proc.name = name
        if link is not None:
            self._link(link, pid)
        task = loop.create_task(coro, name=pid)
        proc._task = task
        task.add_done_callback(proc._done)
        return pid

    async def _start(self, body: Any, args: tuple, *, name: str | None, trap_exit: bool,
                     parent: Process | None, link: bool, timeout: float | None) -> str:
        loop = self._loop or self._bind()
        pid = self._spawn(body, args, name=name, trap_exit=trap_exit,
                          parent=parent.pid if parent else self.pid, link=parent if link else None)
        proc = self._procs[pid]
        ack = proc._ack = loop.create_future()
        handle = None
        if timeout is not None:
            handle = loop.call_at(loop.time() + timeout, _set_if_pending, ack, ("timeout", None))
        try:
            result = await ack
        except asyncio.CancelledError:
            if self._procs.get(pid) is proc:  # the starter is going away: do not leave a half-started child
                self._signal(proc, self.pid, KILL, linked=False)
            raise
        finally:
            if handle is not None:
                handle.cancel()
        if result is None:
            return pid
        what, reason = result
        if what == "timeout":
            if link and parent is not None:
                self._unlink(parent, pid)  # as OTP's proc_lib: the starter is told, not killed
            self._signal(proc, self.pid, KILL, linked=False)
            raise StartError(f"process {pid!r} ({_body_name(body)}) did not finish starting within {timeout}s; "
                             "call proc.init_ack() once it is ready", pid=pid, timeout=timeout)
        if reason == NORMAL:
            return pid
        if isinstance(reason, StartError):  # a supervisor whose child failed: that error already says it all
            raise StartError(reason.message, **reason.details) from reason.__cause__
        err = StartError(f"process {pid!r} ({_body_name(body)}) failed to start: {reason_text(reason)}",
                         pid=pid, reason=reason_text(reason))
        raise err from (reason if isinstance(reason, BaseException) else None)

    # -- names ------------------------------------------------------------------

    def _check_name_free(self, name: str) -> None:
        if not isinstance(name, str) or not name or name.startswith("<") or name.startswith("#"):
            raise UsageError(f"process name {name!r} must be a non-empty str not starting with '<' or '#'")
        holder = self._names.get(name)
        if holder is not None:
            raise NameTaken(f"name {name!r} is already registered to {holder!r}; unregister it or pick another",
                            name=name, pid=holder)

    def register(self, name: str, pid: str) -> None:
        """Register ``pid`` under ``name``. Raises ``NameTaken``, or ``ProcessDead`` for a dead pid."""
        self._check_name_free(name)
        proc = self._procs.get(pid)
        if proc is None or proc._reason is not None:
            raise ProcessDead(f"cannot register {name!r}: process {pid!r} is not alive", pid=pid, name=name)
        if proc.name is not None:
            raise NameTaken(f"process {pid!r} is already registered as {proc.name!r}", pid=pid, name=proc.name)
        self._names[name] = pid
        proc.name = name

    def unregister(self, name: str) -> None:
        """Remove a registered name. Raises ``UnknownName`` if nobody holds it."""
        pid = self._names.pop(name, None)
        if pid is None:
            raise UnknownName(f"no process is registered as {name!r}", name=name)
        proc = self._procs.get(pid)
        if proc is not None:
            proc.name = None

    def whereis(self, name: str) -> str | None:
        """The pid registered as ``name``, or None."""
        return self._names.get(name)

    def is_alive(self, pid: str) -> bool:
        """True while ``pid`` runs and is not exiting."""
        proc = self._procs.get(pid)
        return proc is not None and proc._reason is None

    def _resolve(self, dest: Any) -> Process | None:
        """A live-table lookup by pid or name: None for a dead pid, ``UnknownName`` for a free name."""
        proc = self._procs.get(dest)
        if proc is not None:
            return proc
        if type(dest) is not str:
            raise UnknownName(f"destination must be a pid or a registered name (str), not {type(dest).__name__}")
        if dest.startswith("<"):
            return None
        pid = self._names.get(dest)
        if pid is None:
            raise UnknownName(f"no process is registered as {dest!r}; check the name or start it first", name=dest)
        return self._procs.get(pid)

    # -- messages ---------------------------------------------------------------

    def send(self, dest: str, topic: str, payload: Any = None) -> None:
        """Send from outside any process (``sender`` is None); see ``Process.send``."""
        self._send(None, dest, topic, payload)

    def _send(self, sender: str | None, dest: str, topic: str, payload: Any) -> None:
        if type(topic) is not str:
            raise UsageError(f"message topic must be a str, not {type(topic).__name__}")
        if type(payload) not in _SHARED:
            payload = copy_payload(payload)
        proc = self._procs.get(dest)
        if proc is None:
            proc = self._resolve(dest)
            if proc is None:
                return  # a dead pid: dropped, as in Erlang
        proc.mailbox.put(make_message(topic, payload, sender, None))

    async def call(self, dest: str, topic: str, payload: Any = None, timeout: float | None = 5.0) -> Any:
        """Call a process from outside any process; see ``Process.call``."""
        return await self._call(None, dest, topic, payload, timeout)

    async def _call(self, sender: str | None, dest: str, topic: str, payload: Any, timeout: float | None) -> Any:
        if type(topic) is not str:
            raise UsageError(f"message topic must be a str, not {type(topic).__name__}")
        if type(payload) not in _SHARED:
            payload = copy_payload(payload)
        target = self._procs.get(dest)
        if target is None:
            try:
                target = self._resolve(dest)
            except UnknownName as exc:
                raise ProcessDead(f"call {topic!r} to {dest!r}: {exc}", dest=dest, reason="noproc") from None
            if target is None:
                raise ProcessDead(f"call {topic!r} to {dest!r}: the process is not alive", dest=dest,
                                  reason="noproc")
        if target._reason is not None:
            raise ProcessDead(f"call {topic!r} to {dest!r}: the process is exiting "
                              f"({reason_text(target._reason)})", dest=dest, reason=reason_text(target._reason))
        if sender is not None and target.pid == sender:
            raise UsageError(f"process {sender!r} called itself with {topic!r}; that would never be answered")
        self._ref_seq += 1
        ref = self._ref_seq  # a call's ref is an opaque int: cheaper than a formatted monitor ref
        loop = self._loop
        fut = _Future(loop=loop)
        mons = target._monitors
        if mons is None:
            mons = target._monitors = {}
        mons[ref] = fut  # a monitor whose DOWN is "fail this future": a dead callee never leaves us hanging
        calls = self._calls
        calls[ref] = fut
        msg = make_message(topic, payload, sender, ref)
        box = target.mailbox
        w = box._waiter
        if w is not None and box._topic is None and box._match is None and not w.done():
            box._waiter = None  # the callee waits for anything: hand over directly (Mailbox.put's fast path)
            box.delivered += 1
            box.received += 1
            w.set_result(msg)
        else:
            box.put(msg)
        if timeout is None:
            try:
                return await fut
            finally:
                del calls[ref]
                mons.pop(ref, None)
        wheel = self._deadlines
        if wheel is None:
            wheel = self._wheel()
        i = int((wheel.now() + timeout) * SLOTS_PER_SECOND) + 1
        entries = wheel.slots.get(i)
        if entries is None:  # (not `or`: an empty slot dict is falsy)
            entries = wheel.open(i)
        entries[ref] = fut
        try:
            result = await fut
        finally:
            del entries[ref]
            del calls[ref]
            mons.pop(ref, None)
        if result is TIMED_OUT:
            raise CallTimeout(f"no reply to call {topic!r} from {dest!r} within {timeout}s",
                              dest=dest, topic=topic, timeout=timeout)
        return result

    def reply(self, msg: Message | int, value: Any = None) -> bool:
        """Answer a call given its message (or ``msg.ref``); False if nobody waits any more.

        Never blocks. ``value`` is copied (``InvalidPayload`` if it is not
        data); ``UsageError`` if ``msg`` was sent, not called.
        """
        ref = msg.ref if type(msg) is Message else msg
        fut = self._calls.get(ref)
        if fut is None or fut.done():
            if ref is None:
                raise UsageError(f"cannot reply to {msg.topic!r}: it was sent with send(), not call()")
            return False
        fut.set_result(value if type(value) in _SHARED else copy_payload(value, "reply"))
        return True

    # -- exits, timers, hooks -----------------------------------------------------

    def exit(self, pid: str, reason: Any) -> None:
        """Send exit signal ``reason`` to ``pid`` from the node (``node.pid``); see ``Signals``."""
        self._exit_from(self.pid, pid, reason)

    def _exit_from(self, sender: str, dest: str, reason: Any) -> None:
        if reason is None:
            raise UsageError("an exit reason is required: 'normal', 'shutdown', 'kill' or error data")
        reason = copy_payload(reason, "reason")
        target = self._resolve(dest)
        if target is not None:
            self._signal(target, sender, reason, linked=False)

    def _send_after(self, sender: str | None, delay: float, dest: str, topic: str, payload: Any) -> str:
        loop = self._loop or self._bind()
        payload = copy_payload(payload)
        ref = self._new_ref()
        self._timers[ref] = loop.call_later(delay, self._fire_timer, ref, sender, dest, topic, payload)
        return ref

    def send_after(self, delay: float, dest: str, topic: str, payload: Any = None) -> str:
        """Deliver a message after ``delay`` seconds from outside any process; returns a timer ref."""
        return self._send_after(None, delay, dest, topic, payload)

    def _fire_timer(self, ref: str, sender: str | None, dest: str, topic: str, payload: Any) -> None:
        self._timers.pop(ref, None)
        try:
            self._send(sender, dest, topic, payload)
        except UnknownName:
            logger.warning("timer %s: no process registered as %r; message %r dropped", ref, dest, topic)

    def cancel_timer(self, ref: str) -> bool:
        """Cancel a pending ``send_after``; False if it fired already or never existed."""
        handle = self._timers.pop(ref, None)
        if handle is None:
            return False
        handle.cancel()
        return True

    def on_exit(self, hook: Callable[[str, Any], None]) -> Callable[[], None]:
        """Call ``hook(pid, reason)`` after every process exit; returns a function that removes it."""
        self._hooks.append(hook)
        return lambda: self._hooks.remove(hook) if hook in self._hooks else None

    def processes(self) -> list[ProcessInfo]:
        """A snapshot of every live process, in spawn order."""
        out = []
        for proc in self._procs.values():
            waiting = proc.mailbox._waiter is not None
            out.append(ProcessInfo(
                pid=proc.pid, name=proc.name, parent=proc.parent, body=_body_name(proc._body),
                status="exiting" if proc._reason is not None else ("waiting" if waiting else "running"),
                queued=len(proc.mailbox), links=tuple(sorted(proc._links or ())),
                monitored_by=sum(1 for w in (proc._monitors or {}).values() if type(w) is str),
                trap_exit=proc.trap_exit,
            ))
        return out

    def process(self, pid: str) -> Process | None:
        """The live ``Process`` handle for ``pid`` (for introspection and tests), or None."""
        return self._procs.get(pid)

    # -- stopping ---------------------------------------------------------------

    async def stop(self, timeout: float = 5.0) -> None:
        """Shut every process down and wait for all of them; idempotent.

        Top-level processes (not linked to a live parent) get ``shutdown``
        from ``node.pid`` in reverse spawn order; a top-level supervisor is
        waited for (it stops its own tree, in reverse) before the next one is
        signalled, so trees stop in the reverse of their start order. Whatever
        is still running after ``timeout`` seconds is killed. Blocks until
        every process task has finished.
        """
        if self._stopped:
            return
        self._stopping = True
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        loop = self._loop or self._bind()
        deadline = loop.time() + timeout
        for proc in reversed(list(self._procs.values())):
            if self._procs.get(proc.pid) is not proc:
                continue  # already gone with an earlier tree
            parent = self._procs.get(proc.parent) if proc.parent else None
            if parent is None or proc.parent not in (proc._links or ()):
                self._signal(proc, self.pid, SHUTDOWN, linked=False)
                if proc._body is supervisor_body and proc._task is not None:
                    await asyncio.wait([proc._task], timeout=max(0.0, deadline - loop.time()))
        if not await self._wait_all(max(0.0, deadline - loop.time())):
            for proc in list(self._procs.values()):
                self._signal(proc, self.pid, KILL, linked=False)
            if not await self._wait_all(timeout):
                logger.error("node %s: processes ignored kill and were abandoned: %s",
                             self.name, ", ".join(self._procs))
        if self._deadlines is not None:
            self._deadlines.close()  # every callee is gone, so every call has already failed
        self._stopped = True

    async def _wait_all(self, timeout: float) -> bool:
        loop = self._loop or self._bind()
        deadline = loop.time() + timeout
        while self._procs:
            left = deadline - loop.time()
            if left <= 0:
                return False
            # done-callbacks (registered first) run before asyncio.wait wakes us
            await asyncio.wait([p._task for p in self._procs.values()], timeout=left)
        return True


def _check_spec(spec: Any) -> None:
    if not isinstance(spec, SupervisorSpec):
        raise InvalidSpec(f"a supervisor needs a SupervisorSpec, not {type(spec).__name__}")


def _set_if_pending(fut: asyncio.Future, value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _body_name(body: Any) -> str:
    return getattr(body, "__qualname__", None) or repr(body)

