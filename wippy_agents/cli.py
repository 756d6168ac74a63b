"""The ``wippy`` command: argument parsing only.

Each subcommand names a handler ``"module:function"`` that takes the parsed
``argparse.Namespace`` and returns an exit code; handlers live in the layers
(rendering in ``wippy_agents.console``). Errors are one line on stderr and a
non-zero exit, with a traceback only under ``--debug``.

The common flags (``--app``, ``--store``, ``--node``, ``--log-level``,
``--log-format``, ``--debug``) are one parent parser shared by the top level
and every subcommand, with ``argparse.SUPPRESS`` defaults: a flag that is not
given sets nothing, so one given before the subcommand is never overwritten
by the subcommand's parser, and one given after it wins (the last one given
counts). ``parse_args`` fills in the defaults afterwards.

A new command is one ``_cmd(sub, name, "module:function", help, example=...)``
call: the example is required (a test checks every ``--help`` shows one), and
each positional gets a ``help=``. Enumerated values use ``choices=``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from typing import Any, Callable, NoReturn

from .errors import WippyError

__all__ = ["main", "build_parser", "parse_args", "COMMON_DEFAULTS", "LOG_LEVELS", "LOG_FORMATS", "TASK_STATUSES"]

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
TASK_STATUSES = ("pending", "running", "succeeded", "failed", "cancelled", "stranded")
# What a common flag means when it is given nowhere on the command line.
COMMON_DEFAULTS: dict[str, Any] = {
    "app": None, "store": None, "node": None, "log_level": "INFO", "log_format": "text", "debug": False,
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what is wrong, where to look), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _common_flags() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    g = common.add_argument_group("common options (before or after the command)")
    g.add_argument("--app", metavar="DIR", default=argparse.SUPPRESS,
                   help="app directory or single YAML file (default: the current directory)")
    g.add_argument("--store", metavar="URL", default=argparse.SUPPRESS,
                   help="store URL: sqlite:///relative/path, sqlite:////absolute/path or postgresql://user@host/db "
                        "(default: the app's wippy.yaml `store:`, else .wippy/state.db under the app)")
    g.add_argument("--node", metavar="NAME", default=argparse.SUPPRESS,
                   help="this node's name (unique per live node on a shared store)")
    g.add_argument("--log-level", metavar="LEVEL", type=str.upper, choices=LOG_LEVELS, default=argparse.SUPPRESS,
                   help=f"one of {', '.join(LOG_LEVELS)} (default: INFO)")
    g.add_argument("--log-format", choices=LOG_FORMATS, default=argparse.SUPPRESS,
                   help="stderr log lines as text or JSON lines (default: text)")
    g.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of errors")
    return common


_COMMON = _common_flags()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("wippy-agents")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def _cmd(sub: Any, name: str, handler: str | None, help: str, *, example: str | list[str]) -> argparse.ArgumentParser:
    """One subcommand: its help, its example(s) in the epilog, the common flags."""
    examples = [example] if isinstance(example, str) else example
    p = sub.add_parser(name, help=help, description=help, parents=[_COMMON],
                       epilog="example:\n" + "\n".join(f"  {e}" for e in examples),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    if handler is not None:
        p.set_defaults(handler=handler)
    return p


def _json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")


def build_parser() -> argparse.ArgumentParser:
    """The whole ``wippy`` command line; every subcommand's ``--help`` ends with an example."""
    parser = _Parser(prog="wippy", description="LLM agents as supervised, durable, self-extending actors.",
                     parents=[_COMMON], formatter_class=argparse.RawDescriptionHelpFormatter,
                     epilog="examples:\n  wippy run --app myapp\n  wippy agent run app.agents:assistant \"hello\"\n"
                            "  wippy --store postgresql://localhost/wippy tasks list --json\n"
                            "`wippy COMMAND --help` shows a command's options and an example.")
    parser.add_argument("--version", action="version", version=f"wippy {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = _cmd(sub, "demo", "wippy_agents.console.demo:run", "run the offline demo of the whole mission",
             example="wippy demo --fast")
    p.add_argument("--fast", action="store_true", help="no pauses between stages")

    _cmd(sub, "run", "wippy_agents.console.node_cmd:run", "start the node: load the app, start services, watch files",
         example="wippy run --app myapp --store postgresql://localhost/wippy --node a")

    p = _cmd(sub, "console", "wippy_agents.console.repl:run", "talk to an agent interactively",
             example=["wippy console app.agents:assistant", "wippy console --resume 3f2a9c"])
    p.add_argument("agent", nargs="?", default=None, metavar="AGENT",
                   help="the agent entry to talk to (default: the app's default agent)")
    p.add_argument("--resume", metavar="ID", default=None, help="continue a console session")

    p = _cmd(sub, "call", "wippy_agents.console.node_cmd:call", "call a function entry and print its result as JSON",
             example=["wippy call app.tools:weather '{\"city\": \"Porto\"}'",
                      "wippy call app.flows:order '{\"id\": 7}' --task-id order-7"])
    p.add_argument("entry", metavar="ENTRY", help="the function.lua or workflow.lua entry id, e.g. app.tools:weather")
    p.add_argument("json", nargs="?", default=None, metavar="JSON", help="its argument as JSON (default: null)")
    p.add_argument("--task-id", metavar="ID", default=None, help="for a workflow: the task id (idempotency key)")

    _cmd(sub, "lint", "wippy_agents.console.registry_cmd:lint", "validate the app's entries",
         example="wippy lint --app myapp")

    p_agent = _cmd(sub, "agent", None, "run agents", example="wippy agent run app.agents:assistant \"hello\"")
    agent_sub = p_agent.add_subparsers(dest="agent_command", metavar="ACTION", required=True)
    p = _cmd(agent_sub, "run", "wippy_agents.console.agent_cmd:run", "run an agent to completion",
             example=["wippy agent run app.agents:assistant \"What is the weather in Porto?\"",
                      "wippy agent run app.agents:assistant \"again\" --task-id t1   # resumes t1 after a crash"])
    p.add_argument("agent", metavar="AGENT", help="the agent entry id, e.g. app.agents:assistant")
    p.add_argument("prompt", metavar="PROMPT", help="the user message to start from")
    p.add_argument("--task-id", metavar="ID", default=None,
                   help="the task id: rerun with the same id to resume (or reprint) that run")
    p.add_argument("--detach", action="store_true",
                   help="queue the run for the cluster (a `wippy run` node runs it) and print its task id")

    p_reg = _cmd(sub, "registry", None, "inspect and change the registry", example="wippy registry list app.tools")
    reg_sub = p_reg.add_subparsers(dest="registry_command", metavar="ACTION", required=True)
    p = _cmd(reg_sub, "list", "wippy_agents.console.registry_cmd:list_entries", "list entries",
             example=["wippy registry list app.tools", "wippy registry list --kind agent --json"])
    p.add_argument("pattern", nargs="?", default=None, metavar="PATTERN",
                   help="an id prefix (a namespace) or a glob such as 'app.*:weather*' (default: all)")
    p.add_argument("--kind", metavar="KIND", default=None, help="only entries of this kind (e.g. function.lua)")
    _json_flag(p)
    p = _cmd(reg_sub, "show", "wippy_agents.console.registry_cmd:show", "show one entry",
             example="wippy registry show app.tools:weather")
    p.add_argument("id", metavar="ID", help="the entry id, namespace:name")
    _json_flag(p)
    p = _cmd(reg_sub, "history", "wippy_agents.console.registry_cmd:history", "list registry versions",
             example="wippy registry history --limit 10 --json")
    p.add_argument("--limit", type=_positive, default=50, metavar="N", help="the newest N versions (default: 50)")
    _json_flag(p)
    p = _cmd(reg_sub, "rollback", "wippy_agents.console.registry_cmd:rollback", "roll back to a version",
             example="wippy registry rollback 12")
    p.add_argument("version", type=_positive, metavar="VERSION",
                   help="the version to return to (a new version is made with its contents)")
    _cmd(reg_sub, "push", "wippy_agents.console.push_cmd:push",
         "publish the app's files as a new registry version (a deploy; running nodes follow it)",
         example="wippy registry push --app myapp --store postgresql://localhost/wippy")
    p = _cmd(reg_sub, "schema", "wippy_agents.console.registry_cmd:schema", "print a kind's JSON Schema",
             example=["wippy registry schema", "wippy registry schema function.lua",
                      "wippy registry schema --file > schemas/entry-file.json"])
    p.add_argument("kind", nargs="?", default=None, metavar="KIND", help="the kind (default: list the kinds)")
    p.add_argument("--file", action="store_true", help="the JSON Schema of a whole entry file (for editors)")

    p_mcp = _cmd(sub, "mcp", None, "the Model Context Protocol",
                 example="wippy mcp serve --policy app.security:mcp_client --tools 'app.tools:*'")
    mcp_sub = p_mcp.add_subparsers(dest="mcp_command", metavar="ACTION", required=True)
    p = _cmd(mcp_sub, "serve", "wippy_agents.console.mcp_cmd:serve",
             "serve the app's tools (and agents) to an MCP client over stdio",
             example="wippy mcp serve --policy app.security:mcp_client --agent app.agents:assistant")
    p.add_argument("--policy", required=True, metavar="ID", help="the security.policy the client acts with")
    p.add_argument("--tools", default=None, metavar="GLOB", help="tool ids to offer (default: every tool the policy allows)")
    p.add_argument("--agent", action="append", default=[], metavar="ID", help="also offer this agent as a tool (repeatable)")

    p_tasks = _cmd(sub, "tasks", None, "inspect and steer durable tasks", example="wippy tasks list --status failed")
    tasks_sub = p_tasks.add_subparsers(dest="tasks_command", metavar="ACTION", required=True)
    p = _cmd(tasks_sub, "list", "wippy_agents.console.tasks_cmd:list_tasks", "list tasks",
             example=["wippy tasks list --status stranded", "wippy tasks list --json"])
    p.add_argument("--status", choices=TASK_STATUSES, default=None, help="only tasks in this status")
    p.add_argument("--limit", type=_positive, default=100, metavar="N", help="the newest N tasks (default: 100)")
    _json_flag(p)
    p = _cmd(tasks_sub, "show", "wippy_agents.console.tasks_cmd:show",
             "show a task as an event history: its steps with time, duration, node, attempt and outcome",
             example=["wippy tasks show 3f2a9c", "wippy tasks show 3f2a9c --full --json"])
    p.add_argument("id", metavar="ID", help="the task id (`wippy tasks list` shows them)")
    p.add_argument("--full", action="store_true", help="results and errors in full, not cut to one line")
    _json_flag(p)
    p = _cmd(tasks_sub, "resume", "wippy_agents.console.tasks_cmd:resume", "resume a task",
             example=["wippy tasks resume 3f2a9c", "wippy tasks resume 3f2a9c --retry"])
    p.add_argument("id", metavar="ID", help="the task id")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--retry", action="store_true", help="run a stranded step again")
    g.add_argument("--skip", action="store_true", help="record a stranded step as skipped")
    p = _cmd(tasks_sub, "cancel", "wippy_agents.console.tasks_cmd:cancel", "cancel a task",
             example="wippy tasks cancel 3f2a9c")
    p.add_argument("id", metavar="ID", help="the task id")
    p = _cmd(tasks_sub, "start", "wippy_agents.console.queue_cmd:start",
             "queue a workflow (or agent) task for any `wippy run` node; print its id",
             example=["wippy tasks start app.flows:order '{\"id\": 7}' --task-id order-7",
                      "wippy tasks start app.agents:assistant '{\"prompt\": \"hello\"}'"])
    p.add_argument("entry", metavar="ENTRY", help="the workflow.lua (or agent) entry id")
    p.add_argument("json", nargs="?", default=None, metavar="JSON", help="its argument as JSON (default: null)")
    p.add_argument("--task-id", metavar="ID", default=None, help="the task id (idempotency key)")
    p = _cmd(tasks_sub, "wait", "wippy_agents.console.queue_cmd:wait",
             "wait for a task to end, from any process; print its result as JSON",
             example="wippy tasks wait order-7 --timeout 60")
    p.add_argument("id", metavar="ID", help="the task id")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="give up after this long")
    p = _cmd(tasks_sub, "signal", "wippy_agents.console.queue_cmd:signal",
             "deliver a signal to a workflow (its workflow.signal(NAME) returns the payload)",
             example="wippy tasks signal order-7 approved '{\"by\": \"ada\"}'")
    p.add_argument("id", metavar="ID", help="the task id")
    p.add_argument("name", metavar="NAME", help="the signal's topic")
    p.add_argument("json", nargs="?", default=None, metavar="JSON", help="its payload as JSON (default: null)")

    p = _cmd(sub, "audit", "wippy_agents.console.registry_cmd:audit", "show the audit log",
             example=["wippy audit --limit 20", "wippy audit --json"])
    p.add_argument("--limit", type=_positive, default=50, metavar="N", help="the newest N records (default: 50)")
    _json_flag(p)
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def parse_args(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """Parse ``argv``; the common flags get their defaults when given nowhere.

    Raises ``SystemExit`` (code 2) for a usage error, after printing one line.
    """
    args = (parser or build_parser()).parse_args(argv)
    for name, value in COMMON_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, value)
    return args


def _resolve(handler: str) -> Callable[[argparse.Namespace], int]:
    module, _, func = handler.partition(":")
    return getattr(importlib.import_module(module), func)


def main(argv: list[str] | None = None) -> int:
    """Run one ``wippy`` command; returns its exit code (2 for a usage error)."""
    parser = build_parser()
    try:
        args = parse_args(argv, parser)
    except SystemExit as exc:  # --help, --version, a usage error: already printed
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    # SIGTERM stops a command as Ctrl-C does (asyncio.run cancels it cleanly), so its tasks
    # are released as pending instead of being left to a lease expiry.
    try:  # (only the main thread may set a handler; an embedder calling main() elsewhere keeps its own)
        previous = signal.signal(signal.SIGTERM, _term_as_interrupt)
    except ValueError:
        previous = None
    try:
        _setup_logging(args)
        return int(_resolve(args.handler)(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `wippy ... | head`: the reader left; stop quietly, as shell tools do
        _quiet_stdout()
        return 141
    except WippyError as exc:
        if args.debug:
            raise
        print(f"wippy: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the CLI promises one line, not a traceback
        if args.debug:
            raise
        print(f"wippy: error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _term_as_interrupt(signum: int, frame: object) -> None:
    signal.raise_signal(signal.SIGINT)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (captured in tests)
        pass


def _setup_logging(args: argparse.Namespace) -> None:
    from .console.logs import configure

    configure(level=args.log_level, fmt=args.log_format)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
