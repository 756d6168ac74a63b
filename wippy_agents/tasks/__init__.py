"""Durable tasks: a step journal with replay, leases across nodes, recovery.

>>> engine = TaskEngine(store, node_name="local")
>>> engine.register_kind("greet", greet)            # async def greet(ctx): ...
>>> task = await engine.start("greet", "app:greet", {"name": "Ada"}, task_id="t1")
>>> await engine.wait(task.id, timeout=10)

A runner makes every outside effect durable through its ``TaskContext``:
``ctx.step(name, fn)``, ``ctx.now()``, ``ctx.uuid4()``, ``ctx.random()``,
``ctx.sleep(s)`` and ``ctx.receive_signal(topic)``.
"""

from .context import Metered, RunInterrupted, TaskContext
from .engine import FINAL_STATUSES, Runner, TaskEngine
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
]
