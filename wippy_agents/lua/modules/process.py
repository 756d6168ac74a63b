"""``process``: pids, spawn, send, monitors, links, cancel/terminate, names, options.

Every function yields one request to the driver (``host``); errors come back
as ``nil, err``.  The ops need the node-wide ``LuaProcesses`` manager, so the
module is built per manager with ``process_module(manager)``; functions that
only make sense inside a process (``pid``, ``monitor``, ``inbox`` ...)
answer ``nil, err`` in a plain function call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wippy_agents.errors import UsageError
from wippy_agents.lua.modules.base import LuaModule, LuaOp
from wippy_agents.lua.modules.channel import process_of
from wippy_agents.lua.sandbox import trusted_part

if TYPE_CHECKING:
    from wippy_agents.lua.processes import LuaProcesses

__all__ = ["process_module", "LUA", "MORE_LUA", "RESERVED_PREFIX"]

RESERVED_PREFIX = "__"  # topics the process layer uses for timers, CANCEL and OUTDATED

LUA = r"""
-- What nearly every Lua process uses is here; the rest is the "process.more"
-- part, loaded the first time code names another field (this module is
-- loaded into every Lua process, and every function costs a prototype).
local M = {}
M.event = {EXIT = "EXIT", CANCEL = "CANCEL", LINK_DOWN = "LINK_DOWN", OUTDATED = "OUTDATED"}
local function hosted(src)
  return function()
    local channel = use("channel")
    if channel == nil then return nil, "process." .. src .. ": channels are not available on this host" end
    return channel._hosted(src)
  end
end
M.inbox, M.events = hosted("inbox"), hosted("events")
local my_pid
function M.pid()
  if my_pid == nil then
    local p, err = host("process.pid")
    if p == nil then return nil, err end
    my_pid = p
  end
  return my_pid
end
function M.send(pid, topic, payload) return host("process.send", pid, topic, payload) end
local more
return setmetatable(M, {__metatable = false, __index = function(t, k)
  if more == nil then
    more = part("process.more")()
    for name, f in pairs(more) do if rawget(t, name) == nil then rawset(t, name, f) end end
  end
  return rawget(t, k)
end})
"""

MORE_LUA = r"""
-- The forwarders are made by a few factories: one prototype each.
local function op0(op) return function() return host(op) end end
local function op1(op) return function(a) return host(op, a) end end
local function op3(op) return function(a, b, c) return host(op, a, b, c) end end
local function spawner(mode) return function(id, on, ...) return host("process.spawn", id, on, mode, ...) end end
local M = {}
M.spawn, M.spawn_monitored, M.spawn_linked = spawner(""), spawner("monitor"), spawner("link")
M.cancel = op3("process.cancel")
M.monitor, M.unmonitor = op1("process.monitor"), op1("process.unmonitor")
M.demonitor = M.unmonitor
M.link, M.unlink = op1("process.link"), op1("process.unlink")
M.terminate, M.set_options = op1("process.terminate"), op1("process.set_options")
M.get_options = op0("process.get_options")
function M.upgrade(...) return host("process.upgrade", ...) end
M.registry = {register = op1("process.register"), unregister = op1("process.unregister"),
  lookup = op1("process.lookup")}
return M
"""

trusted_part("process.more", MORE_LUA)


def _pid_arg(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise UsageError(f"{what}: expected a pid (string), got {value!r}")
    return value


def process_module(manager: LuaProcesses) -> LuaModule:
    """The ``process`` module bound to ``manager`` (always visible, as SPEC §5 says)."""

    async def pid(ctx: Any) -> str:
        return process_of(ctx, "process.pid").pid

    async def spawn(ctx: Any, entry: Any = None, on: Any = None, mode: Any = "", *args: Any) -> str:
        if not isinstance(entry, str) or not entry:
            raise UsageError(f"process.spawn: expected a process.lua entry id, got {entry!r}")
        if not isinstance(on, str) or not on:
            raise UsageError(f"process.spawn: expected a process.host entry id as the second argument, got {on!r}")
        ctl = (ctx.extra or {}).get("process") if ctx.extra else None
        if mode and ctl is None:
            raise UsageError(f"process.spawn_{'monitored' if mode == 'monitor' else 'linked'} needs a Lua process")
        return await manager.spawn(ctx.resolve(entry), ctx.resolve(on), *args, actor=ctx.actor, parent=ctl,
                                   monitor=mode == "monitor", link=mode == "link")

    async def send(ctx: Any, dest: Any = None, topic: Any = None, payload: Any = None) -> bool:
        dest = _pid_arg(dest, "process.send")
        if not isinstance(topic, str) or not topic:
            raise UsageError(f"process.send: expected a topic string, got {topic!r}")
        if topic.startswith(RESERVED_PREFIX):
            raise UsageError(f"process.send: topic {topic!r} is reserved (topics starting with "
                             f"{RESERVED_PREFIX!r} carry timers and events)")
        if manager.host.services.authorize is not None:
            await manager.authorize(ctx.actor, "process.send", dest)
        ctl = (ctx.extra or {}).get("process") if ctx.extra else None
        if ctl is not None:
            ctl.proc.send(dest, topic, payload)
        else:
            manager.node.send(dest, topic, payload)
        return True

    async def monitor(ctx: Any, target: Any = None) -> bool:
        process_of(ctx, "process.monitor").monitor(_pid_arg(target, "process.monitor"))
        return True

    async def unmonitor(ctx: Any, target: Any = None) -> bool:
        return process_of(ctx, "process.unmonitor").unmonitor(_pid_arg(target, "process.unmonitor"))

    async def link(ctx: Any, target: Any = None) -> bool:
        process_of(ctx, "process.link").proc.link(_pid_arg(target, "process.link"))
        return True

    async def unlink(ctx: Any, target: Any = None) -> bool:
        process_of(ctx, "process.unlink").proc.unlink(_pid_arg(target, "process.unlink"))
        return True

    async def cancel(ctx: Any, target: Any = None, reason: Any = None, grace: Any = None) -> bool:
        ctl = (ctx.extra or {}).get("process") if ctx.extra else None
        return manager.cancel(_pid_arg(target, "process.cancel"), reason, grace=grace,
                              sender=ctl.pid if ctl is not None else None)

    async def terminate(ctx: Any, target: Any = None) -> bool:
        return await manager.terminate(_pid_arg(target, "process.terminate"))

    async def set_options(ctx: Any, options: Any = None) -> Any:
        return process_of(ctx, "process.set_options").set_options(options)

    async def get_options(ctx: Any) -> Any:
        return process_of(ctx, "process.get_options").options()

    async def upgrade(ctx: Any, *args: Any) -> Any:
        return await process_of(ctx, "process.upgrade").upgrade(list(args))

    async def register(ctx: Any, name: Any = None) -> bool:
        ctl = process_of(ctx, "process.registry.register")
        if not isinstance(name, str) or not name:
            raise UsageError(f"process.registry.register: expected a name string, got {name!r}")
        ctl.proc.register(name)
        return True

    async def unregister(ctx: Any, name: Any = None) -> bool:
        process_of(ctx, "process.registry.unregister")
        if not isinstance(name, str) or manager.node.whereis(name) is None:
            return False
        manager.node.unregister(name)
        return True

    async def lookup(ctx: Any, name: Any = None) -> Any:
        if not isinstance(name, str) or not name:
            raise UsageError(f"process.registry.lookup: expected a name string, got {name!r}")
        found = manager.node.whereis(name)
        if found is None:
            raise UsageError(f"process.registry.lookup: no process is registered as {name!r}")
        return found

    async def watch(ctx: Any, pattern: Any = None) -> str:
        if pattern is not None and not isinstance(pattern, str):
            raise UsageError(f"registry.watch: expected an id or a glob like 'app.db:*', got {pattern!r}")
        return process_of(ctx, "registry.watch").watch(pattern)

    write = {"process.monitor": monitor, "process.unmonitor": unmonitor, "process.link": link,
             "process.unlink": unlink, "process.cancel": cancel, "process.terminate": terminate,
             "process.set_options": set_options, "process.register": register, "process.unregister": unregister,
             "registry.watch": watch}
    ops = {name: LuaOp(fn=fn, effect="write", guard=None) for name, fn in write.items()}
    ops.update({
        "process.pid": LuaOp(fn=pid, effect="read", guard=None),
        "process.get_options": LuaOp(fn=get_options, effect="read", guard=None),
        "process.lookup": LuaOp(fn=lookup, effect="read", guard=None),
        "process.spawn": LuaOp(fn=spawn, effect="wait", guard="process.spawn"),
        "process.send": LuaOp(fn=send, effect="write", guard="process.send"),
        "process.upgrade": LuaOp(fn=upgrade, effect="wait", guard=None),
    })
    return LuaModule(name="process", lua=LUA, ops=ops, always=True)
