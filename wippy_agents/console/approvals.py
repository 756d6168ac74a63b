"""Approvals from the console: the security layer's approver, answered by the person at the terminal.

The App runs on its own event-loop thread; the terminal belongs to the main
thread. ``ApprovalDesk.approver`` (installed as ``Security.approver``) runs
on the loop: it queues the request and waits. The main thread, while it waits
for a turn, calls ``desk.serve(ask)`` to show each queued request and put the
answer back. The security layer audits the answer (``approved``/``rejected``).
Closing the desk rejects whatever still waits, so no run hangs on a person
who left.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from concurrent.futures import Future
from typing import Any, Callable

__all__ = ["ApprovalDesk", "parse_answer"]


def parse_answer(text: str | None) -> bool | None:
    """``y``/``yes`` -> True, ``n``/``no``/empty -> False, anything else -> None (ask again)."""
    answer = (text or "").strip().lower()
    if answer in ("y", "yes"):
        return True
    if answer in ("", "n", "no"):
        return False
    return None


class ApprovalDesk:
    """A queue of approval requests between the App's loop thread and the terminal thread."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[Any, Future[bool]]] = queue.Queue()
        self._closed = threading.Event()

    async def approver(self, request: Any) -> bool:
        """The ``Security.approver``: blocks (on the loop, without blocking it) until a person answers."""
        if self._closed.is_set():
            return False
        answer: Future[bool] = Future()
        self._queue.put((request, answer))
        return await asyncio.wrap_future(answer)

    def pending(self) -> bool:
        return not self._queue.empty()

    def serve(self, ask: Callable[[Any], bool], *, timeout: float = 0.0) -> bool:
        """Answer one queued request with ``ask(request)`` (in this thread); False if none came in ``timeout``.

        If ``ask`` raises (Ctrl-C at the question) the request is rejected and the error propagates.
        """
        try:
            request, answer = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
        except queue.Empty:
            return False
        if answer.done():  # the run that asked was cancelled meanwhile
            return True
        try:
            result = bool(ask(request))
        except BaseException:
            _settle(answer, False)
            raise
        _settle(answer, result)
        return True

    def close(self) -> None:
        """Reject every waiting request and any later one."""
        self._closed.set()
        while True:
            try:
                _, answer = self._queue.get_nowait()
            except queue.Empty:
                return
            _settle(answer, False)


def _settle(answer: Future[bool], value: bool) -> None:
    if not answer.done():
        answer.set_result(value)
