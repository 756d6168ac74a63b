"""``time``: now, sleep (yields to the driver), durations like "5s"/"100ms".

``time.after(d)`` needs channels, so it is answered by the process layer;
in a plain function call it returns ``nil, err``.
"""

from __future__ import annotations

import asyncio
import time as _time
from typing import Any

from wippy_agents.errors import ConfigError, UsageError
from wippy_agents.lua.limits import parse_duration
from wippy_agents.lua.modules.base import LuaModule, LuaOp

__all__ = ["MODULE", "seconds"]

LUA = """
local M = {}
function M.now() return host("time.now") end
function M.sleep(d) return host("time.sleep", d) end
function M.duration(d) return host("time.duration", d) end
function M.after(d)
  -- the process layer answers with a timer id and the channel module wraps it
  local id, err = host("time.after", d)
  if id == nil then return nil, err end
  local channel = use("channel")
  if channel == nil then return nil, "time.after: channels are not available on this host" end
  return channel._timer(id)
end
M.MILLISECOND, M.SECOND, M.MINUTE, M.HOUR = 0.001, 1, 60, 3600
return M
"""


def seconds(value: Any, op: str) -> float:
    """Seconds from a Lua duration (number of seconds or "5s"/"100ms"); raises ``UsageError``."""
    try:
        return parse_duration(value, where=op)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


async def now(ctx: Any) -> float:
    return _time.time()


async def sleep(ctx: Any, duration: Any = None) -> bool:
    await asyncio.sleep(seconds(duration, "time.sleep"))
    return True


async def duration(ctx: Any, value: Any = None) -> float:
    return seconds(value, "time.duration")


async def after(ctx: Any, value: Any = None) -> Any:
    raise UsageError("time.after needs a Lua process (it returns a channel); use time.sleep in a function")


MODULE = LuaModule(
    name="time",
    lua=LUA,
    ops={
        "time.now": LuaOp(fn=now, effect="read", guard=None),
        "time.sleep": LuaOp(fn=sleep, effect="wait", guard=None),
        "time.duration": LuaOp(fn=duration, effect="pure", guard=None),
        "time.after": LuaOp(fn=after, effect="write", guard=None),
    },
)
