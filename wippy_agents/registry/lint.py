"""``wippy lint``: every problem of an app's files, without a store."""

from __future__ import annotations

from typing import Iterable, Sequence

from .changeset import Change
from .entry import Entry, Problem
from .loader import load_sources
from .settings import AppSettings
from .snapshot import Snapshot
from .validation import Validator, validate_state

__all__ = ["lint"]


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
