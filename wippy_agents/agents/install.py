"""How the agents layer joins a node: ``install(layers) -> AgentService``.

``App.open`` calls it once the layers below are open: it registers the
``agent`` task type on the task engine and the ``llm``/``agent`` Lua modules
on the Lua host. Lua's ``funcs.call`` of a Python tool reaches
``dispatch_tool`` through the app's one entry dispatcher (by the kind's
``call_mode``), not through a wrapper installed here.
"""

from __future__ import annotations

from .layers import NodeLayers
from .lua_modules import agent_module, journal_funcs, llm_module
from .service import AGENT_TASK_KIND, AgentService

__all__ = ["install"]


def install(layers: NodeLayers) -> AgentService:
    """The node's ``AgentService``; close it with the node (``await service.close()``)."""
    service = AgentService(layers)
    layers.tasks.register_kind(AGENT_TASK_KIND, service.runner)
    layers.lua.add_module(llm_module(service))
    layers.lua.add_module(agent_module(service))
    layers.lua.add_module(journal_funcs(layers.lua.modules["funcs"], service))
    return service
