"""``CodeSpec``: the Lua-relevant fields of a code entry, checked once.

Reads ``source``, ``method``, ``modules``, ``imports`` and ``limits`` from an
entry's ``data`` (a registry ``Entry`` or a ``{id, kind, meta, data}`` mapping)
and raises ``UsageError``/``ConfigError`` naming the entry for bad values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import Any

from wippy_agents.errors import UsageError
from wippy_agents.lua.limits import Limits
from wippy_agents.lua.modules.base import KNOWN_MODULES

__all__ = ["CodeSpec"]


@dataclass(frozen=True, kw_only=True)
class CodeSpec:
    """What is needed to load one Lua entry into a state.

    >>> CodeSpec.from_entry({"id": "app:f", "kind": "function.lua", "data": {"source": "return {}"}}).method
    'handler'
    """

    id: str
    kind: str
    source: str
    chunkname: str
    method: str | None = "handler"
    modules: tuple[str, ...] = ()
    imports: Mapping[str, str] = field(default_factory=dict)
    limits: Limits = Limits()

    @property
    def namespace(self) -> str:
        return self.id.rpartition(":")[0]

    def resolve(self, ref: str) -> str:
        return ref if ":" in ref else f"{self.namespace}:{ref}"

    @classmethod
    def from_entry(cls, entry: Any, *, default_method: str | None = "handler") -> CodeSpec:
        if type(entry) is dict or isinstance(entry, Mapping):  # typing's isinstance is slow; dict first
            entry_id, kind, data = str(entry.get("id")), str(entry.get("kind")), entry.get("data") or {}
        else:
            entry_id, kind, data = str(entry.id), entry.kind, entry.data
        source = data.get("source")
        if not isinstance(source, str):
            raise UsageError(f"entry {entry_id!r}: 'source' must be Lua text, got {type(source).__name__}", id=entry_id)
        method = data.get("method", default_method)
        if method is not None and not isinstance(method, str):
            raise UsageError(f"entry {entry_id!r}: 'method' must be a string, got {method!r}", id=entry_id)
        modules = data.get("modules") or []
        if not isinstance(modules, (list, tuple)) or not all(isinstance(m, str) for m in modules):
            raise UsageError(f"entry {entry_id!r}: 'modules' must be a list of module names", id=entry_id)
        unknown = sorted(set(modules) - KNOWN_MODULES)
        if unknown:
            raise UsageError(
                f"entry {entry_id!r}: unknown module(s) {unknown!r} in modules:; known: {sorted(KNOWN_MODULES)}",
                id=entry_id,
            )
        imports = data.get("imports") or {}
        if not (type(imports) is dict or isinstance(imports, Mapping)) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in imports.items()
        ):
            raise UsageError(f"entry {entry_id!r}: 'imports' must map aliases to library ids", id=entry_id)
        limits = Limits.from_entry_value(data.get("limits"), where=f"entry {entry_id!r}: limits")
        return cls(
            id=entry_id,
            kind=kind,
            source=source,
            chunkname=data.get("source_path") or entry_id,
            method=method,
            modules=tuple(dict.fromkeys(modules)),
            imports=dict(imports),
            limits=limits,
        )
