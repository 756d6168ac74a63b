"""``channel``: Go-style channels and ``select`` for Lua processes, plus ``time.after``.

Two sorts of channel share one Lua class:

* local channels (``channel.new(n)``): a FIFO buffer of capacity ``n`` that
  lives in the process's own Lua state.  A process is one coroutine, so
  nothing else can fill or drain a local channel while it waits: an
  operation that would have to block on local channels alone is a clear
  Lua error ("would block forever") instead of a silent hang.
* host-fed channels: ``process.inbox()``, ``process.events()`` and
  ``time.after(d)``.  Their values live on the Python side (the process's
  mailbox; a timer message), so a wait on them yields one
  ``channel.wait`` request to the driver, which takes the first matching
  mailbox message (selective receive: what no case asks for stays queued).

``channel.select{c1, c2, default = true}`` returns ``{channel = ch,
value = v, ok = true|false}`` (``{default = true, ok = false}`` when the
default was taken).  When several cases are ready, local ones are checked
first, in order; then the host answers with the oldest matching message.
"""

from __future__ import annotations

from typing import Any

from wippy_agents.errors import UsageError
from wippy_agents.lua.modules.base import LuaModule, LuaOp
from wippy_agents.lua.modules.time import seconds
from wippy_agents.lua.sandbox import trusted_part

__all__ = ["MODULE", "LUA", "MORE_LUA", "process_of"]

LUA = r"""
-- The part every Lua process needs (its inbox and events); local channels,
-- select and timers are in the "channel.more" part, loaded on first use.
local M = {}
local Chan = {__metatable = "channel"}
Chan.__index = Chan
local Msg = {__metatable = "message"}
Msg.__index = Msg
function Msg:topic() return self._topic end
function Msg:from() return self._from end
function Msg:payload() return self._payload end

local hosted = {}
-- internal: the host-fed channels (process.inbox/events)
function M._hosted(src)
  local c = hosted[src]
  if c == nil then c = setmetatable({_src = src}, Chan); hosted[src] = c end
  return c
end

local run  -- the select engine of the part (set below)
function Chan:receive()
  if self._src == "inbox" then  -- the hot path of a receive loop: no case tables
    local i, topic, from, payload = host("channel.wait", "inbox", false)
    if i == nil then return nil, topic end
    return setmetatable({_topic = topic, _from = from, _payload = payload}, Msg), true
  end
  local r, err = run({{channel = self, op = "receive"}}, false)
  if r == nil then return nil, err end
  return r.value, r.ok
end

-- the rest: loaded the first time code names a field the core does not have
local more
local function load_more()
  if more == nil then
    more = part("channel.more")(Chan, Msg)
    for _, k in ipairs({"new", "select"}) do if rawget(M, k) == nil then rawset(M, k, more[k]) end end
    M._timer, M._watch = more.timer, more.watch
    for _, k in ipairs({"case_receive", "case_send", "try_receive", "send", "close", "size"}) do
      rawset(Chan, k, more[k])
    end
  end
  return more
end
run = function(cases, nonblock) return load_more().run(cases, nonblock) end
setmetatable(Chan, {__metatable = false, __index = function(_, k) load_more(); return rawget(Chan, k) end})
setmetatable(M, {__metatable = false, __index = function(t, k) load_more(); return rawget(t, k) end})
return M
"""

MORE_LUA = r"""
local Chan, Msg = ...
local R = {}

function R.new(n)
  if n == nil then n = 0 end
  if type(n) ~= "number" or n < 0 or n % 1 ~= 0 then
    error("channel.new: capacity must be a non-negative integer, got " .. tostring(n), 2)
  end
  return setmetatable({_cap = n, _q = {}, _h = 1, _t = 0, _closed = false}, Chan)
end

function R.timer(id) return setmetatable({_src = "timer", _id = id}, Chan) end
function R.watch(id) return setmetatable({_src = "watch", _id = id}, Chan) end

local function poll_local(c, i)
  local ch = c.channel
  if c.op == "receive" then
    if ch._t >= ch._h then
      local v = ch._q[ch._h]
      ch._q[ch._h] = nil
      ch._h = ch._h + 1
      return {channel = ch, value = v, ok = true}
    end
    if ch._closed then return {channel = ch, value = nil, ok = false} end
  elseif c.op == "send" then
    if ch._closed then return nil, "send on a closed channel (case " .. i .. ")" end
    if ch._t - ch._h + 1 < ch._cap then
      ch._t = ch._t + 1
      ch._q[ch._t] = c.value
      return {channel = ch, value = c.value, ok = true}
    end
  else
    return nil, "case " .. i .. " is not a channel case: use ch:case_receive() or ch:case_send(v)"
  end
end

local function run(cases, nonblock)
  local want, wcase = nil, nil
  for i = 1, #cases do
    local c = cases[i]
    if type(c) ~= "table" or type(c.channel) ~= "table" or getmetatable(c.channel) ~= "channel" then
      return nil, "channel.select: case " .. i .. " is not a channel case: use ch:case_receive() or ch:case_send(v)"
    end
    local ch = c.channel
    if ch._src then
      if c.op ~= "receive" then
        return nil, "channel.select: case " .. i .. ": the " .. ch._src .. " channel can only be received from"
      end
      if want == nil then want, wcase = {}, {} end
      want[#want + 1] = ch._id or ch._src   -- timers and watches by id
      wcase[#want] = c
    else
      local r, err = poll_local(c, i)
      if r then return r end
      if err then return nil, "channel.select: " .. err end
    end
  end
  if want then
    -- answer: index, then topic, from, payload (inbox) or the value; nil, err on failure
    local i, a, b, p = host("channel.wait", #want == 1 and want[1] or want, nonblock)
    if i then
      local ch = wcase[i].channel
      if ch._src == "inbox" then
        return {channel = ch, value = setmetatable({_topic = a, _from = b, _payload = p}, Msg), ok = true}
      end
      return {channel = ch, value = a, ok = true}
    end
    if a then return nil, a end
  end
  if nonblock then return {default = true, ok = false} end
  return nil, "channel.select would block forever: only this process can fill its local channels "
    .. "(add process.inbox(), process.events(), time.after(...) or default = true)"
end
R.run = run

function R.select(cases)
  if type(cases) ~= "table" then return nil, "channel.select: expected a table of cases" end
  if #cases == 0 and not cases.default then return nil, "channel.select: no cases given" end
  return run(cases, cases.default == true)
end

function R.case_receive(self) return {channel = self, op = "receive"} end
function R.case_send(self, v) return {channel = self, op = "send", value = v} end

function R.try_receive(self)
  local r, err = run({{channel = self, op = "receive"}}, true)
  if r == nil then return nil, err end
  return r.value, r.ok
end

function R.send(self, v)
  if self._src then error("the " .. self._src .. " channel can only be received from", 2) end
  if self._closed then error("send on a closed channel", 2) end
  if self._t - self._h + 1 >= self._cap then
    error("channel send would block forever: the channel is full (capacity " .. self._cap
      .. ") and only this process could drain it", 2)
  end
  self._t = self._t + 1
  self._q[self._t] = v
  return true
end

function R.close(self)
  if self._src then error("the " .. self._src .. " channel cannot be closed", 2) end
  if self._closed then error("close of a closed channel", 2) end
  self._closed = true
  return true
end

function R.size(self)
  if self._src then return 0 end
  return self._t - self._h + 1
end

return R
"""


def process_of(ctx: Any, what: str) -> Any:
    """The running Lua process behind ``ctx`` (its ``LuaProcessCtl``); ``UsageError`` outside one."""
    ctl = (ctx.extra or {}).get("process") if ctx.extra else None
    if ctl is None:
        raise UsageError(f"{what} needs a Lua process (there is no mailbox or timer in a function call)")
    return ctl


async def wait(ctx: Any, want: Any = None, nonblock: Any = False) -> Any:
    """Wait for the first mailbox message a source in ``want`` (one or a list) asks for.

    Answers several values: the 1-based index of the source, then
    ``topic, from, payload`` (inbox) or the event / the time (timer).
    """
    if not isinstance(want, list):
        want = [want]
    if not want or not all(isinstance(w, (str, int)) for w in want):
        raise UsageError("channel.wait: malformed wait list")
    return await process_of(ctx, "waiting on process.inbox(), process.events() or time.after()").wait(
        want, bool(nonblock))


async def after(ctx: Any, duration: Any = None) -> int:
    """``time.after(d)``: start a one-shot timer for this process; the id the timer channel waits on."""
    return process_of(ctx, "time.after").start_timer(seconds(duration, "time.after"))


trusted_part("channel.more", MORE_LUA)
MODULE = LuaModule(name="channel", lua=LUA, ops={"channel.wait": LuaOp(fn=wait, effect="wait", guard=None),
                                                "time.after": LuaOp(fn=after, effect="write", guard=None)}, always=True)
