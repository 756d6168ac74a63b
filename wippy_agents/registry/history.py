"""Versions in the store: replaying history, and which changes persist as
run-time entries.

Precedence of file and run-time entries (one rule, applied everywhere):

* A change made by the file loader or watcher (origin ``file``) makes the file
  authoritative for that id: any run-time override of it is removed.
* Any other change (agents, CLI, rollback) is a run-time change: the new entry
  is stored in the run-time entries table; deleting an entry that came from a
  file stores a tombstone so the file does not bring it back on restart.
* At load, run-time entries and tombstones overlay the files, unless the
  entry's file (or its ``file://`` source) was saved after the run-time write.
  So a run-time edit wins until a person saves that entry again: newest
  intent wins. The watcher applies this per entry (saving a file replaces
  only the entries whose text changed); at load it is per file (mtime), so
  editing one entry of a file while no node runs also drops the overrides
  of the file's other entries.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, AsyncIterator, Iterable, Mapping, Sequence

from ..errors import StaleVersion
from ..store.base import AuditRecord, VersionRecord
from .changeset import Change
from .entry import Entry, Origin
from .ids import EntryId

__all__ = ["MemoryHistory", "state_at", "apply_changes", "persistence", "overlay", "file_saved_since", "TOMBSTONE"]

TOMBSTONE = "tombstone"
SAVED_AT = "saved_at"  # when a run-time entry or tombstone was written (compared with file mtimes)


def apply_changes(state: dict[str, Entry], changes: Iterable[Change]) -> None:
    """Apply concrete changes to ``state`` in place."""
    for change in changes:
        if change.entry is None:
            state.pop(str(change.id), None)
        else:
            state[str(change.id)] = change.entry


async def state_at(store: Any, version: int) -> dict[str, Entry]:
    """The registry's entries at ``version`` (replaying the stored history)."""
    records = await store.registry_history()
    state: dict[str, Entry] = {}
    for record in sorted(records, key=lambda r: r.version):
        if record.version > version:
            break
        apply_changes(state, (Change.from_record(c) for c in record.changes))
    return state


def persistence(changes: Sequence[Change], origin: Origin) -> tuple[list[dict[str, Any]], list[str]]:
    """``(runtime_upserts, runtime_deletes)`` for a changeset (see the module rule)."""
    upserts: list[dict[str, Any]] = []
    deletes: list[str] = []
    for change in changes:
        key = str(change.id)
        if change.entry is not None:
            if change.entry.origin == "runtime":
                upserts.append({**change.entry.to_record(), SAVED_AT: time.time()})
            elif change.entry.origin == "file":
                deletes.append(key)
        elif origin == "file" or change.before is None or change.before.file is None:
            deletes.append(key)
        else:
            upserts.append({"id": key, TOMBSTONE: True, "file": change.before.file, SAVED_AT: time.time()})
    return upserts, deletes


def overlay(files: Iterable[Entry], runtime: Iterable[Mapping[str, Any]]) -> dict[str, Entry]:
    """File entries with the run-time entries and tombstones laid over them
    (a file saved after the run-time write wins, see the module rule)."""
    state = {str(e.id): e for e in files}
    for record in runtime:
        key = record["id"]
        from_file = state.get(key)
        if from_file is not None and _saved_at(from_file) > float(record.get(SAVED_AT) or 0):
            continue
        if record.get(TOMBSTONE):
            state.pop(key, None)
        else:
            state[key] = Entry.from_record(record)
    return state


def file_saved_since(record: Mapping[str, Any]) -> bool:
    """Whether the file (or a ``file://`` source) of a run-time entry was saved after it was written."""
    if not record.get("file"):
        return False
    probe = Entry(id=EntryId(record["id"]), kind=str(record.get("kind") or "tombstone"), data=dict(record.get("data") or {}),
                  file=record["file"])
    return _saved_at(probe) > float(record.get(SAVED_AT) or 0)


def _saved_at(entry: Entry) -> float:
    """The newest mtime of an entry's YAML file and its ``file://`` sources."""
    paths = [entry.file] + [v for k, v in entry.data.items() if k.endswith("_path") and isinstance(v, str)]
    times = []
    for path in filter(None, paths):
        try:
            times.append(os.path.getmtime(path))
        except OSError:
            continue
    return max(times, default=0.0)


class MemoryHistory:
    """The registry part of the store, in memory: for ``Registry(None)`` (lint, tests)."""

    url = "memory:"

    def __init__(self) -> None:
        self._versions: dict[int, VersionRecord] = {}
        self._runtime: dict[str, dict[str, Any]] = {}
        self.audit: list[AuditRecord] = []

    async def registry_head(self) -> int:
        return max(self._versions, default=0)

    async def registry_append(
        self,
        record: VersionRecord,
        *,
        runtime_upserts: Sequence[dict[str, Any]] = (),
        runtime_deletes: Sequence[str] = (),
        audit: Sequence[AuditRecord] = (),
    ) -> None:
        head = await self.registry_head()
        if record.version != head + 1:
            raise StaleVersion(f"version {record.version} is not head + 1 ({head + 1})", version=record.version)
        self._versions[record.version] = record
        for up in runtime_upserts:
            self._runtime[up["id"]] = dict(up)
        for key in runtime_deletes:
            self._runtime.pop(key, None)
        self.audit.extend(audit)

    async def registry_history(self, *, limit: int | None = None) -> list[VersionRecord]:
        out = sorted(self._versions.values(), key=lambda r: -r.version)
        return out[:limit] if limit is not None else out

    async def registry_get_version(self, version: int) -> VersionRecord | None:
        return self._versions.get(version)

    async def runtime_entries(self) -> list[dict[str, Any]]:
        return [dict(v) for v in self._runtime.values()]

    async def registry_changes(self, *, poll_interval: float = 0.5, since: int | None = None) -> AsyncIterator[int]:
        # Nobody else writes to a memory history: nothing ever arrives.
        await asyncio.Event().wait()
        yield 0  # pragma: no cover

    async def close(self) -> None:
        return None


def new_record(version: int, author: str, reason: str, changes: Sequence[Change]) -> VersionRecord:
    return VersionRecord(
        version=version,
        created_at=time.time(),
        author=author,
        reason=reason,
        changes=[c.to_record() for c in changes],
    )


__all__.append("new_record")
