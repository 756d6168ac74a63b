"""Rich rendering for the console: a turn as it streams, tool panels, the status line, approvals.

``TurnView`` receives a turn's live events (from the App's event-loop thread)
and prints finished pieces above a small live area (rich ``Live``): the
streamed Markdown of the model call in progress, the tool calls running, and
a status line with a spinner, the model, and tokens/cost for the turn and the
session. Finished replies are printed as Markdown; each tool call as one
compact panel (arguments, result or error, duration), nested under its
delegate when an agent asked another agent.
"""

from __future__ import annotations

import difflib
import json
import sys
import threading
import time
from typing import Any, Mapping

import yaml
from rich.console import Console, Group, RenderableType
from rich.markdown import Markdown
from rich.padding import Padding
from rich.panel import Panel
from rich.spinner import Spinner
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from ..llm import Usage

__all__ = ["TurnView", "approval_view", "entry_diff", "entry_yaml", "money", "print_json", "short_json", "status_text",
           "tail_lines", "tool_panel"]

PREVIEW_CHARS = 160  # a tool's arguments/result beyond this are cut: the panel must not drown the answer
RESULT_LINES = 4


def money(cost: float) -> str:
    return f"${cost:.4f}" if cost < 1 else f"${cost:.2f}"


def print_json(data: Any) -> None:
    """``--json`` output: one JSON document on stdout, indented, non-ASCII kept."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def short_json(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """One line of JSON (strings as they are), cut to ``limit`` characters with an ellipsis."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split()) if len(text) > limit else text
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _args(arguments: Any) -> str:
    if isinstance(arguments, Mapping):
        return ", ".join(f"{k}={short_json(v, 60)}" for k, v in arguments.items())
    return short_json(arguments)


def tool_panel(event: Mapping[str, Any], *, agent: str | None = None) -> Panel:
    """A compact panel for a finished tool call (a ``tool_end`` event with its ``arguments``)."""
    name = str(event.get("name"))
    seconds = float(event.get("seconds") or 0.0)
    took = f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"
    failed = "error" in event
    body = Table.grid(padding=(0, 1))
    body.add_column(style="dim", no_wrap=True)
    body.add_column(overflow="fold")
    body.add_row("args", Text(_args(event.get("arguments") or {})))
    if failed:
        body.add_row("error", Text(short_json(event["error"], 400), style="red"))
    else:
        result = event.get("result")
        text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False, default=str)
        lines = text.splitlines() or [""]
        shown = "\n".join(lines[:RESULT_LINES]) + (f"\n… ({len(lines) - RESULT_LINES} more lines)"
                                                   if len(lines) > RESULT_LINES else "")
        body.add_row("result", Text(short_json(shown, 400) if len(lines) == 1 else shown))
    title = Text.assemble(("✗ " if failed else "✓ ", "red" if failed else "green"), (name, "bold"),
                          (f"  {took}", "dim"), (f"  ({agent})" if agent else "", "dim"))
    return Panel(body, title=title, title_align="left", border_style="red" if failed else "blue",
                 expand=False, padding=(0, 1))


def status_text(*, model: str, turn: Usage, session: Usage, state: str = "", context: str = "") -> Text:
    """``model · ctx [██░░] · turn N tok $x · session M tok $y`` (+ what the turn is doing)."""
    text = Text(style="dim")
    text.append(model or "?", style="cyan")
    if context:
        text.append(f" · {context}")
    text.append(f" · turn {turn.total_tokens:,} tok {money(turn.cost_usd)}")
    text.append(f" · session {session.total_tokens:,} tok {money(session.cost_usd)}")
    if state:
        text.append(f" · {state}")
    return text


def tail_lines(text: str, *, height: int, width: int) -> str:
    """The end of ``text`` that fits ``height`` screen rows at ``width`` columns (long lines wrap).

    While a reply streams, the newest lines must stay in view: the live area
    cannot scroll, and rich would cut its bottom.
    """
    kept: list[str] = []
    rows = 0
    for line in reversed(text.splitlines()):
        need = max(1, -(-len(line) // max(width - 2, 10)))
        if rows + need > height and kept:
            break
        kept.append(line)
        rows += need
    return "\n".join(reversed(kept))


class TurnView:
    """The live view of one turn; ``on_event`` is called from the App's loop thread (thread-safe).

    Use as the renderable of a ``rich.live.Live``; finished pieces go to
    ``console.print`` (printed above the live area).
    """

    def __init__(self, console: Console, *, model: str, session_usage: Usage, agent: str, context: str = "") -> None:
        self.console = console
        self.context = context  # "ctx [███░░] 12k/128k 9%" as the turn started
        self.model = model
        self.agent = agent
        self.session_usage = session_usage
        self.usage = Usage()
        self.printed_text = False
        self._lock = threading.Lock()
        self._stream: dict[str, list[str]] = {}  # task id -> text pieces of its model call in progress
        self._depth: dict[str, int] = {}
        # keyed by (task id, call id): a delegate's call ids may repeat its parent's
        self._running: dict[tuple[str, str], str] = {}  # -> "name(args)"
        self._args: dict[tuple[str, str], Any] = {}
        self._agents: dict[str, str] = {}  # delegate task id -> delegate (tool) name
        self._headed: set[str] = set()  # delegate tasks whose "↳ name" header is printed
        self._spinner = Spinner("dots", style="cyan")
        self._started = time.monotonic()

    # -- events -----------------------------------------------------------------
    def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        task = str(event.get("task_id") or "")
        depth = int(event.get("depth") or 0)
        with self._lock:
            self._depth[task] = depth
            if kind == "text":
                self._stream.setdefault(task, []).append(str(event.get("text") or ""))
                return
            if kind == "reply":
                text = "".join(self._stream.pop(task, []))
                reply = event.get("reply") or {}
                text = text or str(reply.get("text") or "")
                self.usage = self.usage + Usage.from_dict(reply.get("usage") or {})
            elif kind == "tool_start":
                key = (task, str(event.get("id")))
                self._running[key] = f"{event.get('name')}({_args(event.get('arguments') or {})})"
                self._args[key] = event.get("arguments")
                if event.get("delegate_task"):
                    self._agents[str(event["delegate_task"])] = str(event.get("name"))
                return
            elif kind == "tool_end":
                key = (task, str(event.get("id")))
                self._running.pop(key, None)
                event = {**event, "arguments": self._args.pop(key, None)}
            else:
                return
        # Printing outside the lock: the live refresh thread renders under it too.
        if kind == "reply" and text.strip():
            self._print(Markdown(text), depth, task)
            if depth == 0:
                self.printed_text = True
        elif kind == "tool_end":
            self._print(tool_panel(event), depth, task)

    def _print(self, renderable: RenderableType, depth: int, task: str) -> None:
        if depth:
            if task not in self._headed:  # once per delegated run, then its pieces are just indented
                self._headed.add(task)
                who = self._agents.get(task, "delegate")
                renderable = Group(Text(f"↳ {who} (delegated)", style="magenta"), renderable)
            renderable = Padding(renderable, (0, 0, 0, 2 * depth))
        self.console.print(renderable)

    def partial(self) -> str:
        """The text the agent was writing when the turn stopped (not yet printed)."""
        with self._lock:
            return "".join(piece for task, pieces in self._stream.items() if not self._depth.get(task)
                           for piece in pieces)

    # -- the live area ----------------------------------------------------------
    def state(self) -> str:
        if self._running:
            return "running " + ", ".join(self._running.values())
        if any(self._stream.values()):
            return "streaming"
        return "thinking"

    def __rich__(self) -> RenderableType:
        with self._lock:
            parts: list[RenderableType] = []
            height = max(4, self.console.size.height - 4)
            for task, pieces in self._stream.items():
                text = "".join(pieces)
                if text.strip():
                    tail = tail_lines(text, height=height, width=self.console.size.width)
                    depth = self._depth.get(task, 0)
                    parts.append(Padding(Markdown(tail), (0, 0, 0, 2 * depth)) if depth else Markdown(tail))
            self._spinner.text = status_text(model=self.model, turn=self.usage, context=self.context,
                                             session=self.session_usage + self.usage, state=self.state())
            parts.append(self._spinner)
            return Group(*parts)


def approval_view(request: Any) -> RenderableType:
    """What a person sees before answering an ``approval: ask`` rule: the exact proposed change."""
    details = dict(getattr(request, "details", None) or {})
    head = Text.assemble(("approval needed: ", "bold yellow"), (str(request.actor), "bold"),
                         f" wants {request.action} ", (str(request.resource), "bold"))
    parts: list[RenderableType] = [head]
    if request.rule:
        parts.append(Text(f"rule: {request.rule}", style="dim"))
    entry = details.get("entry")
    before = details.get("before")
    if isinstance(entry, Mapping):
        parts.extend(_entry_parts(entry, op=str(details.get("op") or "write"), before=before,
                                  results=details.get("example_results")))
    elif details.get("op") == "delete" and isinstance(before, Mapping):
        parts.append(Text(f"delete {before.get('id')} ({before.get('kind')})", style="red"))
    else:
        shown = {k: v for k, v in details.items() if k not in ("entry", "before")}
        if shown:
            parts.append(Syntax(json.dumps(shown, indent=2, ensure_ascii=False, default=str), "json",
                                word_wrap=True))
    return Panel(Group(*parts), border_style="yellow", title="approval", title_align="left")


def _entry_parts(entry: Mapping[str, Any], *, op: str, before: Any, results: Any = None) -> list[RenderableType]:
    data = dict(entry.get("data") or {})
    meta = dict(entry.get("meta") or {})
    parts: list[RenderableType] = [Text.assemble((f"{op} ", "bold"), (str(entry.get("id")), "bold cyan"),
                                                 f"  kind {entry.get('kind')}")]
    if meta.get("description"):
        parts.append(Text(f"description: {meta['description']}"))
    schema = data.pop("input_schema", None)
    if schema is not None:
        parts.append(Text("input_schema", style="bold"))
        parts.append(Syntax(json.dumps(schema, indent=2, ensure_ascii=False), "json", word_wrap=True))
    source = data.pop("source", None)
    data.pop("source_path", None)
    if isinstance(source, str):
        parts.append(Text(f"source (method {data.get('method', 'handler')})", style="bold"))
        parts.append(Syntax(source, "lua", line_numbers=True, word_wrap=True))
    examples = data.pop("examples", None)
    if results:
        table = Table("", "example input", "expected", "result now", title="examples, run just now in a sandbox",
                      title_justify="left")
        for row in results:
            got = Text(short_json(row["error"], 80), style="red") if "error" in row else short_json(row.get("got"), 80)
            table.add_row(Text("✓", style="green") if row.get("ok") else Text("✗", style="red"),
                          short_json(row.get("input"), 60), short_json(row.get("expected"), 60), got)
        parts.append(table)
    elif examples:
        table = Table("example input", "expected", title="examples (not run)", title_justify="left")
        for ex in examples:
            if isinstance(ex, Mapping):
                table.add_row(short_json(ex.get("input"), 80), short_json(ex.get("output"), 80))
        parts.append(table)
    rest = {k: v for k, v in data.items() if k not in ("method",) and v not in (None, [], {})}
    if rest:
        parts.append(Syntax(json.dumps(rest, indent=2, ensure_ascii=False, default=str), "json", word_wrap=True))
    if isinstance(before, Mapping):
        diff = entry_diff(before, entry)
        parts.append(Text("the change against the live entry:", style="bold"))
        parts.append(Syntax(diff, "diff", word_wrap=True) if diff else Text("(no difference)", style="dim"))
    return parts


def entry_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """A unified diff of two entries as YAML (what an update really changes)."""
    def lines(entry: Mapping[str, Any]) -> list[str]:
        doc = {"id": entry.get("id"), "kind": entry.get("kind"), "meta": entry.get("meta") or {},
               **{k: v for k, v in (entry.get("data") or {}).items() if k != "source_path"}}
        return entry_yaml(doc).splitlines()

    return "\n".join(difflib.unified_diff(lines(before), lines(after), "live", "proposed", lineterm="", n=2))


def entry_yaml(doc: Mapping[str, Any]) -> str:
    """YAML as a person writes it: keys in order, multi-line strings (Lua, prompts) as ``|`` blocks."""
    return yaml.dump(dict(doc), Dumper=_BlockDumper, sort_keys=False, allow_unicode=True)


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (Lua source, prompts) as ``|`` blocks, so a diff shows changed lines."""


_BlockDumper.add_representer(str, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v,
                                                                  style="|" if "\n" in v else None))
