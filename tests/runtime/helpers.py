"""Test helpers for the kernel: a probe process, exit recording, bounded waits."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from wippy_agents.runtime import Message, Node

WAIT = 2.0  # upper bound for anything that should happen "soon"; never a timing assertion


class Probe:
    """A process that hands every message it receives to the test, in order."""

    def __init__(self, node: Node, *, trap_exit: bool = False, name: str | None = None) -> None:
        self.node = node
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.pid = node.spawn(self._body, trap_exit=trap_exit, name=name)
        self.proc = node.process(self.pid)

    async def _body(self, proc) -> None:
        while True:
            msg = await proc.receive()
            if msg.topic == "EXIT" and msg.payload.pid == proc.parent:  # like gen_server: the parent stops us
                proc.stop(msg.payload.reason)
            self.inbox.put_nowait(msg)

    async def next(self, timeout: float = WAIT) -> Message:
        return await asyncio.wait_for(self.inbox.get(), timeout)

    async def settle(self) -> list[Message]:
        """Let the loop run a few turns, then return whatever arrived (for 'nothing arrives' checks)."""
        for _ in range(20):
            await asyncio.sleep(0)
        out = []
        while not self.inbox.empty():
            out.append(self.inbox.get_nowait())
        return out


class Exits:
    """Records every exit on a node; ``await exits.of(pid)`` returns its reason."""

    def __init__(self, node: Node) -> None:
        self.reasons: dict[str, Any] = {}
        self.order: list[str] = []
        self._waiting: dict[str, asyncio.Future] = {}
        node.on_exit(self._hook)

    def _hook(self, pid: str, reason: Any) -> None:
        self.reasons[pid] = reason
        self.order.append(pid)
        fut = self._waiting.pop(pid, None)
        if fut is not None and not fut.done():
            fut.set_result(reason)

    async def of(self, pid: str, timeout: float = WAIT) -> Any:
        if pid in self.reasons:
            return self.reasons[pid]
        fut = self._waiting.setdefault(pid, asyncio.get_running_loop().create_future())
        return await asyncio.wait_for(asyncio.shield(fut), timeout)


async def until(cond: Callable[[], bool], timeout: float = WAIT) -> None:
    """Wait until ``cond()`` holds, polling each loop turn; fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {cond}")
        await asyncio.sleep(0.001)


async def idle(proc) -> None:
    """A body that waits forever."""
    await proc.receive("never-sent")


async def echo(proc) -> None:
    """Replies to every call with its payload; ``crash`` crashes, ``stop`` stops with the payload."""
    while True:
        msg = await proc.receive()
        if msg.topic == "crash":
            raise RuntimeError(msg.payload or "boom")
        if msg.topic == "stop":
            proc.stop(msg.payload)
        if msg.ref is not None:
            proc.reply(msg, msg.payload)
