"""The value bridge: Python data <-> fresh Lua tables, copies only.

Nothing Python ever reaches Lua: ``to_lua`` accepts JSON-like data (None,
bool, int, float, str, bytes, list/tuple, dict with str/int keys) and builds
new Lua tables; anything else raises ``InvalidPayload``.  Strings cross as
UTF-8 bytes (the runtime runs with ``encoding=None`` so that a Python ``str``
can never become a Lua userdata by accident).

``from_lua`` copies Lua values back: a table whose keys are exactly 1..n
becomes a list, any other table a dict (an empty table is ``{}``); functions,
threads and userdata raise ``LuaError``.  Both directions bound depth and
the number of nodes so a cyclic or enormous table is a clean error.
"""

from __future__ import annotations

from typing import Any

from lupa.lua54 import LuaRuntime, lua_type

from wippy_agents.errors import InvalidPayload, LuaError

__all__ = ["to_lua", "from_lua", "MAX_DEPTH", "MAX_NODES"]

MAX_DEPTH = 100
MAX_NODES = 1_000_000
_LUA_INT = (-(2**63), 2**63 - 1)


def to_lua(lua: LuaRuntime, value: Any, *, where: str = "value") -> Any:
    """Copy Python data into ``lua``; raises ``InvalidPayload`` for non-data."""
    return _to_lua(lua, value, 0, where)


def _to_lua(lua: LuaRuntime, value: Any, depth: int, where: str) -> Any:
    t = type(value)
    if t is str:  # the common cases first, by exact type (subclasses take the general path)
        return value.encode("utf-8", "surrogateescape")
    if t is dict and depth < MAX_DEPTH:
        return _dict_to_lua(lua, value, depth, where)
    if value is None or value is True or value is False or isinstance(value, float):
        return value
    if isinstance(value, int):
        if not _LUA_INT[0] <= value <= _LUA_INT[1]:
            return float(value)
        return int(value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if depth >= MAX_DEPTH:
        raise InvalidPayload(f"{where}: nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if isinstance(k, str):
                key: Any = k.encode("utf-8", "surrogateescape")
            elif isinstance(k, int) and not isinstance(k, bool):
                key = k
            else:
                raise InvalidPayload(f"{where}: a key must be a string or an integer, got {k!r}")
            out[key] = _to_lua(lua, v, depth + 1, where)
        return lua.table_from(out)
    if isinstance(value, (list, tuple)):
        return lua.table_from([_to_lua(lua, v, depth + 1, where) for v in value])
    raise InvalidPayload(f"{where}: a {type(value).__name__} cannot cross into Lua; pass JSON-like data")


def _dict_to_lua(lua: LuaRuntime, value: dict[Any, Any], depth: int, where: str) -> Any:
    # scalar values are converted inline: most payloads are flat dicts
    out = {}
    for k, v in value.items():
        if isinstance(k, str):
            key: Any = k.encode("utf-8", "surrogateescape")
        elif isinstance(k, int) and not isinstance(k, bool):
            key = k
        else:
            raise InvalidPayload(f"{where}: a key must be a string or an integer, got {k!r}")
        t = type(v)
        if t is str:
            out[key] = v.encode("utf-8", "surrogateescape")
        elif v is None or t is bool or t is float or (t is int and _LUA_INT[0] <= v <= _LUA_INT[1]):
            out[key] = v
        else:
            out[key] = _to_lua(lua, v, depth + 1, where)
    return lua.table_from(out)


def from_lua(value: Any, *, where: str = "value") -> Any:
    """Copy a Lua value out; raises ``LuaError`` for functions, threads, cycles."""
    budget = [MAX_NODES]
    return _from_lua(value, 0, budget, where)


def _text(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def _from_lua(value: Any, depth: int, budget: list[int], where: str) -> Any:
    if isinstance(value, bytes):
        return _text(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    kind = lua_type(value)
    if kind != "table":
        raise LuaError(f"{where}: a Lua {kind or type(value).__name__} cannot leave Lua; return plain data")
    if depth >= MAX_DEPTH:
        raise LuaError(f"{where}: table nested deeper than {MAX_DEPTH} levels (or cyclic)")
    items = list(value.items())
    budget[0] -= len(items) + 1
    if budget[0] < 0:
        raise LuaError(f"{where}: table has more than {MAX_NODES} elements")
    n = len(items)
    if n and all(type(k) is int for k, _ in items):
        keys = sorted(k for k, _ in items)
        if keys[0] == 1 and keys[-1] == n:
            items.sort(key=lambda kv: kv[0])
            return [_from_lua(v, depth + 1, budget, where) for _, v in items]
    out: dict[Any, Any] = {}
    for k, v in items:
        if type(k) is bytes:
            key: Any = k.decode("utf-8", "replace")
        elif isinstance(k, int) and not isinstance(k, bool):
            key = k
        elif isinstance(k, float) and k.is_integer():
            key = int(k)
        else:
            raise LuaError(f"{where}: a table key must be a string or an integer, got a {lua_type(k) or type(k).__name__}")
        t = type(v)  # scalar values inline: most tables are flat
        if t is bytes:
            out[key] = v.decode("utf-8", "replace")
        elif t is int or t is float or t is bool:
            out[key] = v
        else:
            out[key] = _from_lua(v, depth + 1, budget, where)
    return out
