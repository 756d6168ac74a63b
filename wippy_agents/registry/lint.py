"""``wippy lint``: every problem of an app's files, without a store."""

from __future__ import annotations

from typing import Sequence

from .changeset import Change
from .entry import Problem
from .loader import load_sources
from .settings import AppSettings
from .snapshot import Snapshot
from .validation import Validator, validate_state

__all__ = ["lint"]


async def lint(settings: AppSettings, *, validators: Sequence[Validator] = ()) -> list[Problem]:
    """Load and validate the app's files as one state; problems sorted by file and line.

    Run-time entries (in the store) are not consulted: lint judges the files.
    """
    result = load_sources(settings)
    snap = Snapshot(0, {str(e.id): e for e in result.entries})
    changes = [Change(op="create", id=e.id, entry=e, before=None) for e in result.entries]
    problems = list(result.problems)
    problems += await validate_state(changes, snap, validators=validators, full=True, always_run_validators=True)
    return sorted(problems, key=lambda p: (p.file or "", p.line or 0, p.entry or "", p.message))
