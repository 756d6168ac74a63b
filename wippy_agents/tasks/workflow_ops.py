"""How a ``workflow.lua`` run answers its Lua host requests: through the journal.

A workflow's Lua code asks the host for everything outside itself
(``funcs.call``, ``time.now``, ``time.sleep``, ``uuid.v4``, registry reads,
``process.send`` ...). Inside a workflow each such request is a journaled
step of its task, so a resumed run gets the recorded answers back and the
Lua code takes the same path again:

=====================  ==================================================
``funcs.call(id, a)``  step ``funcs.call:<id>``; re-run after a crash only
                       if the entry says ``idempotent: true``, else the
                       task is stranded. A ``workflow.lua`` target runs as
                       a child task (step ``child:workflow:<id>``).
``time.now()``         ``ctx.now()`` (step ``time.now``)
``time.sleep(d)``      ``ctx.sleep(d)``: a durable timer (``time.sleep``)
``uuid.v4()``          ``ctx.uuid4()`` (step ``uuid.v4``)
``workflow.signal``    ``ctx.receive_signal(topic, timeout)``
``llm.*``, ``agent``   journaled by the agents layer (steps ``llm``,
                       ``agent:<id>``), which sees the task context
reads                  ``registry.get/find/version``, ``security.*``:
                       idempotent steps ``<op>[:<first arg>]``
pure                   ``json.*``, ``time.duration``, ``workflow.id``: run
other ops              (``registry.apply``, ``process.send`` ...):
                       non-idempotent steps ``<op>[:<first arg>]``
=====================  ==================================================

A step's own error reaches Lua as ``nil, err`` (recorded, so replay gives
the same). Task-control errors (cancelled, lease lost, diverged, stranded,
corrupt journal) are not Lua's business: they end the run through the Lua
driver as a ``WorkflowAbort`` and the engine records them.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from ..errors import (
    JournalCorrupt,
    LeaseLost,
    NondeterminismError,
    TaskCancelled,
    TaskStranded,
    UsageError,
    WorkflowAbort,
)
from ..lua import CallContext
from ..registry import kinds
from ..lua.limits import parse_duration
from .context import TaskContext

__all__ = ["WorkflowAbort", "WorkflowOps", "CONTROL_ERRORS"]

CONTROL_ERRORS = (TaskCancelled, LeaseLost, NondeterminismError, TaskStranded, JournalCorrupt)
MAX_STEP_NAME = 200



def step_name(op: str, args: list[Any]) -> str:
    """``op`` plus its first argument when that is a string (an id, a pid, a topic)."""
    if args and isinstance(args[0], str) and args[0]:
        return f"{op}:{args[0]}"[:MAX_STEP_NAME]
    return op


Op = Callable[..., Awaitable[Any]]


class WorkflowOps:
    """The host-op handler of one workflow run: journal, replay, control errors.

    ``host`` is the ``LuaHost`` (its ``ops`` are looked up per request, so the
    security and agents wrappers installed after us still apply), ``tctx``
    the run's ``TaskContext``, ``ctx`` the Lua ``CallContext`` of the run,
    ``run_child(target, args, child_id)`` runs a child workflow to its result.
    """

    def __init__(self, *, host: Any, tctx: TaskContext, ctx: CallContext, registry: Any,
                 run_child: Callable[[str, Any, str], Awaitable[Any]], on_wait: Callable[[], None]) -> None:
        self.host = host
        self.tctx = tctx
        self.ctx = ctx
        self.registry = registry
        self._run_child = run_child
        self._on_wait = on_wait
        self._own: dict[str, Op] = {
            "funcs.call": self.funcs_call,
            "time.now": lambda: tctx.now(),
            "time.sleep": self.sleep,
            "uuid.v4": lambda: tctx.uuid4(),
            "workflow.id": self.workflow_id,
            "workflow.signal": self.signal,
        }

    async def __call__(self, op: str, args: list[Any]) -> Any:
        """Answer one request of the Lua code (the driver's handler)."""
        try:
            value = await self._answer(op, args)
        except CONTROL_ERRORS as exc:
            raise WorkflowAbort(exc) from None
        if self.tctx.fatal is not None:  # a replay failure that a nested layer turned into a value
            raise WorkflowAbort(self.tctx.fatal)
        declared = self.host.ops.get(op)
        if declared is None or declared.effect == "wait":
            # a workflow may wait for days, but each stretch of computing between waits is bounded
            self._on_wait()
        return value

    async def _answer(self, op: str, args: list[Any]) -> Any:
        own = self._own.get(op)
        if own is not None:
            return await own(*args)
        declared = self.host.ops.get(op)
        if declared is None:
            raise UsageError(f"unknown host operation {op!r}")
        invoke = self.host.invoke
        if declared.effect == "pure" or declared.journaled:
            return await invoke(self.ctx, op, args)
        return await self.tctx.step(step_name(op, args), lambda: invoke(self._plain_ctx(), op, args),
                                    idempotent=declared.effect == "read")

    def _plain_ctx(self) -> CallContext:
        """The run's context without the task: nested layers must not journal a step again."""
        ctx = self.ctx
        return CallContext(host=ctx.host, entry_id=ctx.entry_id, actor=ctx.actor, state=ctx.state, depth=ctx.depth)

    # -- the workflow's own answers -------------------------------------------
    async def funcs_call(self, entry_id: Any = "", args: Any = None, *more: Any) -> Any:
        if not isinstance(entry_id, str) or not entry_id:
            raise UsageError(f"funcs.call: expected an entry id string, got {entry_id!r}")
        if more:
            raise UsageError("funcs.call(id, args): pass the arguments as one table")
        target = self.ctx.resolve(entry_id)
        entry = self.registry.get(target) if self.registry is not None else None
        if entry is not None and kinds.call_mode(entry.kind) == "workflow":
            # A child task with an id derived from our step: after a crash the (idempotent) step
            # finds the same child again instead of starting a second one.
            child_id = f"{self.tctx.task.id}/{self.tctx.seq + 1}"
            return await self.tctx.step(f"child:workflow:{target}", lambda: self._run_child(target, args, child_id),
                                        idempotent=True)
        idempotent = bool(entry is not None and entry.data.get("idempotent"))
        invoke = self.host.invoke
        return await self.tctx.step(f"funcs.call:{target}", lambda: invoke(self._plain_ctx(), "funcs.call",
                                                                           [target, args]),
                                    idempotent=idempotent)

    async def sleep(self, duration: Any = None) -> bool:
        await self.tctx.sleep(parse_duration(duration, where="time.sleep"))
        return True

    async def workflow_id(self) -> str:
        return self.tctx.task.id

    async def signal(self, topic: Any = None, timeout: Any = None) -> Any:
        if not isinstance(topic, str) or not topic:
            raise UsageError(f"workflow.signal: expected a topic string, got {topic!r}")
        seconds = None if timeout is None else parse_duration(timeout, where="workflow.signal timeout")
        payload = await self.tctx.receive_signal(topic, timeout=seconds)
        if payload is None and self.tctx.last_signal_timed_out:
            raise UsageError(f"workflow.signal: no {topic!r} signal within {seconds:g}s")
        return payload
