"""Helpers for the Lua tests: a host with in-memory services and a runner."""

from __future__ import annotations

from typing import Any

import pytest

from wippy_agents.errors import EntryNotFound
from wippy_agents.lua import LuaHost, Services, UNGUARDED


class MemoryRegistry:
    """A tiny dict-backed stand-in for the registry seam (the real one is tested too)."""

    def __init__(self, entries: list[dict[str, Any]] | None = None) -> None:
        self.entries = {e["id"]: e for e in entries or []}
        self.version = 1
        self.applied: list[tuple[Any, Any, Any]] = []

    async def get_entry(self, entry_id: str, *, actor: Any = None) -> Any:
        return self.entries.get(entry_id)

    async def find_entries(self, query: dict, *, actor: Any = None) -> list[Any]:
        out = []
        for e in self.entries.values():
            if "kind" in query and e["kind"] != query["kind"]:
                continue
            if "meta.type" in query and e.get("meta", {}).get("type") != query["meta.type"]:
                continue
            out.append(e)
        return out

    async def registry_version(self, *, actor: Any = None) -> int:
        return self.version

    async def registry_apply(self, changes, *, actor=None, base_version=None, reason=""):
        self.applied.append((changes, actor, base_version))
        for c in changes:
            if c["op"] == "create":
                e = dict(c["entry"])
                eid = e.pop("id")
                self.entries[eid] = {"id": eid, "kind": e.pop("kind"), "meta": e.pop("meta", {}), "data": e}
            elif c["op"] == "delete":
                if c["id"] not in self.entries:
                    raise EntryNotFound(f"entry {c['id']!r} not found")
                del self.entries[c["id"]]
        self.version += 1
        return self.version

    def services(self, **kw: Any) -> Services:
        kw.setdefault("guard", UNGUARDED)  # these tests exercise the Lua layer alone, without security
        return Services(get_entry=self.get_entry, find_entries=self.find_entries,
                        registry_version=self.registry_version, registry_apply=self.registry_apply, **kw)


def fn_entry(code: str, *, id: str = "app.test:fn", modules=(), imports=None, limits=None,
             body: bool = True, method: str | None = "handler", kind: str = "function.lua") -> dict[str, Any]:
    """A function.lua entry; with ``body`` the code is the handler's body (args in ``...``/``a``)."""
    source = f"return {{handler = function(a, ...)\n{code}\nend}}" if body else code
    data: dict[str, Any] = {"source": source, "modules": list(modules)}
    if method is not None:
        data["method"] = method
    if imports:
        data["imports"] = imports
    if limits:
        data["limits"] = limits
    return {"id": id, "kind": kind, "meta": {}, "data": data}


@pytest.fixture
def memreg() -> MemoryRegistry:
    return MemoryRegistry()


@pytest.fixture
def host(memreg: MemoryRegistry) -> LuaHost:
    return LuaHost(services=memreg.services())


@pytest.fixture
def run(host: LuaHost):
    async def run(code: str, args: Any = None, **kw: Any) -> Any:
        return await host.call_function(fn_entry(code, **kw), args)

    return run
