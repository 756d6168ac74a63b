"""Where a task's run executes: an owned asyncio task, or a process on a Node.

``RunHost`` is the seam. ``TaskHost`` keeps each run in an asyncio task the
engine owns (cancelled and awaited on ``stop_all``). ``NodeHost`` spawns each
run as a process on the runtime ``Node`` (named ``task:<id>``), so runs are
visible in ``/ps`` and end with the node; killing uses the untrappable
``kill`` exit. Either way ``on_done`` runs exactly once when a run ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Awaitable, Callable, Protocol

from ..errors import NameTaken

__all__ = ["RunHost", "TaskHost", "NodeHost", "make_host"]

log = logging.getLogger(__name__)

Body = Callable[[], Awaitable[None]]
OnMessage = Callable[[str, str, Any], Awaitable[object]]


class RunHost(Protocol):
    def spawn(self, task_id: str, body: Body, *, on_done: Callable[[], None]) -> None:
        """Start ``body()`` for ``task_id``; call ``on_done()`` when it ends, however."""

    def kill(self, task_id: str) -> None:
        """End the run now (lease lost): it is cancelled, nothing more is written."""

    async def stop_all(self, *, timeout: float) -> None:
        """Wait up to ``timeout`` for the runs to end (they were asked to), then kill the rest and wait."""


class _Slot:
    def __init__(self, on_done: Callable[[], None]) -> None:
        self.on_done = on_done
        self.done = asyncio.Event()
        self.handle: Any = None


class _BaseHost:
    def __init__(self) -> None:
        self._slots: dict[str, _Slot] = {}

    async def _guard(self, task_id: str, slot: _Slot, body: Body) -> None:
        try:
            await body()
        finally:
            self._finish(task_id, slot)

    def _finish(self, task_id: str, slot: _Slot) -> None:
        """Mark a run ended; safe to call twice (the body's finally and an exit hook)."""
        if slot.done.is_set():
            return
        if self._slots.get(task_id) is slot:
            del self._slots[task_id]
        slot.done.set()
        slot.on_done()

    async def stop_all(self, *, timeout: float) -> None:
        slots = dict(self._slots)
        if not slots:
            return
        waits = [asyncio.ensure_future(slot.done.wait()) for slot in slots.values()]
        try:
            await asyncio.wait(waits, timeout=timeout)
            for task_id, slot in slots.items():
                if not slot.done.is_set():
                    log.warning("task %r did not stop within %.1fs; killing it", task_id, timeout)
                    self._kill_slot(slot)
            await asyncio.wait(waits, timeout=max(timeout, 1.0))
        finally:
            for wait in waits:
                wait.cancel()
            for wait in waits:
                with contextlib.suppress(asyncio.CancelledError):
                    await wait

    def kill(self, task_id: str) -> None:
        slot = self._slots.get(task_id)
        if slot is not None:
            self._kill_slot(slot)

    def _kill_slot(self, slot: _Slot) -> None:
        raise NotImplementedError


class TaskHost(_BaseHost):
    """Runs each task in an asyncio task owned by the engine."""

    def spawn(self, task_id: str, body: Body, *, on_done: Callable[[], None]) -> None:
        slot = _Slot(on_done)
        self._slots[task_id] = slot
        slot.handle = asyncio.create_task(self._guard(task_id, slot, body), name=f"task:{task_id}")
        # A task cancelled before its first step never enters _guard's finally.
        slot.handle.add_done_callback(lambda _: self._finish(task_id, slot))

    def _kill_slot(self, slot: _Slot) -> None:
        slot.handle.cancel()


class NodeHost(_BaseHost):
    """Runs each task as a process named ``task:<id>`` on a runtime ``Node``.

    Messages sent to a task's process (``process.send(pid, topic, payload)``
    from Lua or Python) are handed to ``on_message(task_id, topic, payload)``
    — the engine persists them as signals for ``ctx.receive_signal``. A
    message sent while no process runs the task is dropped, as in Erlang;
    ``engine.signal`` is the durable path. A process killed before its body
    ever ran has no ``finally`` to report its end, so the node's exit hook
    ends the run too.
    """

    def __init__(self, node: Any, *, on_message: OnMessage | None = None) -> None:
        super().__init__()
        self._node = node
        self._on_message = on_message
        self._by_pid: dict[str, tuple[str, _Slot]] = {}
        self._unhook = node.on_exit(self._exited)

    def spawn(self, task_id: str, body: Body, *, on_done: Callable[[], None]) -> None:
        slot = _Slot(on_done)
        self._slots[task_id] = slot

        async def task_process(proc: Any) -> None:
            forward = asyncio.create_task(self._forward(proc, task_id), name=f"{proc.pid}:mailbox")
            try:
                await self._guard(task_id, slot, body)
            finally:
                forward.cancel()
                await asyncio.wait([forward])  # unlike awaiting it, never eats our own cancellation

        try:
            slot.handle = self._node.spawn(task_process, name=f"task:{task_id}")
        except NameTaken:  # the previous run's process has not quite exited yet
            slot.handle = self._node.spawn(task_process)
        self._by_pid[slot.handle] = (task_id, slot)

    async def _forward(self, proc: Any, task_id: str) -> None:
        while True:
            msg = await proc.receive()
            if self._on_message is None:
                log.warning("task %r: message %r dropped (no signal handler)", task_id, msg.topic)
                continue
            try:
                await self._on_message(task_id, msg.topic, msg.payload)
            except Exception:  # one bad message must not end the mailbox of a running task
                log.exception("task %r: could not persist message %r as a signal", task_id, msg.topic)

    def _exited(self, pid: str, reason: Any) -> None:
        entry = self._by_pid.pop(pid, None)
        if entry is not None:
            self._finish(*entry)

    def _kill_slot(self, slot: _Slot) -> None:
        self._node.exit(slot.handle, "kill")

    async def stop_all(self, *, timeout: float) -> None:
        try:
            await super().stop_all(timeout=timeout)
        finally:
            self._unhook()


def make_host(node: Any, *, on_message: OnMessage | None = None) -> RunHost:
    return TaskHost() if node is None else NodeHost(node, on_message=on_message)
