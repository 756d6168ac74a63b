"""CLI handlers: ``wippy tasks list|show|resume|cancel``.

``show`` prints a task and its event history (``history_view``): one line per
step with its time, duration, node, attempt and result or error cut to one
line, the tasks it started nested under the step that started them. ``resume`` runs a stranded, failed or orphaned task here
until it ends; ``cancel`` marks it cancelled (its run stops at its next step).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..errors import UsageError
from ..registry import AppSettings
from ..store import open_store
from ..store.base import TaskRecord
from ..tasks.history import task_history
from .history_view import history_view
from .render import print_json, short_json

__all__ = ["list_tasks", "show", "resume", "cancel", "task_summary", "task_status", "task_dict"]

STATUS_STYLE = {"succeeded": "green", "failed": "red", "stranded": "yellow", "cancelled": "dim", "running": "cyan",
                "pending": "cyan"}


def _console() -> Console:
    return Console(width=None if sys.stdout.isatty() else 160, highlight=False)


@asynccontextmanager
async def _store(args: argparse.Namespace) -> AsyncIterator[Any]:
    settings = AppSettings.load(getattr(args, "app", None), store=getattr(args, "store", None),
                                node=getattr(args, "node", None))
    store = await open_store(settings.store)
    try:
        yield store
    finally:
        await store.close()


def _time(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else ""


def _status(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def task_status(task: TaskRecord) -> Text:
    """The status, saying so when a stranded task is just a console session nobody has open."""
    from ..agents.session import SESSION_KIND

    text = _status(task.status)
    if task.kind == SESSION_KIND and task.status == "stranded":
        text.append(" (idle session: wippy console --resume)", style="dim")
    return text


def list_tasks(args: argparse.Namespace) -> int:
    async def run() -> int:
        async with _store(args) as store:
            tasks = await store.task_list(status=getattr(args, "status", None), limit=getattr(args, "limit", 100))
        if getattr(args, "json", False):
            print_json([task_dict(t) for t in tasks])
            return 0
        table = Table("id", "kind", "target", "status", "owner", "created", "updated",
                      title=f"tasks{' (' + args.status + ')' if getattr(args, 'status', None) else ''}",
                      title_justify="left")
        for t in tasks:
            table.add_row(t.id, t.kind, t.target, task_status(t), t.owner or "", _time(t.created_at),
                          _time(t.updated_at))
        _console().print(table if tasks else "no tasks")
        return 0

    return asyncio.run(run())


def task_dict(task: TaskRecord) -> dict[str, Any]:
    """A task record as JSON data (``--json``)."""
    return dataclasses.asdict(task)


def task_summary(task: TaskRecord) -> Table:
    """The task's fields as a two-column grid."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    grid.add_row("task", task.id)
    grid.add_row("kind", f"{task.kind} · {task.target}")
    grid.add_row("status", task_status(task))
    for label, value in (("owner", task.owner), ("parent", task.parent_id)):
        if value:
            grid.add_row(label, value)
    grid.add_row("registry", f"version {task.registry_version}")
    grid.add_row("created", f"{_time(task.created_at)} · updated {_time(task.updated_at)}")
    grid.add_row("input", short_json(task.input, 300))
    if task.result is not None:
        grid.add_row("result", short_json(task.result, 300))
    if task.error:
        grid.add_row("error", Text(str(task.error.get("message") or task.error), style="red"))
    return grid


def show(args: argparse.Namespace) -> int:
    """The task's fields, then its event history (``--json``: the same data as one document)."""
    async def run() -> int:
        async with _store(args) as store:
            history = await task_history(store, args.id)
        if getattr(args, "json", False):
            print_json(history.to_dict())
            return 0
        console = _console()
        console.print(task_summary(history.task))
        console.print(history_view(history, full=bool(getattr(args, "full", False))))
        return 0

    return asyncio.run(run())


def resume(args: argparse.Namespace) -> int:
    """Run the task here until it ends; exit 0 when it succeeded."""
    from ..app import App
    from ..agents.session import SESSION_KIND

    async def run() -> int:
        app = await App.open(args.app, store=args.store, node=args.node, recover=False, claim_interval=0,
                             publish=None)
        try:
            task = await app.tasks.get(args.id)
            if task.kind == SESSION_KIND:
                raise UsageError(f"{args.id!r} is a console session; continue it with "
                                 f"`wippy console --resume {args.id}`")
            await app.tasks.resume(args.id, retry=bool(getattr(args, "retry", False)),
                                   skip=bool(getattr(args, "skip", False)))
            print(f"resumed task {args.id} ({task.kind} {task.target}); waiting for it to end", file=sys.stderr)
            result = await app.tasks.wait(args.id)
        finally:
            await app.close()
        print(json.dumps(result, ensure_ascii=False, indent=2, default=str))
        return 0

    return asyncio.run(run())


def cancel(args: argparse.Namespace) -> int:
    from ..app import App

    async def run() -> int:
        app = await App.open(args.app, store=args.store, node=args.node, recover=False, claim_interval=0,
                             publish=None)
        try:
            task = await app.tasks.cancel(args.id, reason="cancelled with `wippy tasks cancel`")
        finally:
            await app.close()
        print(f"task {task.id} is {task.status}")
        return 0

    return asyncio.run(run())
