"""``wippy tasks show``: a task's event history in the terminal, as the Temporal UI shows a workflow's.

One line per event: the task created, each journaled step (time, duration,
node, attempt, ``#seq name``, status, its result or error collapsed to one
line), the task's end. A child task's history is nested under the step that
started it, indented one bar per level.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group
from rich.text import Text

from ..store.base import TaskRecord
from ..tasks.history import StepEvent, TaskHistory
from .render import money, short_json

__all__ = ["history_view", "readable_result"]

_STEP_STYLE = {"ok": "green", "error": "red", "started": "yellow"}
_TASK_STYLE = {"succeeded": "green", "failed": "red", "stranded": "yellow", "cancelled": "dim", "running": "cyan",
               "pending": "cyan"}
_FINAL = ("succeeded", "failed", "cancelled", "stranded")
OUTCOME_CHARS = 100


def readable_result(name: str, result: Any) -> Any:
    """What a person wants from a step's result: a model reply's text and calls, a signal's payload."""
    if name == "model" and isinstance(result, dict):
        calls = [f"{c.get('name')}({short_json(c.get('arguments'), 60)})" for c in result.get("tool_calls") or ()]
        return (result.get("text") or "") + (" → " + ", ".join(calls) if calls else "")
    if name.startswith("signal:") and isinstance(result, dict) and "payload" in result:
        return result["payload"]
    if name.startswith("turn:") and isinstance(result, dict):
        return f"{result.get('prompt')!r} → {result.get('answer') or result.get('stop_reason')}"
    if isinstance(result, (int, float)) and (name in ("time.sleep", "time.now") or name.startswith("signal.deadline:")):
        # durable timers and clock reads are epoch seconds; a person reads a time
        label = {"time.sleep": "wakes at ", "time.now": ""}.get(name, "deadline ")
        return label + _clock(result)
    return result


def history_view(history: TaskHistory, *, full: bool = False) -> Group:
    """The event history as lines of text (children nested); ``full`` keeps results and errors whole."""
    lines: list[Text] = []
    widths = _widths(history)
    _task_lines(history, lines, widths, depth=0, full=full)
    if full:  # whole results may be long: wrap them rather than cut
        for line in lines:
            line.no_wrap, line.overflow = False, "fold"
    day = time.strftime("%Y-%m-%d", time.localtime(history.task.created_at))
    head = Text(f"history (local time, {day})", style="bold")
    cols = Text(f"{'time':<12}  {'took':>8}  {'node':<{widths['node']}}  {'try':>3}  step", style="dim")
    return Group(head, cols, *lines)


def _widths(history: TaskHistory) -> dict[str, int]:
    nodes = [len(s.node or "") for s in _all_steps(history)]
    return {"node": max([4, *nodes])}


def _all_steps(history: TaskHistory):
    for s in history.steps:
        yield s
        for c in s.children:
            yield from _all_steps(c)
    for c in history.children:
        yield from _all_steps(c)


def _task_lines(h: TaskHistory, lines: list[Text], widths: dict[str, int], *, depth: int, full: bool) -> None:
    task = h.task
    bar = "│ " * depth
    if depth:
        lines.append(Text(bar[:-2] + "├─ child task ", style="bold").append(task.id, style="bold")
                     .append(f" · {task.kind} {task.target} · ").append(task.status,
                                                                        style=_TASK_STYLE.get(task.status, "")))
    lines.append(_line(bar, task.created_at, None, "", 0, Text("task created", style="bold"),
                       Text(f"{task.kind} · {task.target} · input {_cut(task.input, full)}"), widths))
    for step in h.steps:
        lines.append(_step_line(bar, step, widths, full=full, live=task.status == "running"))
        for child in step.children:
            _task_lines(child, lines, widths, depth=depth + 1, full=full)
    for child in h.children:
        _task_lines(child, lines, widths, depth=depth + 1, full=full)
    if h.more_children:
        lines.append(Text(bar + "  … child tasks not shown (`wippy tasks show` one of them)", style="dim"))
    if task.status in _FINAL:
        lines.append(_line(bar, task.updated_at, None, "", 0,
                           Text(f"task {task.status}", style="bold " + _TASK_STYLE.get(task.status, "")),
                           _end(task, full), widths))


def _step_line(bar: str, step: StepEvent, widths: dict[str, int], *, full: bool, live: bool) -> Text:
    label = Text(f"#{step.seq} {step.name} ").append(step.status, style=_STEP_STYLE.get(step.status, ""))
    if step.error and step.status == "error":
        outcome = Text(_cut(step.error.get("message") or step.error, full), style="red")
    elif step.error:  # an 'ok' row with a note: a skipped step keeps its skip record there
        outcome = Text(_cut(step.error.get("message") or step.error, full), style="yellow")
    elif step.status == "started":
        outcome = Text("running (or its node is gone)" if live else "started, never finished", style="yellow")
    else:
        outcome = Text(_cut(readable_result(step.name, step.result), full))
    if step.tokens or step.cost_usd:
        outcome.append(f"  [{step.tokens} tokens, {money(step.cost_usd)}]", style="dim")
    return _line(bar, step.started_at, step.duration, step.node or "", step.attempt, label, outcome, widths)


def _line(bar: str, at: float, took: float | None, node: str, attempt: int, label: Text, outcome: Text,
          widths: dict[str, int]) -> Text:
    line = Text(bar, style="dim", no_wrap=True, overflow="ellipsis")
    line.append(f"{_clock(at, date=False):<12}  {_took(took):>8}  ")
    line.append(f"{node:<{widths['node']}}", style="cyan")
    line.append(f"  {str(attempt) if attempt else '':>3}  ", style="yellow" if attempt > 1 else "")
    return line.append_text(label).append("  ").append_text(outcome)


def _end(task: TaskRecord, full: bool) -> Text:
    if task.error:
        return Text(_cut(task.error.get("message") or task.error, full), style="red")
    return Text("result " + _cut(task.result, full)) if task.result is not None else Text("")


def _cut(value: Any, full: bool) -> str:
    if full:
        return value if isinstance(value, str) else short_json(value, 10 ** 9)
    text = value if isinstance(value, str) else short_json(value, 10 ** 9)
    return short_json(" ".join(text.split()), OUTCOME_CHARS)  # collapsed: one event, one line


def _took(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _clock(ts: float, *, date: bool = True) -> str:
    fmt = "%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S"
    return time.strftime(fmt, time.localtime(ts)) + f".{int(ts % 1 * 1000):03d}"
