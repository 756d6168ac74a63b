"""Supervisors: start children in order, restart them by strategy, stop them in reverse.

Behaviour follows the OTP ``supervisor`` documentation:

* Children start in spec order, each linked and fully initialised before the
  next (``start_link``). A child that fails to start stops the ones already
  started (in reverse) and the supervisor fails with ``StartError``.
* Restart types: ``permanent`` always, ``transient`` only after an abnormal
  exit (not ``normal``/``shutdown``), ``temporary`` never (and is forgotten).
* Strategies: ``one_for_one`` restarts the child; ``one_for_all`` stops every
  other child (reverse order) and restarts all in order; ``rest_for_one``
  stops the children started after it and restarts it and them;
  ``simple_one_for_one`` is ``one_for_one`` over dynamic children of one template.
* More than ``max_restarts`` restarts within ``period`` seconds: stop all
  children, exit with ``"shutdown"``; the parent supervisor decides.
* Stopping a child: exit signal ``shutdown``, wait up to its ``shutdown``
  seconds for the EXIT, then ``kill``. An EXIT from the parent stops all
  children in reverse order and the supervisor exits with that reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from wippy_agents.errors import ReceiveTimeout, StartError, UsageError

from .messages import KILL, SHUTDOWN, Exit, Message, is_abnormal
from .signals import reason_text
from .spec import ChildSpec, SupervisorSpec

if TYPE_CHECKING:
    from .process import Process

__all__ = ["Supervisor", "supervisor_body"]

logger = logging.getLogger(__name__)

_KILL_GRACE = 5.0  # after kill, how long to wait for a child that swallows cancellation


class _Child:
    __slots__ = ("spec", "pid", "args")

    def __init__(self, spec: ChildSpec, args: tuple) -> None:
        self.spec = spec
        self.pid: str | None = None
        self.args = args


async def supervisor_body(proc: Process, spec: SupervisorSpec) -> None:
    """The process body of a supervisor (spawned with ``trap_exit=True``)."""
    await Supervisor(proc, spec).run()


class Supervisor:
    """A running supervisor, plus the client calls to manage one by pid or name.

    Start one with ``node.spawn_supervisor(spec)`` (returns at once) or
    ``await node.start_supervisor(spec)`` (waits for every child; raises
    ``StartError``). Nest by using a ``SupervisorSpec`` as a child's ``start``.

    >>> async def worker(proc, n):
    ...     while True:
    ...         msg = await proc.receive()
    ...         proc.reply(msg, n)
    >>> spec = SupervisorSpec(strategy="one_for_one", max_restarts=3, period=5.0, children=[
    ...     ChildSpec(id="w1", start=worker, args=(1,), name="w1"),
    ...     ChildSpec(id="w2", start=worker, args=(2,), name="w2", restart="transient")])
    >>> sup = await node.start_supervisor(spec)
    >>> [c["id"] for c in await Supervisor.which_children(node, sup)]
    ['w1', 'w2']
    """

    def __init__(self, proc: Process, spec: SupervisorSpec) -> None:
        self.proc = proc
        self.spec = spec
        self.simple = spec.strategy == "simple_one_for_one"
        self.children: list[_Child] = [] if self.simple else [_Child(c, c.args) for c in spec.children]
        self.restarts: deque[float] = deque()

    # -- client calls (from a Node or a Process) -----------------------------------

    @staticmethod
    async def start_child(via: Any, sup: str, *args: Any, timeout: float | None = 10.0) -> str:
        """Start a ``simple_one_for_one`` child with the template args + ``args`` (copied data).

        Blocks until the child has started. Raises ``StartError`` if it fails,
        ``UsageError`` for another strategy, ``ProcessDead`` if ``sup`` is gone.
        """
        reply = await via.call(sup, "supervisor.start_child", {"args": list(args)}, timeout=timeout)
        return _unwrap(reply)

    @staticmethod
    async def terminate_child(via: Any, sup: str, child: str, *, timeout: float | None = 30.0) -> None:
        """Stop a child by id (or by pid for simple_one_for_one) as in a shutdown; it is not restarted."""
        _unwrap(await via.call(sup, "supervisor.terminate_child", {"child": child}, timeout=timeout))

    @staticmethod
    async def which_children(via: Any, sup: str, *, timeout: float | None = 5.0) -> list[dict]:
        """``[{"id", "pid", "type", "restart"}, ...]`` in start order (``pid`` None if not running)."""
        return _unwrap(await via.call(sup, "supervisor.which_children", None, timeout=timeout))

    @staticmethod
    async def count_children(via: Any, sup: str, *, timeout: float | None = 5.0) -> dict:
        """``{"specs", "active", "supervisors", "workers"}``."""
        return _unwrap(await via.call(sup, "supervisor.count_children", None, timeout=timeout))

    # -- the process --------------------------------------------------------------

    async def run(self) -> None:
        proc = self.proc
        for i, child in enumerate(self.children):
            try:
                await self._start(child)
            except StartError:
                await self._stop_children(self.children[:i])
                raise
        proc.init_ack()
        while True:
            msg = await proc.receive()
            if msg.topic == "EXIT" and type(msg.payload) is Exit:
                await self._on_exit(msg.payload)
            elif msg.ref is not None and msg.topic.startswith("supervisor."):
                await self._on_call(msg)
            else:
                logger.warning("supervisor %s ignored unexpected message %r", proc.pid, msg.topic)

    async def _on_exit(self, ex: Exit) -> None:
        if ex.pid == self.proc.parent or ex.pid == self.proc.node.pid:  # the parent, or the node stopping
            await self._stop_children(self.children)
            self.proc.stop(ex.reason)
        child = next((c for c in self.children if c.pid == ex.pid), None)
        if child is None:
            return  # a failed start, or a child we already stopped: nothing to do
        child.pid = None
        restart = child.spec.restart
        if restart == "temporary" or (restart == "transient" and not is_abnormal(ex.reason)):
            if restart == "temporary" or self.simple:
                self.children.remove(child)
            return
        logger.info("supervisor %s: child %r (%s) exited: %s; restarting (%s)", self.proc.pid, child.spec.id,
                    ex.pid, reason_text(ex.reason), self.spec.strategy)
        await self._restart(child)

    async def _restart(self, child: _Child) -> None:
        while True:
            if not self._note_restart():
                logger.error("supervisor %s: more than %d restarts in %ss (child %r); shutting down",
                             self.proc.pid, self.spec.max_restarts, self.spec.period, child.spec.id)
                await self._stop_children(self.children)
                self.proc.stop(SHUTDOWN)
            try:
                await self._apply_strategy(child)
                return
            except StartError as exc:
                logger.error("supervisor %s: restarting %r failed: %s", self.proc.pid, child.spec.id, exc)
                if self.spec.strategy == "rest_for_one":
                    # OTP's {try_again, FailedId}: retry from the child that failed to start, so
                    # the siblings before it that did start keep running (and are not counted again)
                    failed = next((c for c in self.children if c.spec.id == exc.details.get("child")), None)
                    if failed is not None:
                        child = failed

    def _note_restart(self) -> bool:
        now = asyncio.get_running_loop().time()
        window = self.restarts
        window.append(now)
        while window and window[0] <= now - self.spec.period:
            window.popleft()
        return len(window) <= self.spec.max_restarts

    async def _apply_strategy(self, child: _Child) -> None:
        strategy = self.spec.strategy
        if strategy in ("one_for_one", "simple_one_for_one"):
            await self._start(child)
            return
        at = self.children.index(child)
        group = self.children if strategy == "one_for_all" else self.children[at:]
        await self._stop_children(group)
        for c in [c for c in group if c.spec.restart == "temporary"]:
            self.children.remove(c)
        for c in [c for c in group if c.spec.restart != "temporary"]:
            await self._start(c)

    async def _start(self, child: _Child) -> str:
        spec = child.spec
        if spec.is_supervisor:
            body, args, trap = supervisor_body, (spec.start,), True
        else:
            body, args, trap = spec.start, child.args, spec.trap_exit
        try:
            pid = await self.proc.start_link(body, *args, name=spec.name, trap_exit=trap,
                                             timeout=spec.start_timeout)
        except StartError as exc:
            raise StartError(f"supervisor {self.proc.pid!r}: child {spec.id!r} failed to start: {exc}",
                             supervisor=self.proc.pid, child=spec.id) from exc.__cause__
        except UsageError as exc:  # e.g. NameTaken: the child cannot start as specified
            raise StartError(f"supervisor {self.proc.pid!r}: child {spec.id!r} cannot start: {exc}",
                             supervisor=self.proc.pid, child=spec.id) from exc
        child.pid = pid
        return pid

    async def _stop_children(self, children: list[_Child]) -> None:
        running = [c for c in reversed(children) if c.pid is not None]
        if self.simple:
            await self._stop_together(running)
        else:
            for c in running:
                await self._stop(c)

    async def _stop(self, child: _Child) -> None:
        pid, child.pid = child.pid, None
        if pid is None:
            return
        proc = self.proc
        shutdown = child.spec.shutdown
        if shutdown == "brutal_kill":
            proc.exit(pid, KILL)
        else:
            proc.exit(pid, SHUTDOWN)
            if await self._await_exits({pid}, None if shutdown == "infinity" else shutdown):
                return
            logger.warning("supervisor %s: child %r (%s) ignored shutdown for %ss; killing it",
                           proc.pid, child.spec.id, pid, shutdown)
            proc.exit(pid, KILL)
        if not await self._await_exits({pid}, _KILL_GRACE):
            logger.error("supervisor %s: child %r (%s) survived kill; abandoning it", proc.pid, child.spec.id, pid)

    async def _stop_together(self, children: list[_Child]) -> None:
        """Dynamic children are stopped all at once, as OTP does for simple_one_for_one."""
        pending = {c.pid for c in children if c.pid is not None}
        for c in children:
            c.pid = None
        if not pending:
            return
        shutdown = self.spec.children[0].shutdown
        if shutdown != "brutal_kill":
            for pid in pending:
                self.proc.exit(pid, SHUTDOWN)
            if await self._await_exits(pending, None if shutdown == "infinity" else shutdown):
                return
        for pid in pending:
            self.proc.exit(pid, KILL)
        if not await self._await_exits(pending, _KILL_GRACE):
            logger.error("supervisor %s: children survived kill; abandoning %s", self.proc.pid, sorted(pending))

    async def _await_exits(self, pending: set[str], timeout: float | None) -> bool:
        """Consume the EXIT of every pid in ``pending`` (removing each); False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while pending:
            left = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                msg = await self.proc.receive(
                    "EXIT", left, match=lambda m: type(m.payload) is Exit and m.payload.pid in pending)
            except ReceiveTimeout:
                return False
            pending.discard(msg.payload.pid)
        return True

    async def _on_call(self, msg: Message) -> None:
        proc = self.proc
        try:
            result = await self._handle_call(msg.topic, msg.payload)
            proc.reply(msg, {"ok": result})
        except (StartError, UsageError) as exc:
            proc.reply(msg, {"error": str(exc), "type": type(exc).__name__})

    async def _handle_call(self, topic: str, payload: Any) -> Any:
        if topic == "supervisor.start_child":
            if not self.simple:
                raise UsageError(f"supervisor {self.proc.pid!r} is {self.spec.strategy}; start_child with "
                                 "extra args needs simple_one_for_one")
            template = self.spec.children[0]
            child = _Child(template, template.args + tuple((payload or {}).get("args", ())))
            pid = await self._start(child)
            self.children.append(child)
            return pid
        if topic == "supervisor.terminate_child":
            key = (payload or {}).get("child")
            child = next((c for c in self.children if c.spec.id == key or c.pid == key), None)
            if child is None:
                raise UsageError(f"supervisor {self.proc.pid!r} has no child {key!r}")
            await self._stop(child)
            if self.simple or child.spec.restart == "temporary":
                self.children.remove(child)
            return None
        if topic == "supervisor.which_children":
            return [{"id": c.spec.id, "pid": c.pid, "type": "supervisor" if c.spec.is_supervisor else "worker",
                     "restart": c.spec.restart} for c in self.children]
        if topic == "supervisor.count_children":
            sups = sum(1 for c in self.children if c.spec.is_supervisor)
            return {"specs": 1 if self.simple else len(self.children),
                    "active": sum(1 for c in self.children if c.pid is not None),
                    "supervisors": sups, "workers": len(self.children) - sups}
        raise UsageError(f"supervisor {self.proc.pid!r} does not understand {topic!r}")


def _unwrap(reply: Any) -> Any:
    if isinstance(reply, dict) and "error" in reply:
        if reply.get("type") == "StartError":
            raise StartError(reply["error"])
        raise UsageError(reply["error"])
    return reply["ok"]
