"""Why a conditional write changed nothing: the errors both backends raise.

A guarded write (journal step, task update with ``node=``) is one statement;
only when it changes no row does the backend read the task (and step) again
and turn what it finds into the precise error.
"""

from __future__ import annotations

from typing import Any

from ..errors import LeaseLost, NondeterminismError, StepAlreadyRecorded, TaskNotFound, WippyError

__all__ = ["task_refusal", "journal_refusal"]


def _holder(row: Any, epoch: int | None) -> str:
    """Who holds the task now, as a person reads it."""
    try:
        theirs = row["epoch"]
    except (KeyError, IndexError):
        theirs = None
    if epoch is None or theirs is None:
        return f"owner is {row['owner']!r}"
    return f"owner is {row['owner']!r} at epoch {theirs}, ours was {epoch}"


def task_refusal(task_id: str, node: str | None, row: Any, *, epoch: int | None = None) -> WippyError:
    """``row`` has the task's ``owner`` (and ``epoch``), or is None when the task does not exist."""
    if row is None:
        return TaskNotFound(f"task {task_id!r} does not exist", task_id=task_id)
    return LeaseLost(f"task {task_id!r}: lease lost: node {node!r} no longer holds it ({_holder(row, epoch)});"
                     " stop running it here", task_id=task_id, node=node, owner=row["owner"])


def journal_refusal(step: dict, node: str | None, row: Any, *, epoch: int | None = None) -> WippyError:
    """``row`` has the task's ``owner``/``epoch`` and the step's ``name``/``status`` (None if absent)."""
    task_id, seq = step["task_id"], step["seq"]
    if row is None:
        return TaskNotFound(f"journal_write: task {task_id!r} does not exist", task_id=task_id)
    if node is not None and (row["owner"] != node or (epoch is not None and row["epoch"] != epoch)):
        return LeaseLost(f"task {task_id!r}: lease lost: node {node!r} no longer holds it ({_holder(row, epoch)});"
                         f" step {seq} not recorded, stop running it here",
                         task_id=task_id, node=node, owner=row["owner"])
    if row["name"] is not None and row["name"] != step["name"]:
        return NondeterminismError(f"task {task_id!r} step {seq} is journaled as {row['name']!r}, not "
                                   f"{step['name']!r}", task_id=task_id, seq=seq)
    return StepAlreadyRecorded(f"task {task_id!r} step {seq} ({step['name']!r}) is already recorded as "
                               f"{row['status']!r}; a step is never recorded twice", task_id=task_id, seq=seq)
