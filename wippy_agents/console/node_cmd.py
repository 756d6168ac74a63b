"""CLI handlers: ``wippy run`` (start the node) and ``wippy call ENTRY [JSON]``.

``run`` opens the app with the file watcher on and follows the store (versions
made by other processes go live here), is a worker (claims queued tasks and
those of dead nodes, up to ``max_tasks``, polling every ``QUEUE_POLL``
seconds unless ``tasks.claim_interval`` says otherwise), starts the
``process.service`` entries in dependency order, logs one line per record on
stderr and stops cleanly on SIGINT/SIGTERM (services in reverse order, then
the node; its tasks go back to ``pending``).

``call`` runs one function entry (a ``workflow.lua`` entry as a durable task,
``--task-id`` its idempotency key): the decoded JSON is its first argument,
the first return value is printed as JSON on stdout; ``nil, err`` or a
raised error is one line on stderr and exit code 1 (raised as a
``WippyError`` for ``cli.main`` to print).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from typing import Any

from ..app import App
from ..errors import UsageError
from ..registry import AppSettings

__all__ = ["run", "call", "serve"]

log = logging.getLogger("wippy_agents.node")

QUEUE_POLL = 0.25  # seconds between a worker's looks at the queue (a claim is one indexed read when idle)


def _open_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"store": getattr(args, "store", None), "node": getattr(args, "node", None)}


def run(args: argparse.Namespace) -> int:
    """``wippy run``: blocks until SIGINT/SIGTERM; returns 0 after a clean stop."""
    return asyncio.run(serve(getattr(args, "app", None), **_open_kwargs(args)))


async def serve(path: Any, *, stop: asyncio.Event | None = None, **open_kwargs: Any) -> int:
    """Open the app, start its services, wait for ``stop`` (or a signal), close everything."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
            pass
    try:
        settings = AppSettings.load(path, store=open_kwargs.pop("store", None), node=open_kwargs.pop("node", None))
        if "claim_interval" not in ((settings.extra.get("tasks") or {}) if isinstance(settings.extra.get("tasks"),
                                                                                    dict) else {}):
            open_kwargs.setdefault("claim_interval", QUEUE_POLL)
        app = await App.open(settings=settings, watch=True, follow=True, publish=True, **open_kwargs)
        try:
            procs = app.processes
            started = await procs.start_services()
            log.info("node %s running: %d service(s) started, registry version %d", app.settings.node,
                     len(started), app.registry.version)
            await stop.wait()
            log.info("node %s stopping", app.settings.node)
        finally:
            await app.close()
        log.info("node %s stopped", app.settings.node)
        return 0
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def call(args: argparse.Namespace) -> int:
    """``wippy call ENTRY [JSON]``: print the entry's first return value as JSON."""
    text = args.json
    try:
        value = None if text is None else json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"wippy call {args.entry}: the argument is not valid JSON ({exc})") from None
    result = asyncio.run(_call(args, value))
    sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
    return 0


async def _call(args: argparse.Namespace, value: Any) -> Any:
    # A one-shot command runs its own call only: it neither recovers nor claims other nodes' tasks.
    app = await App.open(getattr(args, "app", None), recover=False, claim_interval=0, publish=None,
                         **_open_kwargs(args))
    task_id = getattr(args, "task_id", None)
    try:
        entry = app.entry(args.entry)
        kind = entry.kind
        if kind == "workflow.lua":  # a durable task; --task-id makes it idempotent
            task = await app.workflows.start(args.entry, value, task_id=task_id)
            if task.status in ("pending", "running") and task.id not in app.tasks.running():
                # found unfinished and run by nobody here: the orphan of a killed `wippy call`
                try:
                    await app.tasks.resume(task.id)
                except UsageError:  # another live node runs it: follow it to its end
                    pass
            return await app.tasks.wait(task.id)
        if task_id is not None:
            raise UsageError(f"--task-id applies to workflow.lua entries; {args.entry!r} is a {kind!r} entry, "
                             "which runs once per call")
        if entry.meta.get("type") == "tool":  # the same check, and fixable message, a model's call gets
            from ..agents import validate_arguments

            validate_arguments(str(entry.id), entry.data.get("input_schema"), {} if value is None else value)
        return await app.call(args.entry, value)
    finally:
        await app.close()
