"""``workflow.lua`` entries: durable Lua functions on the task journal (SPEC §7).

A workflow runs as a task of kind ``workflow`` whose target is the entry id
and whose input is the argument. Its Lua method runs in a sandbox like a
``function.lua``, except that every request to the host is answered through
the task's journal (``workflow_ops.py`` has the table): ``funcs.call``,
``time.now``, ``time.sleep`` (a durable timer), ``uuid.v4``, ``llm`` calls,
registry reads and writes. After a crash the node that holds the task next
runs the method again from the top; recorded steps are answered from the
journal, so the code reaches the same point without repeating an effect.
``math.random`` is seeded from the task id (the same numbers on replay);
``os.time``/``os.clock`` are not journaled: use ``time.now()``.

Signals. A workflow waits for a message with ``workflow.signal(topic,
timeout)``: the payload, or ``nil, err`` when ``timeout`` (seconds or
``"5s"``) passes first. Signals are persisted, so none is lost while the
workflow is down, and each is received once. Send one from

* Python: ``await app.tasks.signal(task_id, topic, payload)``;
* Lua anywhere: ``workflow.send(task_id, topic, payload)`` (through the
  store, so it reaches the task on any node; journaled inside a workflow);
* Lua on the node that runs it: ``process.send("task:" .. task_id, topic,
  payload)`` — the task's process turns mailbox messages into signals.

``workflow.id()`` is the running task's id (the idempotency key).

Starting. ``wippy call ENTRY [JSON] [--task-id ID]``, ``app.workflows.run(id,
args)`` or ``funcs.call`` of the entry from Lua (from a
workflow: a child task ``<parent id>/<seq>``, so a resumed parent finds it
again; the parent waits through a stranded child, and a failed, cancelled or
diverged child is ``nil, err`` for it). ``wippy run`` resumes workflows left
by a crash and claims those of dead nodes (lease settings: ``tasks:`` in
``wippy.yaml``, see ``tasks/settings.py``).

Which code runs. A resumed task runs the entry's current code; if it asks
for other steps than its journal holds, the task fails with a
``NondeterminismError`` naming the step, and the journal stays as it was.

>>> flows = app.workflows                           # doctest: +SKIP
>>> await flows.run("app.flows:order", {"amount": 3}, task_id="order-1")  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Any

from ..errors import (
    EntryNotFound,
    LuaError,
    LuaLimitExceeded,
    StepFailed,
    TaskCancelled,
    TaskError,
    TaskStranded,
    TaskTimeout,
    UsageError,
    WippyError,
)
from ..lua import CallContext, LuaHost, LuaModule, LuaOp, drive
from ..registry import Registry, kinds
from ..store.base import TaskRecord
from .context import TaskContext
from .engine import TaskEngine
from .workflow_ops import WorkflowAbort, WorkflowOps

__all__ = ["WORKFLOW_TASK_KIND", "Workflows", "install", "workflow_module"]

log = logging.getLogger(__name__)

WORKFLOW_TASK_KIND = "workflow"
# The driver bounds each host wait by a deadline; a workflow's waits are durable and may
# last days, so the run gets a far one and the per-slice wall clock is set by WorkflowOps.
_FOREVER = 10 * 365 * 86400.0
CHILD_POLL = 1.0  # how often a parent waiting for a child looks at its own cancel / a stranded child

WORKFLOW_LUA = """
local M = {}
function M.id() return host("workflow.id") end
function M.signal(topic, timeout) return host("workflow.signal", topic, timeout) end
function M.send(task_id, topic, payload) return host("workflow.send", task_id, topic, payload) end
return M
"""


class Workflows:
    """Starts and runs ``workflow.lua`` entries as durable tasks on ``app.tasks``.

    ``app.workflows``. Nothing here blocks but ``run``/``wait``
    (until the task ends).
    """

    def __init__(self, *, registry: Registry, tasks: TaskEngine, lua: LuaHost) -> None:
        self.registry = registry
        self.tasks = tasks
        self.lua = lua

    # -- public API ------------------------------------------------------------
    def entry(self, entry_id: str) -> Any:
        """The ``workflow.lua`` entry; raises ``EntryNotFound`` or ``UsageError`` (another kind)."""
        entry = self.registry.get(entry_id)
        if entry is None:
            raise EntryNotFound(f"workflow {entry_id!r} not found; `wippy registry list --kind workflow.lua` "
                                "shows the workflows", id=entry_id)
        if kinds.call_mode(entry.kind) != "workflow":
            raise UsageError(f"{entry_id!r} is a {entry.kind!r} entry, not a workflow (kind workflow.lua)",
                             id=entry_id)
        return entry

    async def start(self, entry_id: str, args: Any = None, *, task_id: str | None = None,
                    parent_id: str | None = None) -> TaskRecord:
        """Start the workflow as a task (or return the task already holding ``task_id``).

        Raises ``UsageError`` when ``task_id`` is taken by a task of another kind or workflow.
        """
        self.entry(entry_id)
        task = await self.tasks.start(WORKFLOW_TASK_KIND, entry_id, args, task_id=task_id, parent_id=parent_id,
                                          registry_version=self.registry.version)
        if (task.kind, task.target) != (WORKFLOW_TASK_KIND, entry_id):
            raise UsageError(f"task id {task.id!r} is already used by {task.kind} {task.target!r}; "
                             "pick another --task-id", task_id=task.id)
        return task

    async def run(self, entry_id: str, args: Any = None, *, task_id: str | None = None,
                  timeout: float | None = None) -> Any:
        """Start (or find) the workflow's task and return its result; raises its error."""
        task = await self.start(entry_id, args, task_id=task_id)
        return await self.tasks.wait(task.id, timeout=timeout)

    async def child(self, parent_id: str, entry_id: str, args: Any, child_id: str) -> Any:
        """Start (or find) a child workflow and wait for its end; its result, or an error for the parent.

        A stranded child is waited for (a person resumes it, then it ends). A child that
        was cancelled or whose replay diverged is a ``StepFailed`` for the parent, so the
        parent's Lua code gets ``nil, err`` instead of being cancelled or failed with it.
        A parent cancelled meanwhile cancels the child and raises ``TaskCancelled``.
        """
        tasks = self.tasks
        await self.start(entry_id, args, task_id=child_id, parent_id=parent_id)
        while True:
            try:
                return await tasks.wait(child_id, timeout=CHILD_POLL)
            except TaskTimeout:
                pass
            except TaskStranded:
                await asyncio.sleep(CHILD_POLL)
            except TaskError as exc:
                raise StepFailed(f"child workflow {entry_id!r} (task {child_id!r}) ended: {exc}",
                                 task_id=parent_id, child=child_id, child_error=exc.to_dict()) from None
            # The step that waits here is not interrupted by a cancel of its task: look.
            if (await tasks.get(parent_id)).status == "cancelled":
                try:
                    await tasks.cancel(child_id, reason=f"its parent {parent_id!r} was cancelled")
                except UsageError:  # it ended just now
                    pass
                raise TaskCancelled(f"task {parent_id!r} was cancelled while its child {child_id!r} ran",
                                    task_id=parent_id)

    # -- the runner ------------------------------------------------------------
    async def runner(self, tctx: TaskContext) -> Any:
        """Run (or replay) the task's workflow entry to its first return value.

        Raises ``LuaError`` for a Lua error or a ``nil, err`` return (the task
        fails), ``LuaLimitExceeded``, ``EntryNotFound``, and the task-control
        errors (cancelled, diverged, stranded, lease lost) for the engine.
        """
        host = self.lua
        entry = self.entry(tctx.task.target)
        code = await host.load(entry)
        spec, state = code.spec, code.state
        state.ctl[b"seed"](*_seed_of(tctx.task.id))  # replay draws the same math.random numbers
        ctx = CallContext(host=host, entry_id=spec.id, actor=code.actor, state=state, extra={"task": tctx})

        def new_slice() -> None:
            state.start(time.monotonic() + spec.limits.timeout)

        ops = WorkflowOps(host=host, tctx=tctx, ctx=ctx, registry=self.registry,
                          run_child=lambda target, args, child_id: self.child(tctx.task.id, target, args, child_id),
                          on_wait=new_slice)
        thread, first = code.thread_args(tctx.task.input)
        new_slice()
        try:
            results = await drive(state, thread, first, ops, deadline=time.monotonic() + _FOREVER, who=spec.id)
        except BaseException as exc:
            control = getattr(exc, "error", None)
            if isinstance(exc, WorkflowAbort) or (isinstance(control, WippyError) and not isinstance(exc, Exception)):
                # WorkflowAbort, or the agents layer's Abort from a journaled llm/agent call
                raise control from None
            if isinstance(exc, LuaError) and not isinstance(exc, LuaLimitExceeded):
                host.pool.release(state)
            raise
        host.pool.release(state)
        value = results[0] if results else None
        if value is None and len(results) > 1 and results[1] is not None:
            err = results[1]
            raise LuaError(f"{spec.id}: {err if isinstance(err, str) else repr(err)}", entry=spec.id, error=err)
        return value


def _seed_of(task_id: str) -> tuple[int, int]:
    digest = hashlib.sha256(task_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 2, int.from_bytes(digest[8:16], "big") >> 2


def workflow_module(workflows: Workflows) -> LuaModule:
    """The Lua ``workflow`` module, visible to all code (``always``) since ``modules:``
    cannot name it; outside a workflow run ``id``/``signal`` answer ``nil, err``."""

    async def outside(ctx: Any, *args: Any) -> Any:
        raise UsageError("workflow.id/workflow.signal only work inside a workflow.lua task")

    async def send(ctx: Any, task_id: Any = None, topic: Any = None, payload: Any = None) -> bool:
        if not isinstance(task_id, str) or not task_id:
            raise UsageError(f"workflow.send: expected a task id string, got {task_id!r}")
        if not isinstance(topic, str) or not topic:
            raise UsageError(f"workflow.send: expected a topic string, got {topic!r}")
        await workflows.tasks.signal(task_id, topic, payload)
        return True

    ops = {
        "workflow.id": LuaOp(fn=outside, effect="pure", guard=None),
        "workflow.signal": LuaOp(fn=outside, effect="wait", guard=None),
        # the same permission as process.send to the task's process
        "workflow.send": LuaOp(fn=send, effect="write", guard="process.send",
                               resource=lambda args: f"task:{args[0] if args else ''}"),
    }
    return LuaModule(name="workflow", lua=WORKFLOW_LUA, ops=ops, always=True)


def install(registry: Registry, tasks: TaskEngine, lua: LuaHost) -> Workflows:
    """The node's ``Workflows``: the ``workflow`` task type on ``tasks`` and the Lua ``workflow``
    module on ``lua``. ``funcs.call`` of a workflow entry from plain Lua reaches ``Workflows.run``
    through the app's entry dispatcher (the kind's ``call_mode`` is ``workflow``)."""
    workflows = Workflows(registry=registry, tasks=tasks, lua=lua)
    tasks.register_kind(WORKFLOW_TASK_KIND, workflows.runner)
    lua.add_module(workflow_module(workflows))
    return workflows
