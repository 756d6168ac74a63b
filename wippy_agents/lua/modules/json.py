"""``json``: encode/decode with size and depth limits (in Python, via the driver)."""

from __future__ import annotations

import json as _json
from typing import Any

from wippy_agents.errors import UsageError
from wippy_agents.lua.modules.base import LuaModule, LuaOp
from wippy_agents.lua.value import MAX_DEPTH

__all__ = ["MODULE", "MAX_JSON_BYTES"]

MAX_JSON_BYTES = 8 << 20

LUA = """
local M = {}
function M.encode(value) return host("json.encode", value) end
function M.decode(text)
  if type(text) ~= "string" then return nil, "json.decode: expected a string, got " .. type(text) end
  if #text > %d then return nil, "json.decode: input of " .. #text .. " bytes is over the %d-byte limit" end
  return host("json.decode", text)
end
return M
""" % (MAX_JSON_BYTES, MAX_JSON_BYTES)


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_DEPTH:
        raise UsageError(f"json: nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level


async def encode(ctx: Any, value: Any = None) -> str:
    try:
        text = _json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (ValueError, TypeError) as exc:
        raise UsageError(f"json.encode: {exc}") from None
    if len(text) > MAX_JSON_BYTES:
        raise UsageError(f"json.encode: output of {len(text)} bytes is over the {MAX_JSON_BYTES}-byte limit")
    return text


async def decode(ctx: Any, text: str = "") -> Any:
    try:
        value = _json.loads(text)
    except RecursionError:
        raise UsageError(f"json.decode: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise UsageError(f"json.decode: {exc}") from None
    _depth(value)
    return value


MODULE = LuaModule(name="json", lua=LUA, ops={
    "json.encode": LuaOp(fn=encode, effect="pure", guard=None),
    "json.decode": LuaOp(fn=decode, effect="pure", guard=None),
})
