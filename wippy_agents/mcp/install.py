"""How the MCP layer joins a node: ``install(layers) -> McpClients`` (called by ``App.open``).

It registers the runner of ``mcp.tool`` entries (``call_mode: mcp``) with the
tool dispatcher, so agents' tool calls and Lua's ``funcs.call`` reach MCP tools
validated, checked by ``tool.call`` and journaled like any tool. With no
``mcp.server`` entry nothing starts and nothing of the ``mcp`` SDK is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..agents.tools import ToolCallContext, register_tool_runner
from ..errors import ToolError
from ..registry import Entry
from .clients import McpClients

__all__ = ["install", "run_mcp_tool"]


async def run_mcp_tool(layers: Any, entry: Entry, args: Any, ctx: ToolCallContext) -> Any:
    """The ``mcp`` tool runner: the node's ``McpClients`` calls the server."""
    clients = getattr(layers, "mcp", None)
    if clients is None:
        raise ToolError(f"tool {str(entry.id)!r} is an MCP tool and this node has no MCP layer", tool=str(entry.id))
    return await clients.call(entry, args)


def _errlog(root: Path | None) -> Any:
    state = root / ".wippy" if root is not None else None
    if state is not None and state.is_dir():
        return open(state / "mcp-servers.log", "a", encoding="utf-8")  # noqa: SIM115 - closed by McpClients
    return None


def install(layers: Any) -> McpClients:
    """The node's ``McpClients`` (``await clients.start()`` next; ``close`` with the node)."""
    register_tool_runner("mcp", run_mcp_tool)
    root = getattr(layers.settings, "root", None)
    return McpClients(layers.registry, layers.node, root=root, errlog=_errlog(root), close_errlog=True)
