"""An immutable view of the registry at one version.

The entries live in a persistent hash map (``immutables.Map``, a HAMT): ``get``
is one lookup, and the next version shares all but the changed paths with
this one, so making it costs what the changeset touches, not the registry's
size.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping

import immutables

from ..errors import ValidationError
from .entry import Entry
from .ids import id_matches, is_pattern

__all__ = ["Snapshot"]

_MISSING = object()


class Snapshot:
    """The registry at ``version``; never changes once built.

    >>> Snapshot(0, {}).get("app.tools:weather") is None
    True

    Nothing here blocks or raises for a missing id (``get`` answers None).
    """

    __slots__ = ("version", "_entries", "_by_kind", "__weakref__")

    def __init__(self, version: int, entries: Mapping[str, Entry]) -> None:
        self.version = version
        # An immutable map: the snapshot cannot change under a reader.
        self._entries: immutables.Map = entries if isinstance(entries, immutables.Map) else immutables.Map(entries)
        self._by_kind: dict[str, tuple[Entry, ...]] | None = None

    def derive(self, version: int, changes: Iterable[tuple[str, Entry | None]]) -> "Snapshot":
        """This snapshot with ``(id, entry or None to delete)`` applied, as ``version``."""
        with self._entries.mutate() as state:
            for key, entry in changes:
                if entry is None:
                    state.pop(key, None)
                else:
                    state[key] = entry
            entries = state.finish()
        return Snapshot(version, entries)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in Snapshot.__slots__ and not hasattr(self, name):
            object.__setattr__(self, name, value)
        elif name == "_by_kind":  # a lazily built cache, not state
            object.__setattr__(self, name, value)
        else:
            raise AttributeError(f"Snapshot is immutable (cannot set {name!r})")

    def get(self, entry_id: str) -> Entry | None:
        """The entry with this id (``"ns:name"``), or None."""
        return self._entries.get(entry_id)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries.values())

    def ids(self) -> list[str]:
        return sorted(self._entries)

    def as_mapping(self) -> Mapping[str, Entry]:
        """A read-only view ``id -> Entry``."""
        return self._entries

    def find(
        self,
        criteria: Mapping[str, Any] | None = None,
        *,
        kind: str | None = None,
        namespace: str | None = None,
        meta: Mapping[str, Any] | None = None,
        pattern: str | None = None,
    ) -> list[Entry]:
        """Entries matching every given criterion, sorted by id.

        ``criteria`` is the Lua-style table: ``{"kind": ..., "namespace": ...,
        "pattern": ..., "meta.type": "tool", "data.method": "handler"}``.
        ``namespace`` also matches sub-namespaces (``app`` finds ``app.tools:x``);
        ``pattern`` is a glob on the id (``app.tools:*``).
        Raises ``ValidationError`` for an unknown criterion.
        """
        fields: dict[str, Any] = {}
        for key, value in (criteria or {}).items():
            if key == "kind":
                kind = value
            elif key == "namespace":
                namespace = value
            elif key in ("pattern", "id"):
                pattern = value
            elif key.startswith(("meta.", "data.")):
                fields[key] = value
            else:
                raise ValidationError(
                    f"unknown find criterion {key!r}: use kind, namespace, pattern, 'meta.<field>' or 'data.<field>'"
                )
        for key, value in (meta or {}).items():
            fields[key if key.startswith(("meta.", "data.")) else f"meta.{key}"] = value
        pool: Any = self._kind_index().get(kind, ()) if kind is not None else self._entries.values()
        glob = pattern is not None and is_pattern(pattern)  # once per find, not once per entry
        out = []
        for entry in pool:
            if namespace is not None and not (
                entry.id.namespace == namespace or entry.id.namespace.startswith(namespace + ".")
            ):
                continue
            if pattern is not None and not (id_matches(entry.id, pattern) if glob else entry.id == pattern):
                continue
            if fields and not all(_field(entry, k) == v for k, v in fields.items()):
                continue
            out.append(entry)
        out.sort(key=lambda e: e.id)
        return out

    def _kind_index(self) -> dict[str, tuple[Entry, ...]]:
        index = self._by_kind
        if index is None:
            groups: dict[str, list[Entry]] = {}
            for entry in self._entries.values():
                groups.setdefault(entry.kind, []).append(entry)
            index = {k: tuple(v) for k, v in groups.items()}
            self._by_kind = index
        return index

    def __repr__(self) -> str:
        return f"<Snapshot version={self.version} entries={len(self._entries)}>"


def _field(entry: Entry, dotted: str) -> Any:
    """``meta.type`` / ``data.method`` / ``meta.a.b`` of an entry, or a sentinel."""
    head, _, rest = dotted.partition(".")
    value: Any = entry.meta if head == "meta" else entry.data if head == "data" else _MISSING
    for part in rest.split(".") if rest else ():
        value = value.get(part, _MISSING) if isinstance(value, dict) else _MISSING
    return value
