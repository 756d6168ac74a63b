"""MCP: ``mcp.server`` entries as tool sources, and ``wippy mcp serve`` (the app's tools to MCP clients).

Client side (``McpClients``): each server's tools are ``mcp.tool`` registry
entries ``<server id>/<tool>`` that agents list in ``tools:`` like any other;
the server runs as a supervised process on the node. Server side
(``serve_stdio``): the app's Lua tools and agents as MCP tools over stdio,
under one named policy.

The official ``mcp`` SDK is imported only when a server is started or served.
"""

from .clients import McpClients
from .config import ServerConfig, expand
from .install import install

__all__ = ["McpClients", "ServerConfig", "expand", "install"]
