"""How the MCP layer joins an App: ``app.extensions["mcp"]`` (the ``McpClients``) and ``mcp.tool`` as a tool kind.

``install(app)`` runs at every ``App.open`` (after the agents and security
layers): agents' tool dispatch (validation, ``tool.call`` policies, the
journal) reaches MCP tools through ``register_tool_kind``, and Lua's
``funcs.call`` through the same dispatcher. With no ``mcp.server`` entry it
starts nothing and imports nothing of the ``mcp`` SDK.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..agents.tools import ToolCallContext, register_tool_kind
from ..app import on_open
from ..errors import ToolError
from ..registry import Entry
from .clients import TOOL_KIND, McpClients

__all__ = ["install", "run_mcp_tool"]


async def run_mcp_tool(app: Any, entry: Entry, args: Any, ctx: ToolCallContext) -> Any:
    """The ``mcp.tool`` runner: the node's ``McpClients`` calls the server."""
    clients = getattr(app, "extensions", {}).get("mcp")
    if clients is None:
        raise ToolError(f"tool {str(entry.id)!r} is an MCP tool and this node has no MCP layer", tool=str(entry.id))
    return await clients.call(entry, args)


register_tool_kind(TOOL_KIND, run_mcp_tool)


def _errlog(root: Path | None) -> Any:
    state = root / ".wippy" if root is not None else None
    if state is not None and state.is_dir():
        return open(state / "mcp-servers.log", "a", encoding="utf-8")  # noqa: SIM115 - closed by McpClients
    return None


@on_open
async def install(app: Any) -> None:
    root = getattr(app.settings, "root", None)
    errlog = _errlog(root)
    clients = McpClients(app.registry, app.node, root=root, errlog=errlog, close_errlog=True)
    app.extensions["mcp"] = clients
    app.add_closer(clients.close)
    await clients.start()
