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
import dataclasses
import inspect
import logging
import queue
import threading
from concurrent.futures import Future
from typing import Any, Callable, Mapping

from ..errors import WippyError

__all__ = ["ApprovalDesk", "parse_answer", "example_results", "request_task", "with_example_results"]

log = logging.getLogger(__name__)


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

    def reject_where(self, predicate: Callable[[Any], bool]) -> int:
        """Reject the waiting requests ``predicate`` picks (those of a cancelled turn); returns how many."""
        keep, rejected = [], 0
        while True:
            try:
                request, answer = self._queue.get_nowait()
            except queue.Empty:
                break
            if predicate(request):
                _settle(answer, False)
                rejected += 1
            else:
                keep.append((request, answer))
        for item in keep:
            self._queue.put(item)
        return rejected

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


async def example_results(app: Any, entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Run a proposed Lua tool's examples now, side-effect free and within the example limits.

    Returns ``[{input, expected, got | error, ok}]`` so the person sees what the
    code really returns, not only what its author claims. Never raises for a
    failing example (that is what the person should see).
    """
    from ..agents.selfmod_check import EXAMPLE_LIMITS, SIDE_EFFECTS, same
    from ..security import Actor

    data = dict(entry.get("data") or {})
    examples = data.get("examples")
    if entry.get("kind") != "function.lua" or not isinstance(examples, list) or not examples:
        return []
    policies = [str(p) for p in data.get("run_as_policies") or ()]
    actor = app.security.run_as(Actor.agent("console:approval", policies), entry).without(SIDE_EFFECTS)
    probe = {**entry, "data": {**data, "limits": dict(EXAMPLE_LIMITS)}}
    out: list[dict[str, Any]] = []
    for example in examples:
        if not isinstance(example, Mapping):
            continue
        row: dict[str, Any] = {"input": example.get("input"), "expected": example.get("output")}
        try:
            got = await app.lua.call_function(probe, example.get("input"), actor=actor)
            row.update(got=got, ok=same(example.get("output"), got))
        except WippyError as exc:
            row.update(error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__, ok=False)
        out.append(row)
    return out


def request_task(request: Any) -> str | None:
    """The task an approval request comes from: actor labels read ``agent:ns:name/<task id>``."""
    label = str(getattr(request, "actor", "") or "").split(" ", 1)[0]
    return label.partition("/")[2] or None


def with_example_results(app: Any, approver: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Wrap ``approver``: a request of a cancelled run is refused without asking, and a request to
    write a Lua tool carries its examples' real results."""

    async def ask(request: Any) -> bool:
        task_id = request_task(request)
        if task_id is not None:
            try:
                if (await app.tasks.get(task_id)).status == "cancelled":
                    return False  # its turn was cancelled: nobody is waiting for this answer
            except WippyError:
                pass
        entry = (getattr(request, "details", None) or {}).get("entry")
        if isinstance(entry, Mapping):
            try:
                results = await example_results(app, entry)
            except Exception as exc:  # noqa: BLE001 - showing the question matters more than the preview
                log.warning("could not run the examples of %s for the approval: %s", entry.get("id"), exc)
                results = []
            if results:
                request = dataclasses.replace(request, details={**request.details, "example_results": results})
        answer = approver(request)
        return bool(await answer) if inspect.isawaitable(answer) else bool(answer)

    return ask
