"""``wippy agent run AGENT "prompt" [--task-id ID]``: run an agent to its end.

The answer goes to stdout, streamed as the model writes it; tool calls, the
stop reason and usage go to stderr. Rerunning with the same ``--task-id``
after a crash resumes the run from its journal (no model or tool call that
already finished is made again); after a finished run it prints that run's answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
import uuid
from typing import Any, TextIO

__all__ = ["run", "AgentPrinter"]


class AgentPrinter:
    """Turns a run's live events into stdout text and stderr progress lines."""

    def __init__(self, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
        self.out, self.err = out, err
        self.live_calls = 0
        self._line_open = False
        self._last_streamed = ""
        self._streamed: set[str] = set()  # the text of every reply shown live
        self._current = []  # text pieces of the model call in progress

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("type") == "text":
            self._current.append(event["text"])
            self.out.write(event["text"])
            self.out.flush()
            self._line_open = True
        elif event.get("type") == "reply":
            self.live_calls += 1
            reply = event["reply"]
            self._last_streamed = "".join(self._current)
            self._streamed.add(self._last_streamed)
            self._current = []
            calls = reply.get("tool_calls") or []
            if calls and self._line_open:
                self.out.write("\n")
                self.out.flush()
                self._line_open = False
            for call in calls:
                args = call.get("raw_arguments") or json.dumps(call.get("arguments") or {}, ensure_ascii=False)
                self.err.write(f"-> {call['name']}({_short(args)})\n")
            self.err.flush()
        elif event.get("type") == "tool_end" and "error" in event:
            self.err.write(f"   {event['name']} failed: {_short(str(event['error']), 200)}\n")
            self.err.flush()

    def finish(self, answer: str) -> None:
        """Print what the stream did not already show, and end the line.

        A run stopped by a limit answers with an earlier reply's text, already shown as it streamed.
        """
        if answer and answer in self._streamed:
            if self._line_open:
                self.out.write("\n")
        else:
            if self._line_open:
                self.out.write("\n")
            self.out.write(answer + "\n")
        self.out.flush()


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run(args: argparse.Namespace) -> int:
    """The CLI handler; exit code 0 for a final answer, 3 when a limit or a cancel stopped the run,
    130 after Ctrl-C / SIGTERM (the task stays pending: one line says how to resume it)."""
    task_id = args.task_id or uuid.uuid4().hex
    try:
        return asyncio.run(_run(args, task_id))
    except KeyboardInterrupt:
        sys.stdout.flush()
        sys.stderr.write(f"\ninterrupted: task {task_id} is pending; resume it with "
                         f"`wippy agent run {args.agent} {shlex.quote(args.prompt)} --task-id {task_id}`\n")
        return 130


async def _run(args: argparse.Namespace, task_id: str) -> int:
    from ..app import App

    printer = AgentPrinter()
    # recover=False, claim_interval=0: this command runs its own task only (`service.run` takes it
    # over itself, after the printer listens); `wippy run` nodes are the workers.
    app = await App.open(args.app, store=args.store, node=args.node, recover=False, claim_interval=0,
                         publish=None)
    if getattr(args, "detach", False):
        from .queue_cmd import queue_agent

        try:
            task, created = await queue_agent(app, args.agent, args.prompt, args.task_id)
        finally:
            await app.close()
        print(task.id)
        print(f"queued agent run {task.id} ({args.agent}); `wippy tasks wait {task.id}` prints its result"
              if created else f"task {task.id} already exists ({task.status}); nothing queued", file=sys.stderr)
        return 0
    try:
        service = app.agents
        result = await service.run(args.agent, args.prompt, task_id=task_id, on_event=printer)
    finally:
        await app.close()
    printer.finish(result.answer)
    u = result.usage
    replayed = max(0, result.turns - printer.live_calls)
    sys.stderr.write(
        f"stop: {result.stop_reason} ({result.detail}); turns: {result.turns}; "
        f"model calls: {printer.live_calls} ({replayed} replayed from the journal); "
        f"tokens: {u.input_tokens} in, {u.output_tokens} out; cost: ${u.cost_usd:.4f}; task: {task_id}\n")
    return 0 if result.ok else 3
