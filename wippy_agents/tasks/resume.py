"""Resuming a task by hand: ``wippy tasks resume ID [--retry|--skip]``.

A ``stranded`` task stopped at a non-idempotent step that started but never
finished: nobody knows whether its side effect happened. A person decides:

* ``retry`` — run the step again (its side effect may happen twice);
* ``skip`` — record it as done with a null result (its ``error`` column
  holds a ``StepSkipped`` note, so ``tasks show`` can say so) and go on.

A ``failed`` task may be resumed too: plainly (after fixing the code that
diverged, replay answers its recorded steps), or with ``retry`` to run the
step that failed again (its ``error`` row becomes ``started`` again, e.g. a
model call after the provider came back). A ``running``/``pending`` task
held by no live node is simply claimed. Every write here is fenced on the
epoch of the claim.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import UsageError
from ..store.base import TaskRecord
from .journal import Journal, load_journal

if TYPE_CHECKING:
    from .engine import TaskEngine

__all__ = ["prepare_resume", "SKIP_TYPE"]

SKIP_TYPE = "StepSkipped"


async def prepare_resume(
    engine: TaskEngine, task_id: str, *, retry: bool, skip: bool
) -> tuple[TaskRecord, frozenset[int]]:
    """Claim ``task_id`` for ``engine`` and settle its unfinished step.

    Returns the task (now ``running`` and ours) and the seqs to run again
    (several when parallel steps were in flight). Raises ``TaskNotFound``; ``UsageError`` when the task already
    succeeded or was cancelled, another live node holds it, it is stranded
    and neither ``retry`` nor ``skip`` is given, or both are.
    """
    if retry and skip:
        raise UsageError(f"resume of task {task_id!r}: choose --retry or --skip, not both")
    task = await engine.get(task_id)
    if task.status in ("succeeded", "cancelled"):
        raise UsageError(f"task {task_id!r} already {task.status}; there is nothing to resume", task_id=task_id)
    if task.kind not in engine.kinds:
        raise UsageError(
            f"task {task_id!r} is of kind {task.kind!r}, which node {engine.node_name!r} cannot run",
            task_id=task_id,
        )
    steps = await load_journal(engine.store, task_id)
    open_steps = [step for step in steps if step.status == "started"]
    open_step = open_steps[0] if open_steps else None
    failed_step = steps[-1] if task.status == "failed" and steps and steps[-1].status == "error" else None
    if task.status == "stranded" and open_step is not None and not (retry or skip):
        raise UsageError(
            f"task {task_id!r} is stranded at step {open_step.seq} {open_step.name!r}: resume with --retry to run "
            "that step again or --skip to record it as skipped",
            task_id=task_id,
            seq=open_step.seq,
        )
    if skip and open_step is None:
        raise UsageError(f"task {task_id!r} has no unfinished step to skip", task_id=task_id)
    if retry and open_step is None and failed_step is None and task.status != "failed":
        # (a failed task whose failing call left no row, like a model call, is simply run again)
        raise UsageError(f"task {task_id!r} has no unfinished or failed step to retry", task_id=task_id)
    if task.status == "failed":
        # Failed is final for the claim query; reopen it first (a manual action).
        await engine.store.task_update(task_id, status="stranded", owner=None, lease_expires_at=None)
    claimed = await engine.store.task_claim(task_id, engine.node_name, engine.lease_seconds)
    if claimed is None:
        raise UsageError(
            f"task {task_id!r} is running on node {task.owner!r} whose lease is live; resume it there "
            "or wait until its lease expires",
            task_id=task_id,
            owner=task.owner,
        )
    if retry and failed_step is not None and open_step is None:
        await engine.store.journal_reopen(task_id, failed_step.seq, node=engine.node_name, epoch=claimed.epoch)
        open_steps = [failed_step]
    if skip:
        journal = Journal(engine.store, task_id, steps, node=engine.node_name, epoch=claimed.epoch)
        for step in open_steps:
            note = {"type": SKIP_TYPE, "message": f"step {step.seq} {step.name!r} skipped by resume --skip"}
            await journal.finish(
                step.seq, step.name, started_at=step.started_at, result=None, note=note, durable=True
            )
    task = await engine.store.task_update(task_id, node=engine.node_name, epoch=claimed.epoch, status="running",
                                          error=None)
    return task, frozenset(step.seq for step in open_steps) if retry else frozenset()
