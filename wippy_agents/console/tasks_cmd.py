"""CLI handlers: ``wippy tasks list|show|resume|cancel``.

``show`` prints a task and its journal readably: one row per step (seq,
name, status, duration, tokens/cost, result or error, cut to one line), and
the tasks it started. ``resume`` runs a stranded, failed or orphaned task here
until it ends; ``cancel`` marks it cancelled (its run stops at its next step).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..errors import TaskNotFound, UsageError
from ..registry import AppSettings
from ..store import open_store
from ..store.base import StepRecord, TaskRecord
from .render import money, short_json

__all__ = ["list_tasks", "show", "resume", "cancel", "journal_table", "task_summary", "task_status"]

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
            tasks = await store.task_list(status=getattr(args, "status", None), limit=100)
        table = Table("id", "kind", "target", "status", "owner", "created", "updated",
                      title=f"tasks{' (' + args.status + ')' if getattr(args, 'status', None) else ''}",
                      title_justify="left")
        for t in tasks:
            table.add_row(t.id, t.kind, t.target, task_status(t), t.owner or "", _time(t.created_at),
                          _time(t.updated_at))
        _console().print(table if tasks else "no tasks")
        return 0

    return asyncio.run(run())


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


def journal_table(steps: list[StepRecord]) -> Table:
    """One row per journaled step; results and errors cut to one line."""
    table = Table("seq", "step", "status", "took", "tokens", "cost", "result / error", title="journal",
                  title_justify="left")
    for s in steps:
        took = f"{(s.finished_at - s.started_at) * 1000:.0f} ms" if s.finished_at and s.started_at else ""
        if s.error:
            outcome = Text(short_json(s.error.get("message") or s.error, 120), style="red" if s.status == "error"
                           else "yellow")
        elif s.status == "started":
            outcome = Text("started, never finished", style="yellow")
        else:
            outcome = Text(short_json(_readable(s), 120))
        status = Text(s.status, style={"ok": "green", "error": "red", "started": "yellow"}.get(s.status, ""))
        table.add_row(str(s.seq), s.name, status, took, str(s.tokens or ""), money(s.cost_usd) if s.cost_usd else "",
                      outcome)
    return table


def _readable(step: StepRecord) -> Any:
    """What a person wants from a step's result: a model reply's text and calls, a signal's payload."""
    result = step.result
    if step.name == "model" and isinstance(result, dict):
        calls = [f"{c.get('name')}({short_json(c.get('arguments'), 60)})" for c in result.get("tool_calls") or ()]
        return (result.get("text") or "") + (" → " + ", ".join(calls) if calls else "")
    if step.name.startswith("signal:") and isinstance(result, dict) and "payload" in result:
        return result["payload"]
    if step.name.startswith("turn:") and isinstance(result, dict):
        return f"{result.get('prompt')!r} → {result.get('answer') or result.get('stop_reason')}"
    if isinstance(result, (int, float)) and (step.name in ("time.sleep", "time.now")
                                             or step.name.startswith("signal.deadline:")):
        # durable timers and clock reads are epoch seconds; a person reads a time
        label = {"time.sleep": "wakes at ", "time.now": ""}.get(step.name, "deadline ")
        return label + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(result)) + f".{int(result % 1 * 1000):03d}"
    return result


def show(args: argparse.Namespace) -> int:
    async def run() -> int:
        async with _store(args) as store:
            task = await store.task_get(args.id)
            if task is None:
                raise TaskNotFound(f"no task with id {args.id!r}; `wippy tasks list` shows the tasks", task_id=args.id)
            steps = await store.journal_load(args.id)
            children = [t for t in await store.task_list(limit=1000) if t.parent_id == args.id]
        console = _console()
        console.print(task_summary(task))
        console.print(journal_table(steps) if steps else Text("journal: no steps yet", style="dim"))
        if children:
            table = Table("child task", "kind", "target", "status", title="started by this task", title_justify="left")
            for c in sorted(children, key=lambda t: t.created_at):
                table.add_row(c.id, c.kind, c.target, _status(c.status))
            console.print(table)
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
