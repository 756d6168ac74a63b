"""Durable tasks: a step journal with replay, leases across nodes, recovery.

>>> engine = TaskEngine(store, node_name="local")
>>> engine.register_kind("greet", greet)            # async def greet(ctx): ...
>>> task = await engine.start("greet", "app:greet", {"name": "Ada"}, task_id="t1")
>>> await engine.wait(task.id, timeout=10)
>>> queued, _ = await engine.enqueue("greet", "app:greet", {"name": "Bo"})  # for any worker node to claim

Each engine is a node of its store (``nodes.this_process``): it claims only
tasks that are queued, whose lease expired or whose owner's process on this
host is gone, and every write of a run is fenced on the epoch of its claim.

A runner makes every outside effect durable through its ``TaskContext``:
``ctx.step(name, fn)``, ``ctx.now()``, ``ctx.uuid4()``, ``ctx.random()``,
``ctx.sleep(s)``, ``ctx.receive_signal(topic)`` and ``ctx.run_child(...)``.

Any durable runtime plugs in as a kind: a ``workflow.lua`` runner drives its
Lua coroutine and answers each yielded request through the context —
``funcs.call`` -> ``ctx.step("funcs.call:<id>", ..., idempotent=<entry flag>)``,
``time.sleep`` -> ``ctx.sleep``, ``time.now`` -> ``ctx.now``, ``uuid.v4`` ->
``ctx.uuid4``, a message to the task's process -> ``ctx.receive_signal``.
"""

from .context import Metered, RunInterrupted, StepScope, TaskContext, current_step
from .engine import FINAL_STATUSES, Runner, TaskEngine
from .history import StepEvent, TaskHistory, task_history
from .retry import NO_RETRY, STORE_RETRY, RetryPolicy
from .resume import SKIP_TYPE

__all__ = [
    "TaskEngine",
    "TaskContext",
    "Runner",
    "RetryPolicy",
    "Metered",
    "NO_RETRY",
    "STORE_RETRY",
    "RunInterrupted",
    "FINAL_STATUSES",
    "SKIP_TYPE",
    "TaskHistory",
    "StepEvent",
    "task_history",
    "StepScope",
    "current_step",
]
