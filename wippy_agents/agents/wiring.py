"""How the agents layer joins an App: the ``agent`` task kind, the service, the Lua modules.

Imported by ``wippy_agents.agents``; the hook runs at every ``App.open``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..app import on_open
from ..errors import EntryNotFound
from .service import AGENT_TASK_KIND, AgentService
from .tools import ToolCallContext, dispatch_tool, is_tool_kind

__all__ = ["install"]


@on_open
async def install(app: Any) -> None:
    """Register the ``agent`` task kind, ``app.extensions["agents"]``, the ``llm``/``agent`` Lua
    modules, and let Lua's ``funcs.call`` reach Python tools (through ``dispatch_tool``)."""
    from .lua_modules import agent_module, llm_module, wrap_funcs

    service = AgentService(app)
    app.extensions["agents"] = service
    app.tasks.register_kind(AGENT_TASK_KIND, service.runner)
    app.lua.add_module(llm_module(service))
    app.lua.add_module(agent_module(service))
    wrap_funcs(app.lua, service)
    previous = app.lua.services.call_function

    async def call_function(entry_id: str, args: Any, *, actor: Any = None) -> Any:
        entry = app.registry.get(entry_id)
        if entry is not None and is_tool_kind(entry.kind):
            return await dispatch_tool(app, entry, args, ToolCallContext(app=app, actor=actor))
        if previous is not None:
            return await previous(entry_id, args, actor=actor)
        raise EntryNotFound(f"funcs.call: {entry_id!r} is not a callable function entry", id=entry_id)

    app.lua.services = dataclasses.replace(app.lua.services, call_function=call_function)
    app.add_closer(service.close)
