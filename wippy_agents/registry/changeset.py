"""Changesets: several creates/updates/deletes validated and applied as one version.

A ``Changeset`` only records intent; ``resolve`` turns it into concrete
``Change`` values against a base snapshot (what exists, what it was before),
collecting a ``Problem`` for each op that cannot apply. Nothing here touches
the live registry or the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from ..errors import ValidationError
from .entry import Entry, Origin, Problem, split_fields
from .ids import EntryId
from .snapshot import Snapshot

__all__ = ["Changeset", "Change", "Op", "resolve"]

OpName = Literal["create", "update", "delete", "put", "discard"]


@dataclass(frozen=True, kw_only=True)
class Op:
    """One recorded intent. ``put`` = create or replace; ``discard`` = delete if present."""

    op: OpName
    id: EntryId
    entry: Entry | None = None  # create / put
    fields: Mapping[str, Any] | None = None  # update


@dataclass(frozen=True, kw_only=True)
class Change:
    """One concrete change: ``before`` is the entry it replaces (None for a create)."""

    op: Literal["create", "update", "delete"]
    id: EntryId
    entry: Entry | None
    before: Entry | None

    def to_record(self) -> dict[str, Any]:
        """The form kept in ``VersionRecord.changes`` (enough to show and roll back).

        Shallow: it shares the entries' meta/data (read-only, like the entries)."""
        return {
            "op": self.op,
            "id": str(self.id),
            "entry": _shallow(self.entry) if self.entry else None,
            "before": _shallow(self.before) if self.before else None,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "Change":
        entry, before = record.get("entry"), record.get("before")
        return cls(
            op=record["op"],
            id=EntryId(record["id"]),
            entry=Entry.from_record(entry) if entry else None,
            before=Entry.from_record(before) if before else None,
        )


def _shallow(entry: Entry) -> dict[str, Any]:
    return {"id": str(entry.id), "kind": entry.kind, "meta": entry.meta, "data": entry.data,
            "file": entry.file, "line": entry.line, "origin": entry.origin}


@dataclass(kw_only=True)
class Changeset:
    """Creates, updates and deletes to apply together (``Registry.apply``).

    ``base_version`` is the version it was prepared against; applying it when
    the registry has moved on raises ``StaleVersion`` (None: apply on whatever
    is live, used by the file watcher and rollback). ``actor`` is what write
    guards see (defaults to ``author``).

    >>> cs = Changeset(base_version=3, author="cli")
    >>> cs.create({"id": "app.db:main", "kind": "registry.entry", "host": "db"})
    'app.db:main'
    """

    base_version: int | None
    author: str
    reason: str = ""
    actor: Any = None
    origin: Origin = "runtime"
    ops: list[Op] = field(default_factory=list)

    def create(self, spec: Mapping[str, Any], *, namespace: str | None = None) -> EntryId:
        """Add a new entry ``{id, kind, meta, ...fields}`` (or ``{namespace, name, ...}``).

        Raises ``ValidationError`` at once for a malformed id or a missing kind.
        """
        entry = self._entry_from(spec, namespace)
        self.ops.append(Op(op="create", id=entry.id, entry=entry))
        return entry.id

    def update(self, entry_id: str, fields: Mapping[str, Any]) -> EntryId:
        """Change fields of an existing entry: ``meta`` (replaced when given),
        ``kind``, and data fields (merged; a field set to None is removed)."""
        eid = EntryId.parse(entry_id)
        if not isinstance(fields, Mapping):
            raise ValidationError(f"update of {str(eid)!r}: changes must be a mapping", id=str(eid))
        self.ops.append(Op(op="update", id=eid, fields=dict(fields)))
        return eid

    def delete(self, entry_id: str) -> EntryId:
        eid = EntryId.parse(entry_id)
        self.ops.append(Op(op="delete", id=eid))
        return eid

    def put(self, entry: Entry) -> EntryId:
        """Create or replace ``entry`` as given (loader, watcher, rollback)."""
        self.ops.append(Op(op="put", id=entry.id, entry=entry))
        return entry.id

    def discard(self, entry_id: str) -> EntryId:
        """Delete if present (a file that no longer defines an entry)."""
        eid = EntryId.parse(entry_id)
        self.ops.append(Op(op="discard", id=eid))
        return eid

    def __len__(self) -> int:
        return len(self.ops)

    def _entry_from(self, spec: Mapping[str, Any], namespace: str | None) -> Entry:
        if not isinstance(spec, Mapping):
            raise ValidationError(f"an entry to create must be a mapping, got {type(spec).__name__}")
        raw_id = spec.get("id")
        if raw_id is None and spec.get("name") is not None:
            ns = spec.get("namespace") or namespace
            raw_id = f"{ns}:{spec['name']}" if ns else spec["name"]
        if raw_id is None:
            raise ValidationError("an entry to create needs an 'id' ('namespace:name')")
        eid = EntryId.parse(raw_id, namespace=namespace)
        kind = spec.get("kind")
        if not isinstance(kind, str) or not kind:
            raise ValidationError(f"{str(eid)}: missing required field 'kind'", id=str(eid))
        meta, data = split_fields(spec)
        return Entry(id=eid, kind=kind, meta=meta, data=data, origin=self.origin)


def resolve(cs: Changeset, base: Snapshot) -> tuple[list[Change], list[Problem]]:
    """Concrete changes of ``cs`` against ``base``, and a problem for each op that cannot apply."""
    changes: list[Change] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for op in cs.ops:
        key = str(op.id)
        if key in seen:
            problems.append(Problem(message="duplicate id in one changeset", entry=key,
                                    file=op.entry.file if op.entry else None, line=op.entry.line if op.entry else None))
            continue
        seen.add(key)
        before = base.get(op.id)
        if before is not None and before.origin == "builtin" and op.op != "discard":
            problems.append(Problem(message="is built in and cannot be changed", entry=key))
            continue
        change = _concrete(op, before, cs.origin, problems)
        if change is not None:
            changes.append(change)
    return changes, problems


def _concrete(op: Op, before: Entry | None, origin: Origin, problems: list[Problem]) -> Change | None:
    key = str(op.id)
    if op.op == "create":
        if before is not None:
            problems.append(Problem(message=f"already exists (defined at {before.where()}); use update", entry=key))
            return None
        return Change(op="create", id=op.id, entry=op.entry, before=None)
    if op.op == "put":
        if op.entry.same_content(before) and before.origin == op.entry.origin:
            return None  # saving a file without changing an entry is not a new version
        return Change(op="update" if before else "create", id=op.id, entry=op.entry, before=before)
    if before is None:
        if op.op == "discard":
            return None
        problems.append(Problem(message=f"cannot {op.op}: no such entry", entry=key))
        return None
    if op.op in ("delete", "discard"):
        return Change(op="delete", id=op.id, entry=None, before=before)
    fields = dict(op.fields or {})
    kind = fields.pop("kind", before.kind)
    meta = dict(fields.pop("meta")) if isinstance(fields.get("meta"), Mapping) else before.meta
    fields.pop("meta", None)
    for reserved in ("id", "name", "namespace"):
        if reserved in fields and str(fields.pop(reserved)) not in (key, op.id.name, op.id.namespace):
            problems.append(Problem(message=f"update cannot change {reserved!r} (create a new entry instead)", entry=key))
            return None
    inner = fields.pop("data", None)
    if isinstance(inner, Mapping):
        fields = {**inner, **fields}
    data = dict(before.data)
    for name, value in fields.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    if "source" in fields:
        data.pop("source_path", None)  # the text no longer comes from that file
    entry = before.evolve(kind=kind, meta=meta, data=data, origin=origin)
    return Change(op="update", id=op.id, entry=entry, before=before)
