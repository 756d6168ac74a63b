"""One run of a task: replay its journal, call its runner, classify the end.

``execute`` never writes the task's status itself; it returns an ``Outcome``
that the engine records (only while it still holds the lease). Keeping the
classification here makes the rules explicit:

* the runner returned -> ``succeeded`` (``cancelled`` if it swallowed a cancel);
* a replay failure (divergence, stranded step, corrupt row) wins over
  whatever the runner did with it -> ``failed`` / ``stranded``;
* ``TaskCancelled`` -> ``cancelled``; any other error -> ``failed``;
* lease lost, engine closing, store unreachable -> ``abandoned``: nothing is
  recorded and whoever holds the lease next resumes the task.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Literal

from ..errors import (
    JournalCorrupt,
    LeaseLost,
    NondeterminismError,
    StoreError,
    TaskCancelled,
    TaskError,
    TaskStranded,
    WippyError,
)
from ..store.base import Store, TaskRecord
from .context import Children, RunInterrupted, RunState, TaskContext
from .journal import Journal, load_journal, to_json_data
from .retry import RetryPolicy
from .signals import SignalBox

__all__ = ["Outcome", "execute"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """How a run ended; ``error`` is a ``WippyError.to_dict()``."""

    status: Literal["succeeded", "failed", "stranded", "cancelled", "abandoned"]
    result: Any = None
    error: dict[str, Any] | None = None
    why: str = ""


async def execute(
    task: TaskRecord,
    runner: Callable[[TaskContext], Awaitable[Any] | Any],
    *,
    store: Store,
    node_name: str,
    state: RunState,
    signals: SignalBox,
    policy: RetryPolicy,
    default_retry: RetryPolicy,
    retry_seqs: frozenset[int] = frozenset(),
    children: Children | None = None,
    fresh: bool = False,
    lease: Any = None,
    clock: Any = None,
) -> Outcome:
    """Run ``task`` from its journal to an ``Outcome``. Cancellation propagates.

    ``fresh``: the caller just created the task, so its journal is empty (journal
    rows belong to an existing task) and loading it is a round trip saved.
    ``lease`` (a ``leases.Lease``) fences every journal write on its epoch.
    """
    ctx: TaskContext | None = None
    journal: Journal | None = None
    try:
        steps = [] if fresh else await load_journal(store, task.id, policy=policy)
        journal = Journal(store, task.id, steps, node=node_name, lease=lease, policy=policy)
        ctx = TaskContext(
            task=task,
            journal=journal,
            state=state,
            signals=signals,
            retry_seqs=retry_seqs,
            default_retry=default_retry,
            children=children,
            clock=clock,
        )
        result = runner(ctx)
        if inspect.isawaitable(result):
            result = await result
        if ctx.fatal is not None:
            raise ctx.fatal
        result = to_json_data(result, what=f"task {task.id!r}")
        if ctx.seq < journal.last_recorded_seq:
            raise NondeterminismError(
                f"task {task.id!r} finished after step {ctx.seq} but its journal holds steps up to "
                f"{journal.last_recorded_seq} (the code changed since the task started)",
                task_id=task.id,
                seq=ctx.seq + 1,
            )
        await journal.flush()  # every step is recorded before the task's end is
    except RunInterrupted:
        await _flush_quietly(journal)
        return Outcome(status="abandoned", why="interrupted")
    except Exception as exc:
        await _flush_quietly(journal)
        return _classify(task, ctx, state, exc)
    finally:
        if journal is not None:
            await journal.close()
    if state.cancelled:
        return Outcome(status="cancelled", why="the runner returned after a cancel")
    return Outcome(status="succeeded", result=result)


async def _flush_quietly(journal: Journal | None) -> None:
    """Keep the steps that did finish, if the store and the lease still allow it."""
    if journal is None:
        return
    try:
        await journal.flush()
    except (StoreError, TaskError) as exc:
        log.info("task %r: finished steps not recorded: %s", journal.task_id, exc)


def _classify(task: TaskRecord, ctx: TaskContext | None, state: RunState, exc: Exception) -> Outcome:
    if ctx is not None and ctx.fatal is not None:
        exc = ctx.fatal  # whatever the runner made of it, the replay failure decides
    if isinstance(exc, LeaseLost):
        return Outcome(status="abandoned", why=str(exc))
    if state.stopping:  # whatever the runner made of the interrupt, it is not the task's failure
        return Outcome(status="abandoned", why="interrupted")
    if isinstance(exc, TaskCancelled) or state.cancelled:
        return Outcome(status="cancelled", why=str(exc))
    if isinstance(exc, TaskStranded):
        return Outcome(status="stranded", error=exc.to_dict())
    if isinstance(exc, StoreError) and not isinstance(exc, JournalCorrupt):
        return Outcome(status="abandoned", why=f"the store stayed unreachable: {exc}")
    if isinstance(exc, WippyError):
        return Outcome(status="failed", error=exc.to_dict())
    log.error("task %r of kind %r raised", task.id, task.kind, exc_info=exc)
    error = TaskError(f"task {task.id!r} raised {type(exc).__name__}: {exc}", task_id=task.id)
    return Outcome(status="failed", error=error.to_dict())
