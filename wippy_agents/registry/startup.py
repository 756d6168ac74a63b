"""Start-up from what the store already knows: a parse cache of entry files.

Each entry file is remembered in the store as ``(path, key, entries)``: the key
is a SHA-256 over the file's bytes, the bytes of every ``file://`` source its
entries read, and the value of every ``${env:NAME}`` it mentions, so the same
key always parses to the same entries. A restart reads and hashes the files
(cheap) and parses only those whose key changed.

When every file is unchanged, the store's current state is the registry: no
parse, no validation. That holds as long as no version since the one the cache
was confirmed at was made from files (``loader``/``watcher``, or any change of
origin ``file``); run-time versions (agents, CLI, rollbacks) do not matter,
the current state already has them.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from ..store.codec import dumps
from .entry import Entry, Problem
from .ids import EntryId
from .loader import entry_files, read_file
from .settings import AppSettings

__all__ = ["FileRead", "SourcesRead", "read_sources", "gc_paused", "decode_entries", "encode_entries", "MARKER", "file_made"]

MARKER = ""  # the cache row whose key is the version the cache was last confirmed at
_ENV_NAME = re.compile(rb"\$\{env:([A-Za-z_][A-Za-z0-9_]*)")
_FILE_AUTHORS = ("loader", "watcher")


@dataclass(kw_only=True)
class FileRead:
    """One entry file at start-up: from the cache (``cached`` JSON) or parsed now."""

    path: str
    key: str
    cached: str | None = None
    entries: list[Entry] | None = None
    problems: list[Problem] = field(default_factory=list)

    def all_entries(self) -> list[Entry]:
        if self.entries is None:
            self.entries = decode_entries(self.cached or "[]")
        return self.entries


@dataclass(kw_only=True)
class SourcesRead:
    files: list[FileRead]
    gone: list[str]  # cached paths that are no longer entry files
    confirmed_at: int | None  # the version the cache was last confirmed at

    @property
    def unchanged(self) -> bool:
        return not self.gone and all(f.cached is not None for f in self.files)

    def parsed(self) -> list[FileRead]:
        return [f for f in self.files if f.cached is None]


def read_sources(settings: AppSettings, cache: Mapping[str, tuple[str, str]]) -> SourcesRead:
    """(In a worker thread.) Every entry file, from ``cache`` when its key is unchanged."""
    with gc_paused():
        return _read_sources(settings, cache)


def _read_sources(settings: AppSettings, cache: Mapping[str, tuple[str, str]]) -> SourcesRead:
    files = []
    for path in entry_files(settings):
        where = str(path)
        hit = cache.get(where)
        if hit is not None:
            key, text = hit
            if _key(path, _deps_of(key)) == key:
                files.append(FileRead(path=where, key=key, cached=text))
                continue
        entries, problems = read_file(path, single_file=path == settings.app_file)
        deps = sorted({v for e in entries for k, v in e.data.items() if k.endswith("_path") and isinstance(v, str)})
        files.append(FileRead(path=where, key=_key(path, deps), entries=entries, problems=problems))
    seen = {f.path for f in files}
    marker = cache.get(MARKER)
    return SourcesRead(
        files=files,
        gone=sorted(p for p in cache if p != MARKER and p not in seen),
        confirmed_at=int(marker[0]) if marker and marker[0].isdigit() else None,
    )


_pause_lock = threading.Lock()
_pauses = 0
_resume = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector while a bulk parse builds its (acyclic,
    long-lived) values: otherwise each young-generation pass walks what was just
    built, ~15% of a large load. Reference counting still frees everything; the
    parse is bounded (file size, nodes, depth), so memory stays bounded; cycles
    made meanwhile are collected when the pause ends. Nests and overlaps across
    threads; a collector the application disabled stays disabled."""
    global _pauses, _resume
    with _pause_lock:
        if _pauses == 0:
            _resume = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if _pauses == 0 and _resume:
                gc.enable()


def file_made(records: Iterable[Any]) -> bool:
    """Whether any of these versions was made from files (the cache cannot vouch for it)."""
    for record in records:
        if record.author in _FILE_AUTHORS:
            return True
        for change in record.changes:
            entry = change.get("entry")
            if entry is not None and entry.get("origin") == "file":
                return True
    return False


def _key(path: Path, deps: list[str]) -> str:
    digest = hashlib.sha256()
    try:
        raw = path.read_bytes()
    except OSError:
        return "unreadable"
    digest.update(raw)
    for name in sorted(set(_ENV_NAME.findall(raw))):
        value = os.environ.get(name.decode())
        digest.update(b"\0env:" + name + b"=" + (value.encode("utf-8", "surrogateescape") if value is not None else b"\1"))
    for dep in deps:
        digest.update(b"\0dep:" + dep.encode("utf-8", "surrogateescape") + b"\0")
        try:
            digest.update(Path(dep).read_bytes())
        except OSError:
            digest.update(b"\1missing")
    return digest.hexdigest() + ("\t" + "\t".join(deps) if deps else "")


def _deps_of(key: str) -> list[str]:
    return key.split("\t")[1:]


def encode_entries(entries: Iterable[Entry]) -> str:
    return dumps([{"id": str(e.id), "kind": e.kind, "meta": e.meta, "data": e.data, "file": e.file, "line": e.line,
                   "field_lines": e.field_lines if type(e.field_lines) is dict else dict(e.field_lines)} for e in entries], what="entry file cache")


def decode_entries(text: str) -> list[Entry]:
    out = []
    for record in json.loads(text):
        out.append(Entry(
            id=EntryId(record["id"]), kind=record["kind"], meta=record.get("meta") or {}, data=record.get("data") or {},
            file=record.get("file"), line=record.get("line"), origin="file", field_lines=record.get("field_lines") or {},
        ))
    return out
