"""CLI handlers for work handed to the cluster: ``wippy tasks start|wait|signal``.

``start`` queues a task (``pending``, no owner) that any ``wippy run`` node of
the store claims; it prints the task id on stdout. ``wait`` follows a task
from any process to its end and prints its result as JSON (exit 1 with its
error when it failed, was cancelled or is stranded). ``signal`` persists a
signal for a workflow's ``ctx.receive_signal``/``process.receive``; the
workflow takes it wherever it runs. None of them runs a task here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from typing import Any

from ..errors import TaskNotFound, UsageError
from ..registry import AppSettings
from ..store import open_store
from ..tasks import FINAL_STATUSES, TaskEngine

__all__ = ["start", "wait", "signal", "queue_agent"]


def _json_arg(text: str | None, where: str) -> Any:
    try:
        return None if text is None else json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where}: the argument is not valid JSON ({exc})") from None


def start(args: argparse.Namespace) -> int:
    """``wippy tasks start ENTRY [JSON] [--task-id ID]``: queue a workflow (or an agent run)."""
    value = _json_arg(args.json, f"wippy tasks start {args.entry}")
    return asyncio.run(_start(args, value))


async def _start(args: argparse.Namespace, value: Any) -> int:
    from ..agents import AGENT_TASK_KIND
    from ..app import App
    from ..registry import kinds
    from ..tasks.workflow import WORKFLOW_TASK_KIND

    app = await App.open(args.app, store=args.store, node=args.node, recover=False, claim_interval=0,
                         publish=None)
    try:
        entry = app.entry(args.entry)
        if kinds.call_mode(entry.kind) == "workflow":
            kind, data = WORKFLOW_TASK_KIND, value
        elif entry.kind == "agent":
            if not (isinstance(value, dict) and isinstance(value.get("prompt"), str)):
                raise UsageError(f"wippy tasks start {args.entry}: an agent takes {{\"prompt\": \"...\"}}; "
                                 f"or use `wippy agent run {args.entry} \"prompt\" --detach`")
            app.agents.check_ready(args.entry)
            kind, data = AGENT_TASK_KIND, {"prompt": value["prompt"], "variables": value.get("variables") or {}}
        else:
            raise UsageError(f"{args.entry!r} is a {entry.kind!r} entry; `wippy tasks start` queues a workflow "
                             "(workflow.lua) or an agent")
        task, created = await app.tasks.enqueue(kind, args.entry, data, task_id=args.task_id,
                                                registry_version=app.registry.version)
    finally:
        await app.close()
    return _report(task, created, what=f"{entry.kind} {args.entry}")


def queue_agent(app: Any, agent: str, prompt: str, task_id: str | None) -> Any:
    """Queue an agent run for the cluster (``wippy agent run ... --detach``); returns (task, created)."""
    from ..agents import AGENT_TASK_KIND

    app.agents.check_ready(agent)
    return app.tasks.enqueue(AGENT_TASK_KIND, agent, {"prompt": prompt, "variables": {}},
                             task_id=task_id or uuid.uuid4().hex, registry_version=app.registry.version)


def _report(task: Any, created: bool, *, what: str) -> int:
    print(task.id)
    if created:
        print(f"queued task {task.id} ({what}); a `wippy run` node of the store runs it; "
              f"`wippy tasks wait {task.id}` prints its result", file=sys.stderr)
    else:
        print(f"task {task.id} already exists ({task.kind} {task.target}, {task.status}); nothing queued",
              file=sys.stderr)
    return 0


def wait(args: argparse.Namespace) -> int:
    """``wippy tasks wait ID [--timeout S]``: print the task's result as JSON once it ends."""

    async def run() -> Any:
        settings = AppSettings.load(args.app, store=args.store, node=args.node)
        store = await open_store(settings.store)
        engine = TaskEngine(store, node_name=settings.node, claim_interval=0, poll_interval=0.1)
        try:
            return await engine.wait(args.id, timeout=args.timeout)
        finally:
            await engine.close()
            await store.close()

    result = asyncio.run(run())
    print(json.dumps(result, ensure_ascii=False, indent=2, default=str))
    return 0


def signal(args: argparse.Namespace) -> int:
    """``wippy tasks signal ID NAME [JSON]``: deliver a signal to a (running or waiting) workflow."""
    payload = _json_arg(args.json, f"wippy tasks signal {args.id} {args.name}")

    async def run() -> int:
        settings = AppSettings.load(args.app, store=args.store, node=args.node)
        store = await open_store(settings.store)
        try:
            task = await store.task_get(args.id)
            if task is None:
                raise TaskNotFound(f"no task with id {args.id!r}; `wippy tasks list` shows the tasks", task_id=args.id)
            if task.status in FINAL_STATUSES:
                raise UsageError(f"task {args.id!r} already {task.status}; a signal would never be received",
                                 task_id=args.id)
            return await store.signal_send(args.id, args.name, payload)
        finally:
            await store.close()

    sid = asyncio.run(run())
    print(f"signal {args.name!r} (id {sid}) sent to task {args.id}", file=sys.stderr)
    return 0
