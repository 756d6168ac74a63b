"""CLI handlers: ``wippy lint``, ``wippy registry list|show|history|rollback|schema``, ``wippy audit``.

Each takes the parsed ``argparse.Namespace`` (``.app``, ``.store``, ``.node``)
and returns an exit code; errors are raised as ``WippyError`` (one line, from
``cli.main``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import json
import os
import sys
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import yaml
from rich.console import Console
from rich.table import Table

from ..registry import AppSettings, Entry, Registry, kinds, lint as lint_app
from ..registry.validation import Validator, code_validator
from ..store import open_store
from .render import print_json

__all__ = ["lint", "list_entries", "show", "history", "rollback", "schema", "audit", "validators", "builtins"]


def _console() -> Console:
    # wide when piped, so tables are not cut for scripts and tests
    return Console(width=None if sys.stdout.isatty() else 200, highlight=False, soft_wrap=not sys.stdout.isatty())


def _settings(args: argparse.Namespace) -> AppSettings:
    return AppSettings.load(getattr(args, "app", None), store=getattr(args, "store", None), node=getattr(args, "node", None))


def validators() -> list[Validator]:
    """The validators the app registers too: Lua must compile (when the Lua layer is present)."""
    try:
        from ..lua import compile_check
    except ImportError:  # a build without the Lua layer still lints schemas and references
        return []
    return [code_validator(compile_check)]


def builtins() -> list[Entry]:
    """The entries code provides (``wippy.self`` tools ...), as the App registers them."""
    try:
        from ..agents import builtin_entries
    except ImportError:
        return []
    return builtin_entries()


def _rel(path: str | None) -> str | None:
    if not path:
        return path
    try:
        return os.path.relpath(path)
    except ValueError:
        return path


@asynccontextmanager
async def _registry(args: argparse.Namespace, *, persist: bool) -> AsyncIterator[Registry]:
    settings = _settings(args)
    store = await open_store(settings.store)
    try:
        reg = Registry(store, author_default="cli", builtins=builtins())
        for fn in validators():
            reg.add_validator(fn)
        await reg.load(settings, persist=persist)
        try:
            yield reg
        finally:
            await reg.close()
    finally:
        await store.close()


def lint(args: argparse.Namespace) -> int:
    """Print ``file:line: entry: message`` for every problem; exit 1 when there is one."""
    settings = _settings(args)
    from ..registry.loader import entry_files

    if not entry_files(settings):
        where = ", ".join(settings.sources) or str(settings.app_file)
        print(f"warning: {_rel(str(settings.root))}: no entry files to lint (looked in: {where})", file=sys.stderr)
        return 0
    problems = asyncio.run(lint_app(settings, validators=validators(), builtins=builtins()))
    for p in problems:
        print(str(p.__class__(message=p.message, entry=p.entry, file=_rel(p.file), line=p.line)))
    for p in asyncio.run(_drift(settings)):
        print(str(p.__class__(message="warning: " + p.message, entry=p.entry, file=_rel(p.file), line=p.line)))
    if problems:
        print(f"{len(problems)} problem{'s' if len(problems) != 1 else ''}", file=sys.stderr)
        return 1
    print("ok: no problems", file=sys.stderr)
    return 0


async def _drift(settings: AppSettings) -> list:
    """Run-time changes that hold back file entries, from an existing SQLite store (lint
    creates nothing: no store file, nothing to say; other stores are not opened)."""
    from ..registry.lint import drift
    from ..registry.loader import load_sources

    url = settings.store
    if not url.startswith("sqlite:///") or not os.path.exists(url[len("sqlite:///"):]):
        return []
    store = await open_store(url)
    try:
        runtime = await store.runtime_entries()
    finally:
        await store.close()
    if not runtime:
        return []
    return drift(load_sources(settings).entries, [r for r in runtime if "tombstone" in r or "kind" in r],
                 {r["id"]: Entry.from_record(r) for r in runtime if not r.get("tombstone") and "kind" in r})


def _held_back(reg: Registry) -> list[str]:
    """Lines for file entries the live registry now lacks or holds in another form."""
    lines = []
    for key, entry in sorted(reg.file_entries.items()):
        live = reg.get(key)
        if live is None:
            lines.append(f"{_where(entry)}: {key}: removed by the rollback although its file still defines it "
                         "(lint reports it; save the file to apply it again)")
        elif live.origin == "runtime" and not entry.same_content(live):
            lines.append(f"{_where(entry)}: {key}: restored to an earlier version; the file still says otherwise "
                         "(lint reports it; save the file to apply it again)")
    return lines


def list_entries(args: argparse.Namespace) -> int:
    async def run() -> int:
        async with _registry(args, persist=False) as reg:
            entries = reg.find(kind=_kind(getattr(args, "kind", None)), pattern=_pattern(getattr(args, "pattern", None)))
            if getattr(args, "json", False):
                print_json({"version": reg.version, "unsaved_changes": bool(reg.unsaved_changes),
                            "entries": [{"id": str(e.id), "kind": e.kind, "origin": e.origin,
                                         "description": e.meta.get("description"), "file": _rel(e.file),
                                         "line": e.line} for e in entries]})
                return 0
            table = Table(title=f"registry version {reg.version}" + (" (+ unsaved file changes)" if reg.unsaved_changes else ""))
            for col in ("id", "kind", "origin", "description", "where"):
                table.add_column(col)
            for e in entries:
                table.add_row(str(e.id), e.kind, e.origin, str(e.meta.get("description", "")), _where(e))
            _console().print(table)
            return 0

    return asyncio.run(run())


def show(args: argparse.Namespace) -> int:
    async def run() -> int:
        async with _registry(args, persist=False) as reg:
            entry = reg.get(args.id)
            if entry is None:
                from ..errors import EntryNotFound

                near = [str(e.id) for e in reg.find(namespace=args.id.rpartition(":")[0])][:5] if ":" in args.id else []
                raise EntryNotFound(f"no entry {args.id!r}" + (f"; in that namespace: {', '.join(near)}" if near else ""), id=args.id)
            from ..security.secrets import displayed

            # as written: ${env:} references unexpanded, ${secret:} as ***
            doc: dict[str, Any] = displayed({"id": str(entry.id), "kind": entry.kind, "meta": entry.meta, **entry.data})
            if getattr(args, "json", False):
                print_json({"version": reg.version, "origin": entry.origin, "file": _rel(entry.file),
                            "line": entry.line, "entry": doc})
                return 0
            print(f"# {entry.origin} entry at registry version {reg.version}; {_where(entry)}")
            print(yaml.dump(doc, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=100), end="")
            return 0

    return asyncio.run(run())


def history(args: argparse.Namespace) -> int:
    async def run() -> int:
        async with _registry(args, persist=False) as reg:
            records = await reg.history(limit=getattr(args, "limit", 50))
            if getattr(args, "json", False):
                print_json([{"version": r.version, "created_at": r.created_at, "author": r.author,
                             "reason": r.reason, "changes": r.changes} for r in records])
                return 0
            table = Table(title="registry history")
            for col in ("version", "time", "author", "reason", "changes"):
                table.add_column(col)
            for r in records:
                changes = ", ".join(f"{c['op']} {c['id']}" for c in r.changes)
                table.add_row(str(r.version), _time(r.created_at), r.author, r.reason, changes)
            _console().print(table)
            return 0

    return asyncio.run(run())


def rollback(args: argparse.Namespace) -> int:
    async def run() -> int:
        async with _registry(args, persist=True) as reg:
            before = reg.version
            version = await reg.rollback(args.version, author=_cli_author(), reason=f"wippy registry rollback {args.version}")
            if version == before:
                print(f"registry already matches version {args.version}; nothing to do (version {version})")
            else:
                print(f"rolled back to version {args.version} as version {version}")
            held = _held_back(reg)
            if held:
                one = len(held) == 1
                print(f"{len(held)} entr{'y' if one else 'ies'} defined in files now differ{'s' if one else ''} from the live registry:")
                for line in held:
                    print(f"  {line}")
            return 0

    return asyncio.run(run())


def schema(args: argparse.Namespace) -> int:
    kind = getattr(args, "kind", None)
    if getattr(args, "file", False):
        if kind:
            from ..errors import UsageError

            raise UsageError("wippy registry schema: give a KIND or --file, not both")
        print(json.dumps(kinds.entry_file_schema(), indent=2))
        return 0
    if kind:
        print(json.dumps(kinds.schema(kind), indent=2))
        return 0
    table = Table(title="kinds (wippy registry schema KIND prints the JSON Schema)")
    table.add_column("kind")
    table.add_column("description")
    for name in kinds.names():
        table.add_row(name, kinds.get(name).schema.get("description", ""))
    _console().print(table)
    return 0


def audit(args: argparse.Namespace) -> int:
    async def run() -> int:
        settings = _settings(args)
        store = await open_store(settings.store)
        try:
            records = await store.audit_list(limit=getattr(args, "limit", 50))
        finally:
            await store.close()
        if getattr(args, "json", False):
            print_json([dataclasses.asdict(r) for r in records])
            return 0
        table = Table(title="audit log")
        for col in ("time", "actor", "action", "resource", "decision", "details"):
            table.add_column(col)
        for r in records:
            table.add_row(_time(r.at), r.actor, r.action, r.resource, r.decision, json.dumps(r.details, default=str))
        _console().print(table)
        return 0

    return asyncio.run(run())


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (Lua source, prompts) as ``|`` blocks, as a person writes them."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def _cli_author() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in some containers
        return "cli"


def _kind(name: str | None) -> str | None:
    """``--kind`` checked against the known kinds, so a typo is an error, not an empty list."""
    if name is not None and name not in kinds.names():
        from ..errors import UsageError

        raise UsageError(f"unknown kind {name!r} for --kind; known kinds: {', '.join(kinds.names())}")
    return name


def _pattern(text: str | None) -> str | None:
    if text is None or any(c in text for c in "*?["):
        return text
    return f"{text}*"  # a plain prefix lists a namespace


def _where(entry: Entry) -> str:
    return f"{_rel(entry.file)}:{entry.line}" if entry.file else f"<{entry.origin}>"


def _time(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
