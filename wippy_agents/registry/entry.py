"""Entries as frozen values, and ``Problem``: one located complaint about one entry."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Mapping

from .ids import EntryId

__all__ = ["Entry", "Origin", "Problem", "RESERVED_FIELDS", "split_fields"]

Origin = Literal["file", "runtime", "builtin"]

# Fields that are never part of ``data``: the rest of an entry's YAML is.
RESERVED_FIELDS = frozenset({"id", "name", "namespace", "kind", "meta"})


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One registry entry ``{id, kind, meta, data}`` plus where it came from.

    ``data`` holds every YAML field other than name/kind/meta; a ``file://``
    field is already read (text in ``data[field]``, the path in
    ``data[field + "_path"]``). ``meta`` and ``data`` are shared by every
    snapshot holding the entry: treat them as read-only (``to_dict`` copies).
    ``origin`` is ``"file"`` (loaded from a source file), ``"runtime"``
    (written by an agent or the CLI, persisted in the store) or ``"builtin"``
    (provided by code, never persisted).

    >>> e = Entry(id=EntryId("app.db:main"), kind="registry.entry", data={"host": "db"})
    >>> e.to_dict()["data"]["host"]
    'db'
    """

    id: EntryId
    kind: str
    meta: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    file: str | None = None
    line: int | None = None
    origin: Origin = "runtime"
    # line of each top-level YAML field, for messages; not part of the value
    field_lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    @property
    def namespace(self) -> str:
        return self.id.namespace

    @property
    def name(self) -> str:
        return self.id.name

    def where(self) -> str:
        """``file:line`` (or ``<origin>``) for messages."""
        if self.file:
            return f"{self.file}:{self.line or 1}"
        return f"<{self.origin}>"

    def to_dict(self, *, with_origin: bool = False) -> dict[str, Any]:
        """A deep copy as plain data ``{id, kind, meta, data}`` (the Lua/JSON shape)."""
        out: dict[str, Any] = {
            "id": str(self.id),
            "kind": self.kind,
            "meta": copy.deepcopy(self.meta),
            "data": copy.deepcopy(self.data),
        }
        if with_origin:
            out.update(file=self.file, line=self.line, origin=self.origin)
        return out

    def to_record(self) -> dict[str, Any]:
        """The stored form (history and run-time entries): ``to_dict`` with origin."""
        return self.to_dict(with_origin=True)

    @classmethod
    def from_record(cls, record: Mapping[str, Any], *, copy: bool = True) -> "Entry":
        """Rebuild an entry stored with ``to_record`` (``copy=False``: the entry takes
        the record's meta/data as they are, for records just decoded and held by no one)."""
        meta, data = record.get("meta") or {}, record.get("data") or {}
        return cls(
            id=EntryId(record["id"]),
            kind=record["kind"],
            meta=dict(meta) if copy else meta,
            data=dict(data) if copy else data,
            file=record.get("file"),
            line=record.get("line"),
            origin=record.get("origin") or "runtime",
        )

    def evolve(self, **changes: Any) -> "Entry":
        return replace(self, **changes)

    def same_content(self, other: "Entry | None") -> bool:
        """Equal id, kind, meta and data (where it came from does not count)."""
        return (
            other is not None
            and self.id == other.id
            and self.kind == other.kind
            and self.meta == other.meta
            and self.data == other.data
        )


def split_fields(spec: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a flat entry spec into ``(meta, data)``.

    Both shapes are accepted: the YAML/flat one (every non-reserved field is
    data) and the entry-table one ``{id, kind, meta, data: {...}}`` as returned
    by ``registry.get``; a ``data`` mapping is merged into the data fields.
    """
    meta = dict(spec.get("meta") or {})
    data = {k: v for k, v in spec.items() if k not in RESERVED_FIELDS and k != "data"}
    inner = spec.get("data")
    if isinstance(inner, Mapping):
        data.update(inner)
    elif "data" in spec:
        data["data"] = inner
    return meta, data


@dataclass(frozen=True, kw_only=True)
class Problem:
    """One located complaint: ``file:line: entry: message``."""

    message: str
    entry: str | None = None
    file: str | None = None
    line: int | None = None

    @classmethod
    def about(cls, entry: Entry, message: str, *, field: str | None = None) -> "Problem":
        """A problem located at ``entry`` (at the line of ``field`` when known)."""
        line = entry.field_lines.get(field) if field else None
        return cls(message=message, entry=str(entry.id), file=entry.file, line=line or entry.line)

    def __str__(self) -> str:
        parts = []
        if self.file:
            parts.append(f"{self.file}:{self.line or 1}")
        if self.entry:
            parts.append(self.entry)
        parts.append(self.message.replace("\r", "\\r").replace("\n", "\\n"))  # one problem, one line
        return ": ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message, "entry": self.entry, "file": self.file, "line": self.line}
