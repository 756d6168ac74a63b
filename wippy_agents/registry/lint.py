"""``wippy lint``: every problem of an app's files, without a store."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from .changeset import Change
from .entry import Entry, Problem
from .history import file_saved_since
from .loader import load_sources
from .settings import AppSettings
from .snapshot import Snapshot
from .validation import Validator, validate_state

__all__ = ["lint", "drift"]


async def lint(
    settings: AppSettings, *, validators: Sequence[Validator] = (), builtins: Iterable[Entry] = ()
) -> list[Problem]:
    """Load and validate the app's files as one state; problems sorted by file and line.

    Run-time entries (in the store) are not consulted: lint judges the files
    (with the ``builtins`` code provides, as ``Registry(builtins=...)`` has them).
    """
    result = load_sources(settings, partial=True)
    state = {str(e.id): e.evolve(origin="builtin") for e in builtins}
    problems = list(result.problems)
    for entry in result.entries:
        if str(entry.id) in state:
            problems.append(Problem.about(entry, "is built in and cannot be defined by a file"))
        else:
            state[str(entry.id)] = entry
    snap = Snapshot(0, state)
    changes = [Change(op="create", id=e.id, entry=e, before=None) for e in result.entries]
    problems += await validate_state(changes, snap, validators=validators, full=True, always_run_validators=True)
    return sorted(problems, key=lambda p: (p.file or "", p.line or 0, p.entry or "", p.message))


def drift(file_entries: Iterable[Entry], runtime: Iterable[Mapping[str, Any]], live: Mapping[str, Entry] | None = None) -> list[Problem]:
    """Where the live registry and the files disagree: entries a file defines that a
    run-time change (a rollback, an agent, the CLI) deleted or changed, and which stay
    so until the file is saved again. ``runtime`` are the store's run-time records."""
    by_id = {str(e.id): e for e in file_entries}
    out = []
    for record in runtime:
        entry = by_id.get(record.get("id"))
        if entry is None or file_saved_since(record):  # the file was saved since: it wins at the next load
            continue
        if record.get("tombstone"):
            out.append(Problem.about(entry, "the live registry does not have this entry: it was deleted at run time "
                                     "(a rollback, an agent or the CLI); save the file to apply it again"))
        elif live is None or not entry.same_content(live.get(str(entry.id))):
            out.append(Problem.about(entry, "the live entry differs from this file: it was changed at run time "
                                     "(a rollback, an agent or the CLI); save the file to apply it again"))
    return sorted(out, key=lambda p: (p.file or "", p.line or 0, p.entry or ""))
