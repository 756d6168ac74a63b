"""The handle a process body gets: its pid, mailbox, and the kernel operations.

A ``Process`` is created by ``Node.spawn``; user code never constructs one.
Everything that touches another process goes through the node, which owns the
process table, so these methods are thin. Per-process state that most
processes never use (links, monitors, pending starts) is created lazily, which
keeps an idle process small.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Coroutine, NoReturn

from wippy_agents.errors import ProcessExit

from .mailbox import Mailbox, Match, Topic
from .messages import NORMAL, Message
from .payload import SHARED as _SHARED
from .payload import copy_payload

if TYPE_CHECKING:
    import asyncio

    from .node import Node

__all__ = ["Process"]


class Process:
    """One running process as seen from its own body.

    >>> async def echo(proc):
    ...     while True:
    ...         msg = await proc.receive()
    ...         proc.reply(msg, msg.payload)

    Methods that wait return an awaitable (``await proc.receive()``,
    ``await proc.call(...)``, ``await proc.start_link(...)``); everything else
    returns at once.
    """

    __slots__ = (
        "pid", "node", "name", "trap_exit", "parent", "mailbox",
        "_task", "_body", "_links", "_monitors", "_watching", "_reason", "_ack", "_auto_ack",
    )

    def __init__(self, node: Node, pid: str, parent: str | None, trap_exit: bool, body: Any) -> None:
        self.pid = pid
        self.node = node
        self.name: str | None = None
        self.trap_exit = trap_exit
        self.parent = parent
        self.mailbox = Mailbox(pid)
        self._task: asyncio.Task | None = None
        self._body = body
        self._links: set[str] | None = None
        self._monitors: dict[str, Any] | None = None  # ref -> watcher pid, or a call's reply future
        self._watching: dict[str, str] | None = None  # ref -> pid this process monitors
        self._reason: Any = None  # set once an exit signal (or the end) has been applied
        self._ack: asyncio.Future | None = None  # set while a starter waits for init_ack
        self._auto_ack = True  # function bodies count as started at their first receive; Actors ack themselves

    def __repr__(self) -> str:
        return f"<Process {self.pid} name={self.name!r}>"

    # -- messages ---------------------------------------------------------------

    def send(self, dest: str, topic: str, payload: Any = None) -> None:
        """Send ``(topic, payload)`` to a pid or registered name; never blocks.

        ``payload`` is deep-copied now (``InvalidPayload`` if it is not data).
        A dead pid drops the message silently, as in Erlang; a name nobody
        registered raises ``UnknownName``.
        """
        self.node._send(self.pid, dest, topic, payload)

    def receive(self, topic: Topic = None, timeout: float | None = None, *,
                match: Match = None) -> Coroutine[Any, Any, Message]:
        """Wait for the first message matching ``topic`` (str, tuple of str, None = any): ``await`` it.

        Messages that do not match stay queued in order. ``match`` further
        filters on the whole ``Message``. Raises ``ReceiveTimeout`` after
        ``timeout`` seconds (None waits forever; 0 only looks at the queue).
        A function body's first ``receive`` also tells a waiting starter that
        it is initialised (see ``init_ack``). (A plain method returning the
        mailbox coroutine: one coroutine frame less per message.)
        """
        if self._ack is not None and self._auto_ack:
            self.init_ack()
        return self.mailbox.get(topic, match, timeout)

    def receive_nowait(self, topic: Topic = None, *, match: Match = None) -> Message | None:
        """The first queued matching message, or None; never waits."""
        return self.mailbox.get_nowait(topic, match)

    def call(self, dest: str, topic: str, payload: Any = None,
             timeout: float | None = 5.0) -> Coroutine[Any, Any, Any]:
        """Send a request and wait for its reply: ``await proc.call(...)``.

        The callee answers with ``proc.reply(msg, value)``; the reply goes to a
        private future, never through this mailbox. Raises ``ProcessDead`` at
        once if ``dest`` is dead, exiting, unknown, or dies before replying;
        ``CallTimeout`` once ``timeout`` seconds have passed (checked on a 10 ms
        wheel: never early, at most one slot late); ``InvalidPayload`` for a
        payload that is not data.
        """
        return self.node._call(self.pid, dest, topic, payload, timeout)

    def reply(self, msg: Message | int, value: Any = None) -> bool:
        """Answer a call (``msg`` or its ``ref``). False if the caller is gone or timed out.

        Never blocks; ``value`` is copied (``InvalidPayload`` if not data);
        ``UsageError`` if ``msg`` was sent, not called.
        """
        ref = msg.ref if type(msg) is Message else msg
        fut = self.node._calls.get(ref)
        if fut is None or fut.done():
            return self.node.reply(msg, value)  # the slow path: raises or says False
        fut.set_result(value if type(value) in _SHARED else copy_payload(value, "reply"))
        return True

    def send_after(self, delay: float, dest: str, topic: str, payload: Any = None) -> str:
        """Deliver a message after ``delay`` seconds; returns a timer ref for ``cancel_timer``."""
        return self.node._send_after(self.pid, delay, dest, topic, payload)

    def cancel_timer(self, ref: str) -> bool:
        """Cancel a ``send_after`` timer; False if it already fired or never existed."""
        return self.node.cancel_timer(ref)

    # -- processes --------------------------------------------------------------

    def spawn(self, body: Any, *args: Any, name: str | None = None, trap_exit: bool = False) -> str:
        """Start a child (not linked) and return its pid; the body starts on the next loop turn."""
        return self.node._spawn(body, args, name=name, trap_exit=trap_exit, parent=self.pid)

    def spawn_linked(self, body: Any, *args: Any, name: str | None = None, trap_exit: bool = False) -> str:
        """Like ``spawn`` but linked to this process before the child runs (Erlang ``spawn_link``)."""
        return self.node._spawn(body, args, name=name, trap_exit=trap_exit, parent=self.pid, link=self)

    def spawn_monitored(
        self, body: Any, *args: Any, name: str | None = None, trap_exit: bool = False
    ) -> tuple[str, str]:
        """Like ``spawn`` plus a monitor set up before the child runs; returns ``(pid, ref)``."""
        pid = self.node._spawn(body, args, name=name, trap_exit=trap_exit, parent=self.pid)
        return pid, self.node._monitor(self, pid)

    async def start_link(
        self, body: Any, *args: Any, name: str | None = None, trap_exit: bool = False, timeout: float = 5.0
    ) -> str:
        """Spawn a linked child and wait until it is initialised (see ``Node.start``).

        Raises ``StartError`` if it exits abnormally before ``init_ack`` (the
        EXIT/link effects of that exit still apply) or takes longer than ``timeout``.
        """
        return await self.node._start(body, args, name=name, trap_exit=trap_exit, parent=self, link=True,
                                      timeout=timeout)

    def init_ack(self) -> None:
        """Tell the starter waiting in ``start``/``start_link`` that initialisation is done.

        Called automatically by a function body's first ``receive``, after an
        Actor's ``on_start``, and by a supervisor once all its children run;
        call it yourself before long work that does not receive.
        """
        ack = self._ack
        if ack is not None:
            self._ack = None
            if not ack.done():
                ack.set_result(None)

    def link(self, pid: str) -> None:
        """Link to ``pid`` (both ways). A dead pid sends this process an exit signal ``noproc``."""
        self.node._link(self, pid)

    def unlink(self, pid: str) -> None:
        """Remove a link (both ways); no-op if there is none."""
        self.node._unlink(self, pid)

    def monitor(self, pid: str) -> str:
        """Monitor a pid or name; returns a ref. A later exit sends ``DOWN`` once per monitor.

        Monitoring a dead pid (or an unregistered name) delivers ``DOWN`` with reason ``noproc`` at once.
        """
        return self.node._monitor(self, pid)

    def demonitor(self, ref: str, *, flush: bool = False) -> bool:
        """Remove a monitor; with ``flush`` also drop its DOWN if already queued. False if unknown."""
        return self.node._demonitor(self, ref, flush)

    def exit(self, pid: str, reason: Any) -> None:
        """Send an exit signal to ``pid`` (Erlang ``exit/2``), from this process."""
        self.node._exit_from(self.pid, pid, reason)

    def stop(self, reason: Any = NORMAL) -> NoReturn:
        """End this process now with ``reason`` (Erlang ``exit/1``): raises ``ProcessExit``."""
        raise ProcessExit(f"process {self.pid!r} stopped with reason {reason!r}", pid=self.pid, reason=reason)

    def register(self, name: str) -> None:
        """Register this process under ``name`` (``NameTaken`` if in use)."""
        self.node.register(name, self.pid)

    @property
    def links(self) -> frozenset[str]:
        """Pids linked to this process."""
        return frozenset(self._links or ())

    def _done(self, task: asyncio.Task) -> None:
        self.node._on_done(self, task)
