"""A task's event history: its journaled steps in order, the child tasks nested under the step that started them.

This is the data behind ``wippy tasks show ID`` (and its ``--json``), read
from the store alone, so any process can show any node's task:

>>> history = await task_history(store, "order-7")
>>> [(s.seq, s.name, s.node, s.attempt, s.duration) for s in history.steps]
[(1, 'funcs.call:app.tools:charge', 'node-a', 1, 0.012), ...]
>>> history.to_dict()["steps"][0]["children"]          # a child task's own history

A child is placed under the step that started it: the step whose seq its id
names (``<parent>/<seq>``, how ``run_child`` names children), else the step
that was running when the child was created (an agent's delegate call).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..errors import TaskNotFound
from ..store.base import StepRecord, Store, TaskRecord

__all__ = ["TaskHistory", "StepEvent", "task_history"]

MAX_CHILDREN = 10_000  # per task shown; a console session has one child per turn


@dataclass(frozen=True, kw_only=True)
class StepEvent:
    """One journaled step as an event: when, how long, where, which attempt, what came of it."""

    seq: int
    name: str
    status: str  # "started" (no result yet), "ok", "error"
    started_at: float
    finished_at: float | None
    node: str | None
    attempt: int
    tokens: int
    cost_usd: float
    result: Any
    error: dict[str, Any] | None
    children: tuple["TaskHistory", ...] = ()

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish, None while unfinished."""
        return None if self.finished_at is None else max(0.0, self.finished_at - self.started_at)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "children"}
        d["duration_ms"] = None if self.duration is None else round(self.duration * 1000, 3)
        d["children"] = [c.to_dict() for c in self.children]
        return d


@dataclass(frozen=True, kw_only=True)
class TaskHistory:
    """A task, its steps (``StepEvent``) and the children no step claims (started outside a step)."""

    task: TaskRecord
    steps: tuple[StepEvent, ...]
    children: tuple["TaskHistory", ...] = ()
    # children exist but were not loaded: the depth limit was reached
    more_children: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"task": dataclasses.asdict(self.task), "steps": [s.to_dict() for s in self.steps],
                "children": [c.to_dict() for c in self.children], "more_children": self.more_children}


async def task_history(store: Store, task_id: str, *, depth: int = 4) -> TaskHistory:
    """The history of ``task_id`` with its descendants down to ``depth`` levels.

    One journal read and one children read per task shown. Raises
    ``TaskNotFound`` for an unknown id.
    """
    task = await store.task_get(task_id)
    if task is None:
        raise TaskNotFound(f"no task with id {task_id!r}; `wippy tasks list` shows the tasks", task_id=task_id)
    return await _history(store, task, depth)


async def _history(store: Store, task: TaskRecord, depth: int) -> TaskHistory:
    steps = await store.journal_load(task.id)
    children = (await store.task_list(parent=task.id, limit=MAX_CHILDREN))[::-1]  # oldest first
    if depth <= 0:
        return TaskHistory(task=task, steps=tuple(_event(s, ()) for s in steps), more_children=bool(children))
    placed: dict[int, list[TaskHistory]] = {}
    loose: list[TaskHistory] = []
    for child in children:
        sub = await _history(store, child, depth - 1)
        seq = _starter(task.id, child, steps)
        (placed.setdefault(seq, []) if seq is not None else loose).append(sub)
    return TaskHistory(task=task, steps=tuple(_event(s, tuple(placed.get(s.seq, ()))) for s in steps),
                       children=tuple(loose))


def _event(step: StepRecord, children: tuple[TaskHistory, ...]) -> StepEvent:
    return StepEvent(seq=step.seq, name=step.name, status=step.status, started_at=step.started_at,
                     finished_at=step.finished_at, node=step.node, attempt=step.attempt, tokens=step.tokens,
                     cost_usd=step.cost_usd, result=step.result, error=step.error, children=children)


def _starter(parent_id: str, child: TaskRecord, steps: list[StepRecord]) -> int | None:
    """The seq of the step that started ``child``, or None when no step did."""
    suffix = child.id[len(parent_id) + 1:] if child.id.startswith(parent_id + "/") else ""
    if suffix.isdigit() and any(s.seq == int(suffix) for s in steps):
        return int(suffix)
    running = [s for s in steps if s.started_at <= child.created_at
               and (s.finished_at is None or s.finished_at >= child.created_at)]
    return max(running, key=lambda s: (s.started_at, s.seq)).seq if running else None
