"""Delivery of ``registry.changed`` to subscribers, in version order, after the
change is live.

Sync callbacks run inline (they must not block). An async callback gets its
own ordered queue and worker task owned by the registry (no orphan tasks;
``close`` cancels them). A process subscriber is sent a message through its
node; a dead process is dropped.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any, Callable

from ..errors import ProcessDead, WippyError
from .ids import id_matches, is_pattern

__all__ = ["Subscriber", "Subscribers", "TOPIC"]

log = logging.getLogger(__name__)

TOPIC = "registry.changed"


class Subscriber:
    """One subscription; ``cancel()`` ends it."""

    def __init__(self, owner: "Subscribers", callback: Callable[..., Any], pattern: str | None) -> None:
        self._owner = owner
        self.callback = callback
        self.pattern = pattern
        self._queue: asyncio.Queue[tuple[int, list[str]]] | None = None
        self._task: asyncio.Task | None = None
        self._async = inspect.iscoroutinefunction(callback) or inspect.iscoroutinefunction(
            getattr(callback, "__call__", None)
        )

    def cancel(self) -> None:
        self._owner.remove(self)
        if self._task is not None:
            self._task.cancel()

    __call__ = cancel  # ``unsubscribe = reg.subscribe(cb); unsubscribe()``

    def deliver(self, version: int, changed: list[str]) -> None:
        if self.pattern is not None:
            changed = [c for c in changed if (id_matches(c, self.pattern) if is_pattern(self.pattern) else c == self.pattern)]
            if not changed:
                return
        if not self._async:
            try:
                self.callback(version, changed)
            except WippyError as exc:
                log.warning("registry subscriber failed", extra={"version": version, "error": str(exc)})
            except Exception:  # noqa: BLE001 - one subscriber must not break the registry
                log.exception("registry subscriber raised", extra={"version": version})
            return
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._worker(), name=f"registry-subscriber-{id(self):x}")
        self._queue.put_nowait((version, changed))

    async def _worker(self) -> None:
        assert self._queue is not None
        while True:
            version, changed = await self._queue.get()
            try:
                await self.callback(version, changed)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - logged; delivery goes on
                log.exception("registry subscriber raised", extra={"version": version})

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                if asyncio.current_task() is not None and asyncio.current_task().cancelling():
                    raise


class Subscribers:
    """The subscriber list of one registry."""

    def __init__(self) -> None:
        self._subs: list[Subscriber] = []

    def add(self, callback: Callable[..., Any], *, pattern: str | None = None) -> Subscriber:
        sub = Subscriber(self, callback, pattern)
        self._subs.append(sub)
        return sub

    def add_pid(self, node: Any, pid: str, *, pattern: str | None = None) -> Subscriber:
        """Send ``("registry.changed", {"version", "changed"})`` to ``pid`` through ``node``."""
        holder: list[Subscriber] = []

        def send(version: int, changed: list[str]) -> None:
            try:
                _send(node, pid, TOPIC, {"version": version, "changed": list(changed)})
            except WippyError as exc:  # ProcessDead / UnknownName: the subscriber is gone
                log.debug("dropping registry subscriber", extra={"pid": pid, "error": str(exc)})
                holder[0].cancel()

        sub = self.add(send, pattern=pattern)
        holder.append(sub)
        return sub

    def remove(self, sub: Subscriber) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    def publish(self, version: int, changed: list[str]) -> None:
        for sub in list(self._subs):
            sub.deliver(version, changed)

    async def aclose(self) -> None:
        for sub in list(self._subs):
            await sub.aclose()
        self._subs.clear()

    def __len__(self) -> int:
        return len(self._subs)


def _send(node: Any, pid: str, topic: str, payload: dict[str, Any]) -> None:
    """The one place that talks to the runtime (kept tiny while the kernel grows).

    Raises ``ProcessDead`` when the node says the process is gone (the
    subscription is then dropped).
    """
    is_alive = getattr(node, "is_alive", None)
    if is_alive is not None and not is_alive(pid):
        raise ProcessDead(f"process {pid!r} is not alive", pid=pid)
    node.send(pid, topic, payload)
