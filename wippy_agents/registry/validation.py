"""Validation of a candidate state as a whole: kinds, schemas, references, kind
rules, and the validators other layers register (Lua compile, ...).

Generic over kinds: handlers say what refers to what; nothing here knows a
kind by name.
"""

from __future__ import annotations

import asyncio
import fnmatch
import re
import weakref
import inspect
import logging
from typing import Any, Awaitable, Callable, Iterable, Sequence, Union

from ..errors import WippyError
from . import kinds
from .changeset import Change
from .entry import Entry, Problem
from .kinds.base import KindHandler
from .snapshot import Snapshot

__all__ = ["Validator", "validate_state", "code_validator", "checked_entries", "derive_index"]

log = logging.getLogger(__name__)

# fn(entries created or updated, candidate snapshot) -> problems (Problem or str);
# may be async; may raise a WippyError (reported as a problem).
Validator = Callable[[Sequence[Entry], Snapshot], Union[Iterable[Union[Problem, str]], Awaitable[Iterable[Union[Problem, str]]]]]


async def validate_state(
    changes: Sequence[Change],
    new: Snapshot,
    *,
    validators: Sequence[Validator] = (),
    full: bool = False,
    always_run_validators: bool = False,
) -> list[Problem]:
    """Every problem with ``new`` caused by ``changes`` (or with all of it when ``full``).

    The registered validators (Lua compile ...) run only once the kind checks
    pass, unless ``always_run_validators`` (lint wants every problem at once).
    The checks and the synchronous validators run in a worker thread: a large
    or hostile changeset never stalls the event loop.
    """
    written = [c.entry for c in changes if c.entry is not None]
    checked = list(new) if full else written
    problems = await asyncio.to_thread(_check, changes, new, written, checked, full)
    if always_run_validators or not problems:
        problems.extend(await _run_validators(validators, checked, new))
    return problems


def _check(changes: Sequence[Change], new: Snapshot, written: list[Entry], checked: list[Entry], full: bool) -> list[Problem]:
    problems: list[Problem] = []
    for entry in checked:
        handler = kinds.find(entry.kind)
        if handler is None:
            problems.append(Problem.about(entry, f"unknown kind {entry.kind!r}; known kinds: {', '.join(kinds.names())}", field="kind"))
            continue
        problems.extend(handler.schema_problems(entry))
        problems.extend(_reference_problems(entry, handler, new))
    if not full:
        problems.extend(_dangling_referrers(changes, new, {str(e.id) for e in written}))
    problems.extend(_kind_rules(new, None if full else changes))
    return problems


def _reference_problems(entry: Entry, handler: KindHandler, new: Snapshot, *, gone: str | None = None) -> Iterable[Problem]:
    try:
        refs = list(handler.references(entry))
    except WippyError as exc:
        yield Problem.about(entry, str(exc))
        return
    for ref in refs:
        if ref.is_pattern:
            continue
        target = new.get(ref.target)
        if target is None and _provided(new, ref.target):
            continue  # e.g. 'app.mcp:time/get_current_time': its server lists it (or not) at run time
        if target is None:
            why = "which this changeset deletes; change or remove this reference first" if gone == ref.target else "which does not exist"
            yield Problem.about(entry, f"{ref.label}: refers to {ref.target!r}, {why}", field=ref.field)
        elif ref.spec.kinds and target.kind not in ref.spec.kinds:
            yield Problem.about(
                entry,
                f"{ref.label}: {ref.target!r} is a {target.kind}, expected {' or '.join(ref.spec.kinds)}",
                field=ref.field,
            )


def _provided(new: Snapshot, target: str) -> bool:
    """True when ``ns:owner/part`` names something entry ``ns:owner`` provides (its kind handler says so)."""
    head, slash, _ = target.partition("/")
    owner = new.get(head) if slash else None
    handler = kinds.find(owner.kind) if owner is not None else None
    return handler is not None and handler.provides(owner, target)


def _dangling_referrers(changes: Sequence[Change], new: Snapshot, written: set[str]) -> Iterable[Problem]:
    """Entries left untouched that refer to a deleted entry or one whose kind changed."""
    moved = {
        str(c.id): c.op
        for c in changes
        if c.op == "delete" or (c.before is not None and c.entry is not None and c.before.kind != c.entry.kind)
    }
    if not moved:
        return
    for entry in new:
        if str(entry.id) in written:
            continue
        handler = kinds.find(entry.kind)
        if handler is None or not handler.refs:
            continue
        try:
            targets = {r.target for r in handler.references(entry) if not r.is_pattern}
        except WippyError:
            continue
        for target in targets & set(moved):
            for problem in _reference_problems(entry, handler, new, gone=target):
                if repr(target) in problem.message:
                    yield problem


def _kind_rules(new: Snapshot, changes: Sequence[Change] | None = None) -> Iterable[Problem]:
    """Kind rules that need the whole snapshot (only handlers that define ``check``).

    With ``changes``, only the entries a change can affect are checked: the
    written ones and those whose references (exact or ``ns:*`` globs) match a
    changed id — so a write costs what it touches, not the size of the registry
    (the entries of checked kinds are indexed per snapshot, derived from the
    previous one's index).
    """
    changed = None if changes is None else {str(c.id) for c in changes}
    for entry in checked_entries(new).values():
        handler = kinds.find(entry.kind)
        if handler is None:
            continue
        if changed is not None and str(entry.id) not in changed and not _refers_to_any(entry, handler, changed):
            continue
        yield from handler.check(entry, new)


_CHECKED: "weakref.WeakKeyDictionary[Snapshot, dict[str, Entry]]" = weakref.WeakKeyDictionary()


def _has_check(kind: str) -> bool:
    handler = kinds.find(kind)
    return handler is not None and type(handler).check is not KindHandler.check


def checked_entries(snapshot: Snapshot) -> dict[str, Entry]:
    """The entries of ``snapshot`` whose kind defines ``check`` (built once per snapshot)."""
    found = _CHECKED.get(snapshot)
    if found is None:
        found = {str(e.id): e for e in snapshot if _has_check(e.kind)}
        _CHECKED[snapshot] = found
    return found


def derive_index(base: Snapshot, new: Snapshot, changes: Sequence[Change]) -> None:
    """Give ``new`` (``base`` plus ``changes``) its index without a scan: shared with
    ``base`` when no change touches a checked kind."""
    parent = _CHECKED.get(base)
    if parent is None:
        return
    touched = [c for c in changes if (c.entry is not None and _has_check(c.entry.kind)) or str(c.id) in parent]
    if not touched:
        _CHECKED[new] = parent
        return
    index = dict(parent)
    for change in touched:
        if change.entry is not None and _has_check(change.entry.kind):
            index[str(change.id)] = change.entry
        else:
            index.pop(str(change.id), None)
    _CHECKED[new] = index


def _refers_to_any(entry: Entry, handler: KindHandler, ids: set[str]) -> bool:
    try:
        refs = list(handler.references(entry))
    except WippyError:
        return True  # let the rule itself report what is wrong
    for ref in refs:
        if ref.is_pattern:
            if any(fnmatch.fnmatchcase(i, ref.target) for i in ids):
                return True
        elif ref.target in ids:
            return True
    return False


async def _run_validators(validators: Sequence[Validator], entries: list[Entry], new: Snapshot) -> list[Problem]:
    out: list[Problem] = []
    for fn in validators:
        try:
            if inspect.iscoroutinefunction(fn):
                result: Any = fn(entries, new)
            else:
                result = await asyncio.to_thread(fn, entries, new)
            if inspect.isawaitable(result):
                result = await result
        except WippyError as exc:
            out.append(Problem(message=str(exc), entry=exc.details.get("id") or exc.details.get("entry")))
            continue
        for item in result or ():
            out.append(item if isinstance(item, Problem) else Problem(message=str(item)))
    return out


_FUNC_DEF = re.compile(r"\bfunction\s+(?:[A-Za-z_][A-Za-z0-9_]*[.:])*([A-Za-z_][A-Za-z0-9_]*)\s*\(|([A-Za-z_][A-Za-z0-9_]*)\s*=\s*function\b")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _missing_method(entry: Entry, source: str) -> str | None:
    """``method`` names a function the chunk does not define (or mention at all)."""
    method = entry.data.get("method")
    if not isinstance(method, str) or not method or entry.kind == "library.lua":
        return None
    if method in set(_IDENT.findall(_strip_comments(source))):
        return None  # defined or returned under that name (``return {handler = run}``)
    defined = sorted({a or b for a, b in _FUNC_DEF.findall(source)})
    listed = f"; it defines {', '.join(defined)}" if defined else ""
    return f"method `{method}` is not defined in the Lua source{listed}"


def _strip_comments(source: str) -> str:
    return re.sub(r"--\[(=*)\[.*?\]\1\]|--[^\n]*", "", source, flags=re.S)


def code_validator(check: Callable[[str, str], None]) -> Validator:
    """A validator that runs ``check(source, chunkname)`` on every Lua source field.

    The app wiring passes ``wippy_agents.lua.compile_check`` (the registry does
    not import the Lua layer). The problem points at the source file and the
    line of the error when the code came from ``file://``.
    """

    def validate(entries: Sequence[Entry], snapshot: Snapshot) -> list[Problem]:
        out = []
        compiled: set[str] = set()  # sources that compiled: the same text compiles the same under any name
        methods: dict[tuple[str, str, str], str | None] = {}
        for entry in entries:
            handler = kinds.find(entry.kind)
            for name in handler.code_fields if handler else ():
                source = entry.data.get(name)
                if not isinstance(source, str):
                    continue
                try:
                    if source not in compiled:
                        check(source, str(entry.id))
                        compiled.add(source)
                    method = entry.data.get("method")
                    if isinstance(method, str):  # the answer depends on the text, the name and the kind
                        key = (source, method, entry.kind)
                        if key not in methods:
                            methods[key] = _missing_method(entry, source)
                        missing = methods[key]
                    else:
                        missing = _missing_method(entry, source)
                    if missing:
                        out.append(Problem.about(entry, missing, field="method"))
                except WippyError as exc:
                    chunk_line = exc.details.get("line")
                    path = entry.data.get(f"{name}_path")
                    if path:
                        line = chunk_line
                    else:
                        start = entry.field_lines.get(name)
                        line = start + chunk_line if start and chunk_line else entry.line
                    out.append(Problem(message=f"Lua does not compile: {exc}", entry=str(entry.id),
                                       file=path or entry.file, line=line))
        return out

    return validate
