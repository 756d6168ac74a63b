"""Slash commands of the console: parsing (pure) and the commands themselves.

``parse("/show app.tools:x")`` -> ``("show", ["app.tools:x"])``; an unknown
command or bad arguments raise ``SlashError`` whose text is a one-line hint.
``run_command(shell, line)`` runs one; a command gets a ``Shell`` (the
console's state: app, session, rich console, and ``call`` to run a coroutine
on the App's loop) and returns ``QUIT`` to leave.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table
from rich.tree import Tree

from ..errors import UsageError, WippyError
from .render import entry_yaml, money, short_json

__all__ = ["COMMANDS", "QUIT", "Command", "Shell", "SlashError", "parse", "run_command", "process_tree",
           "describe_error", "changes_summary"]

QUIT = "quit"


class SlashError(UsageError):
    """A slash command that cannot run as typed; ``str()`` is the one-line hint."""


class Shell(Protocol):
    """What commands need of the console."""

    app: Any
    session: Any
    console: Console

    def call(self, coro: Any) -> Any:
        """Run ``coro`` on the App's loop and return its result (raises its error)."""

    def lock(self, session_id: str) -> Callable[[], None]:
        """Mark a session as open here (``UsageError`` if another console has it); returns the release."""

    def switch(self, session: Any, release: Callable[[], None] | None = None) -> None:
        """Make ``session`` the current one (``release`` frees its lock when it is left)."""


@dataclass(frozen=True, kw_only=True)
class Command:
    name: str
    usage: str
    help: str
    run: Callable[[Shell, list[str]], Any]
    min_args: int = 0
    max_args: int = 0


COMMANDS: dict[str, Command] = {}


def command(name: str, usage: str, help: str, *, min_args: int = 0, max_args: int = 0):
    def register(fn: Callable[[Shell, list[str]], Any]) -> Callable[[Shell, list[str]], Any]:
        COMMANDS[name] = Command(name=name, usage=usage, help=help, run=fn, min_args=min_args, max_args=max_args)
        return fn
    return register


def parse(line: str) -> tuple[str, list[str]]:
    """Split ``/name args…``; raises ``SlashError`` for an unknown command or a wrong number of arguments."""
    try:
        words = shlex.split(line.strip())
    except ValueError as exc:
        raise SlashError(f"cannot read {line.strip()!r}: {exc}") from None
    if not words or not words[0].startswith("/") or len(words[0]) < 2:
        raise SlashError("commands start with / — /help lists them")
    name, args = words[0][1:].lower(), words[1:]
    cmd = COMMANDS.get(name)
    if cmd is None:
        near = [c for c in COMMANDS if c.startswith(name[:2])]
        hint = f"; did you mean {', '.join('/' + c for c in near)}?" if near else ""
        raise SlashError(f"unknown command /{name}{hint} (/help lists the commands)")
    if not cmd.min_args <= len(args) <= cmd.max_args:
        raise SlashError(f"usage: {cmd.usage}")
    return name, args


def run_command(shell: Shell, line: str) -> Any:
    """Parse and run one command; returns ``QUIT`` to leave. Raises ``SlashError``/``WippyError`` (one line)."""
    name, args = parse(line)
    return COMMANDS[name].run(shell, args)


# -- commands ---------------------------------------------------------------------

@command("help", "/help", "this list")
def _help(shell: Shell, args: list[str]) -> None:
    table = Table("command", "what it does", title="commands", title_justify="left", box=None)
    for cmd in COMMANDS.values():
        table.add_row(cmd.usage, cmd.help)
    shell.console.print(table)
    shell.console.print("Ctrl-C cancels the turn in flight; Ctrl-D (or /quit) leaves. "
                        "The session is durable: resume it with wippy console --resume ID.", style="dim")


@command("agents", "/agents", "the agents of this app")
def _agents(shell: Shell, args: list[str]) -> None:
    table = Table("agent", "model", "description", title="agents", title_justify="left")
    for entry in shell.app.registry.find(kind="agent"):
        mark = " ←" if str(entry.id) == shell.session.agent else ""
        table.add_row(f"{entry.id}{mark}", str(entry.data.get("model") or "(lua)"),
                      str(entry.meta.get("description") or ""))
    shell.console.print(table)


@command("use", "/use AGENT", "talk to another agent from the next turn on", min_args=1, max_args=1)
def _use(shell: Shell, args: list[str]) -> None:
    agent = shell.call(shell.session.use(args[0]))
    shell.console.print(f"now talking to [bold]{agent}[/]")


@command("tools", "/tools", "the tools the current agent sees now")
def _tools(shell: Shell, args: list[str]) -> None:
    from ..agents import build_toolset
    from ..llm import TokenCounter

    service = shell.app.agents
    snap = shell.app.registry.snapshot()
    spec = service.spec(shell.session.agent, snap)
    cfg, _ = service.model(spec, snap)
    toolset = build_toolset(snap, spec, TokenCounter(cfg.model))
    table = Table("tool", "entry", "description", title=f"tools of {spec.id}", title_justify="left")
    for tool in toolset.specs:
        entry = toolset.entries.get(tool.name)
        where = str(entry.id) if entry is not None else f"delegate {toolset.delegates[tool.name].id}"
        table.add_row(tool.name, where, short_json(tool.description, 80))
    shell.console.print(table)


@command("registry", "/registry [PATTERN]", "list entries (a glob or a namespace prefix)", max_args=1)
def _registry(shell: Shell, args: list[str]) -> None:
    pattern = args[0] if args else None
    if pattern is not None and not any(c in pattern for c in "*?["):
        pattern += "*"
    entries = shell.app.registry.find(pattern=pattern)
    table = Table("id", "kind", "origin", "description",
                  title=f"registry version {shell.app.registry.version}", title_justify="left")
    for e in entries:
        table.add_row(str(e.id), e.kind, e.origin, short_json(str(e.meta.get("description") or ""), 60))
    shell.console.print(table if entries else f"no entry matches {args[0]!r}")


@command("show", "/show ID", "one entry, as YAML", min_args=1, max_args=1)
def _show(shell: Shell, args: list[str]) -> None:
    entry = shell.app.registry.get(args[0])
    if entry is None:
        raise SlashError(f"no entry {args[0]!r}; /registry lists them")
    doc = {"id": str(entry.id), "kind": entry.kind, "meta": entry.meta,
           **{k: v for k, v in entry.data.items() if k != "source_path"}}
    where = f"{entry.file}:{entry.line}" if entry.file else f"<{entry.origin}>"
    shell.console.print(f"[dim]# {entry.origin} entry · {where}[/]")
    shell.console.print(Syntax(entry_yaml(doc), "yaml"))


@command("history", "/history", "registry versions: who changed what and why")
def _history(shell: Shell, args: list[str]) -> None:
    records = shell.call(shell.app.registry.history(limit=20))
    table = Table("version", "time", "author", "reason", "changes", title="registry history", title_justify="left")
    for r in records:
        table.add_row(str(r.version), _time(r.created_at), r.author, r.reason, changes_summary(r.changes))
    shell.console.print(table)


@command("rollback", "/rollback VERSION", "make the registry as it was at VERSION (a new version)",
         min_args=1, max_args=1)
def _rollback(shell: Shell, args: list[str]) -> None:
    try:
        version = int(args[0])
    except ValueError:
        raise SlashError(f"usage: /rollback VERSION (a number; /history lists them), not {args[0]!r}") from None
    before = shell.app.registry.version
    new = shell.call(shell.app.registry.rollback(version, author="console", reason=f"/rollback {version}"))
    if new == before:
        shell.console.print(f"the registry already matches version {version}")
    else:
        shell.console.print(f"rolled back to version {version} as version {new}")


@command("tasks", "/tasks", "recent durable tasks")
def _tasks(shell: Shell, args: list[str]) -> None:
    from .tasks_cmd import task_status

    tasks = shell.call(shell.app.store.task_list(limit=20))
    table = Table("id", "kind", "target", "status", "owner", "updated", title="tasks", title_justify="left")
    for column in table.columns[:2]:
        column.no_wrap = True  # an id must stay whole to be copied into /resume or /show
    for t in tasks:
        table.add_row(t.id, t.kind, t.target, task_status(t), t.owner or "", _time(t.updated_at))
    shell.console.print(table)


@command("resume", "/resume ID [retry|skip]", "continue a console session, or resume a stranded task",
         min_args=1, max_args=2)
def _resume(shell: Shell, args: list[str]) -> None:
    from ..agents.session import SESSION_KIND

    task_id, how = args[0], (args[1].lower() if len(args) > 1 else "")
    if how not in ("", "retry", "skip"):
        raise SlashError("usage: /resume ID [retry|skip]")
    task = shell.call(shell.app.tasks.get(task_id))
    if task.kind == SESSION_KIND:
        if task_id == shell.session.id:
            raise SlashError(f"{task_id} is this session")
        release = shell.lock(task_id)
        try:
            session = shell.call(shell.app.sessions.resume(task_id))
        except BaseException:
            release()
            raise
        shell.call(shell.session.close())  # only once the other one is ours: a failed resume keeps this one
        shell.switch(session, release)
        shell.console.print(f"resumed session [bold]{task_id}[/] ({len(session.state.turns)} turns, "
                            f"agent {session.agent})")
        return
    shell.call(shell.app.tasks.resume(task_id, retry=how == "retry", skip=how == "skip"))
    shell.console.print(f"resumed task {task_id} ({task.kind} {task.target}); /tasks shows how it goes")


@command("ps", "/ps", "the node's live supervision tree: supervisors, processes, and the tasks running")
def _ps(shell: Shell, args: list[str]) -> None:
    tree = process_tree(shell.app.node.processes(), node=shell.app.node)
    running = sorted(shell.app.tasks.running())
    branch = tree.add(f"[bold]tasks[/] · {len(running)} running here")
    children: dict[str, list[str]] = {}
    for task_id in running:  # a session's turns (<sid>.<n>) and delegates (<turn>/<k>.<call>) nest
        parent = next((p for p in running if p != task_id and task_id.startswith(p) and task_id[len(p)] in "./"),
                      None)
        children.setdefault(parent or "", []).append(task_id)

    def add(node: Tree, parent: str) -> None:
        for task_id in children.get(parent, []):
            add(node.add(f"task:{task_id}"), task_id)

    add(branch, "")
    shell.console.print(tree)


@command("model", "/model [ID]", "talk to another llm.model entry from the next turn on (no ID: list them)",
         max_args=1)
def _model(shell: Shell, args: list[str]) -> None:
    if not args:
        models = shell.app.registry.find(kind="llm.model")
        current = shell.session.state.model
        for e in models:
            mark = "*" if str(e.id) == current else " "
            shell.console.print(f"{mark} {e.id}  [dim]{e.data.get('provider')} {e.data.get('model')}[/]")
        if not current:
            shell.console.print("[dim]the agent's own model is in use; /model ID switches[/]")
        return
    model = shell.call(shell.session.use_model(args[0]))
    shell.console.print(f"[dim]later turns use {model}[/]")


@command("compact", "/compact", "summarise the conversation so far (the model writes it; older turns give way)")
def _compact(shell: Shell, args: list[str]) -> None:
    record = shell.call(shell.session.compact())
    summary = str(record.get("summary") or "").strip()
    first = summary.splitlines()[0] if summary else ""
    usage = record.get("usage") or {}
    tokens = int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0)
    shell.console.print(f"[dim]▸ summary of {record.get('replaced', 0)} earlier messages "
                        f"({tokens:,} tok {money(float(usage.get('cost_usd') or 0))}): {short_json(first, 90)}[/]")


@command("editor", "/editor", "write the next message in $EDITOR (it is sent when you save and quit)")
def _editor(shell: Shell, args: list[str]) -> None:
    import os
    import subprocess
    import tempfile

    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.NamedTemporaryFile("w+", suffix=".md", delete=False, encoding="utf-8") as f:
        path = f.name
    try:
        code = subprocess.call([*shlex.split(editor), path])
        with open(path, encoding="utf-8") as f:
            text = f.read().strip()
    finally:
        os.unlink(path)
    if code != 0 or not text:
        shell.console.print(f"[dim]nothing sent ({editor} exited {code}{', the file was empty' if not text else ''})[/]")
        return
    run_turn = getattr(shell, "run_turn", None)
    if run_turn is None:
        raise UsageError("/editor needs the interactive console")
    run_turn(text)


@command("cost", "/cost", "tokens and cost of this session, per turn")
def _cost(shell: Shell, args: list[str]) -> None:
    state = shell.session.state
    table = Table("turn", "agent", "model calls", "tokens in", "tokens out", "cost", "stop",
                  title=f"session {shell.session.id}", title_justify="left")
    for t in state.turns:
        table.add_row(str(t.n), t.agent, str(t.model_calls), f"{t.usage.input_tokens:,}",
                      f"{t.usage.output_tokens:,}", money(t.usage.cost_usd), t.stop_reason)
    total = state.usage
    table.add_row("total", "", str(sum(t.model_calls for t in state.turns)), f"{total.input_tokens:,}",
                  f"{total.output_tokens:,}", money(total.cost_usd), "", style="bold")
    shell.console.print(table)


@command("clear", "/clear", "clear the screen; the agent forgets the turns so far")
def _clear(shell: Shell, args: list[str]) -> None:
    shell.call(shell.session.clear())
    shell.console.clear()
    shell.console.print(f"[dim]cleared; session {shell.session.id} goes on with a fresh context[/]")


@command("quit", "/quit", "leave (the session is kept; resume it with --resume)")
def _quit(shell: Shell, args: list[str]) -> str:
    return QUIT


# -- helpers ----------------------------------------------------------------------

def process_tree(processes: list[Any], *, node: Any = None) -> Tree:
    """The live processes as a tree (children under the process that spawned them)."""
    name = getattr(node, "name", None) or "node"
    root = Tree(f"[bold]{name}[/] · {len(processes)} processes")
    by_pid = {p.pid: p for p in processes}
    kids: dict[str | None, list[Any]] = {}
    for p in processes:
        parent = p.parent if p.parent in by_pid else None
        kids.setdefault(parent, []).append(p)

    def label(p: Any) -> str:
        sup = "upervisor" in p.body
        name = f" [bold]{p.name}[/]" if p.name else ""
        extra = f" · {p.queued} queued" if p.queued else ""
        short = p.body.rpartition("<locals>.")[2] or p.body  # a closure's qualified name says little
        body = f"[magenta]{short}[/]" if sup else short
        return f"{p.pid}{name} · {body} · {p.status}{extra}"

    def add(tree: Tree, parent: str | None) -> None:
        for p in kids.get(parent, []):
            add(tree.add(label(p)), p.pid)

    add(root, None)
    return root


def changes_summary(changes: list[dict[str, Any]], limit: int = 4) -> str:
    """``create: a, b; update: c`` (the first few ids per operation, then how many more)."""
    by_op: dict[str, list[str]] = {}
    for change in changes:
        by_op.setdefault(str(change.get("op")), []).append(str(change.get("id")))
    parts = []
    for op, ids in by_op.items():
        more = f" +{len(ids) - limit} more" if len(ids) > limit else ""
        parts.append(f"{op}: {', '.join(ids[:limit])}{more}")
    return "; ".join(parts)


def _time(ts: float) -> str:
    if not ts:
        return ""
    today = time.strftime("%Y-%m-%d") == time.strftime("%Y-%m-%d", time.localtime(ts))
    return time.strftime("%H:%M:%S" if today else "%m-%d %H:%M", time.localtime(ts))


def describe_error(exc: BaseException) -> str:
    """One line for an error a command raised."""
    if isinstance(exc, WippyError):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{type(exc).__name__}: {exc}"

