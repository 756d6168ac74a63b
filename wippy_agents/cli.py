"""The ``wippy`` command: argument parsing only.

Each subcommand names a handler ``"module:function"`` that takes the parsed
``argparse.Namespace`` and returns an exit code; handlers live in the layers
(rendering in ``wippy_agents.console``). Errors are one line on stderr and a
non-zero exit, with a traceback only under ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from typing import Callable

from .errors import WippyError

__all__ = ["main", "build_parser"]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--app", default=None, help="app directory or single YAML file (default: current directory)")
    p.add_argument("--store", default=None, help="store URL: sqlite:///path or postgresql://user@host/db")
    p.add_argument("--node", default=None, help="this node's name (unique per node on a shared store)")
    p.add_argument("--log-format", choices=["text", "json"], default="text")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def _cmd(sub, name: str, handler: str, help: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=help)
    _common(p)
    p.set_defaults(handler=handler)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wippy", description="LLM agents as supervised, durable, self-extending actors.")
    _common(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = _cmd(sub, "demo", "wippy_agents.console.demo:run", "run the offline demo of the whole mission")
    p.add_argument("--fast", action="store_true", help="no pauses between stages")

    _cmd(sub, "run", "wippy_agents.console.node_cmd:run", "start the node: load the app, start services, watch files")

    p = _cmd(sub, "console", "wippy_agents.console.repl:run", "talk to an agent interactively")
    p.add_argument("agent", nargs="?", default=None)
    p.add_argument("--resume", metavar="ID", default=None, help="continue a console session")

    p = _cmd(sub, "call", "wippy_agents.console.node_cmd:call", "call a function entry and print its result as JSON")
    p.add_argument("entry")
    p.add_argument("json", nargs="?", default=None)
    p.add_argument("--task-id", default=None, help="for a workflow: the task id (idempotency key)")

    p = _cmd(sub, "lint", "wippy_agents.console.registry_cmd:lint", "validate the app's entries")

    p_agent = sub.add_parser("agent", help="run agents")
    agent_sub = p_agent.add_subparsers(dest="agent_command", metavar="ACTION", required=True)
    p = _cmd(agent_sub, "run", "wippy_agents.console.agent_cmd:run", "run an agent to completion")
    p.add_argument("agent")
    p.add_argument("prompt")
    p.add_argument("--task-id", default=None)
    p.add_argument("--detach", action="store_true",
                   help="queue the run for the cluster (a `wippy run` node runs it); print its task id")

    p_reg = sub.add_parser("registry", help="inspect and change the registry")
    reg_sub = p_reg.add_subparsers(dest="registry_command", metavar="ACTION", required=True)
    p = _cmd(reg_sub, "list", "wippy_agents.console.registry_cmd:list_entries", "list entries")
    p.add_argument("pattern", nargs="?", default=None)
    p.add_argument("--kind", default=None)
    p = _cmd(reg_sub, "show", "wippy_agents.console.registry_cmd:show", "show one entry")
    p.add_argument("id")
    p = _cmd(reg_sub, "history", "wippy_agents.console.registry_cmd:history", "list registry versions")
    p.add_argument("--limit", type=int, default=50)
    p = _cmd(reg_sub, "rollback", "wippy_agents.console.registry_cmd:rollback", "roll back to a version")
    p.add_argument("version", type=int)
    _cmd(reg_sub, "push", "wippy_agents.console.push_cmd:push",
         "publish the app's files as a new registry version (a deploy; e.g. wippy registry push --store URL)")
    p = _cmd(reg_sub, "schema", "wippy_agents.console.registry_cmd:schema", "print a kind's JSON Schema")
    p.add_argument("kind", nargs="?", default=None)

    p_tasks = sub.add_parser("tasks", help="inspect and steer durable tasks")
    tasks_sub = p_tasks.add_subparsers(dest="tasks_command", metavar="ACTION", required=True)
    p = _cmd(tasks_sub, "list", "wippy_agents.console.tasks_cmd:list_tasks", "list tasks")
    p.add_argument("--status", default=None)
    p = _cmd(tasks_sub, "show", "wippy_agents.console.tasks_cmd:show", "show a task and its journal")
    p.add_argument("id")
    p = _cmd(tasks_sub, "resume", "wippy_agents.console.tasks_cmd:resume", "resume a task")
    p.add_argument("id")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--retry", action="store_true", help="run a stranded step again")
    g.add_argument("--skip", action="store_true", help="record a stranded step as skipped")
    p = _cmd(tasks_sub, "cancel", "wippy_agents.console.tasks_cmd:cancel", "cancel a task")
    p.add_argument("id")
    p = _cmd(tasks_sub, "start", "wippy_agents.console.queue_cmd:start",
             "queue a workflow (or agent) task for any `wippy run` node; print its id "
             "(e.g. wippy tasks start app.flows:order '{\"id\": 7}' --task-id order-7)")
    p.add_argument("entry", help="the workflow.lua (or agent) entry id")
    p.add_argument("json", nargs="?", default=None, help="its argument as JSON")
    p.add_argument("--task-id", default=None, help="the task id (idempotency key)")
    p = _cmd(tasks_sub, "wait", "wippy_agents.console.queue_cmd:wait",
             "wait for a task to end, from any process; print its result as JSON (e.g. wippy tasks wait order-7)")
    p.add_argument("id", help="the task id")
    p.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    p = _cmd(tasks_sub, "signal", "wippy_agents.console.queue_cmd:signal",
             "deliver a signal to a workflow (e.g. wippy tasks signal order-7 approved '{\"by\": \"ada\"}')")
    p.add_argument("id", help="the task id")
    p.add_argument("name", help="the signal's topic")
    p.add_argument("json", nargs="?", default=None, help="its payload as JSON")

    p = _cmd(sub, "audit", "wippy_agents.console.registry_cmd:audit", "show the audit log")
    p.add_argument("--limit", type=int, default=50)
    return parser


def _resolve(handler: str) -> Callable[[argparse.Namespace], int]:
    module, _, func = handler.partition(":")
    return getattr(importlib.import_module(module), func)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    _setup_logging(args)
    # SIGTERM stops a command as Ctrl-C does (asyncio.run cancels it cleanly), so its tasks
    # are released as pending instead of being left to a lease expiry.
    previous = signal.signal(signal.SIGTERM, _term_as_interrupt)
    try:
        return int(_resolve(args.handler)(args) or 0)
    except KeyboardInterrupt:
        return 130
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
        signal.signal(signal.SIGTERM, previous)


def _term_as_interrupt(signum: int, frame: object) -> None:
    signal.raise_signal(signal.SIGINT)


def _setup_logging(args: argparse.Namespace) -> None:
    from .console.logs import configure

    configure(level=args.log_level, fmt=args.log_format)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
