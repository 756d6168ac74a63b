"""MCP kinds: ``mcp.server`` (a server the node runs or reaches) and ``mcp.tool`` (one of its tools).

An ``mcp.server`` entry is written by a person (a file or the CLI). Its tools
are ``mcp.tool`` entries named ``<server id>/<tool>`` that the MCP layer
(``wippy_agents.mcp``) writes when it lists the server's tools, so they are
versioned, listed, found by globs and checked like any other entry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from ..entry import Entry, Problem
from .base import KindHandler

if TYPE_CHECKING:
    from ..snapshot import Snapshot

__all__ = ["McpServer", "McpTool", "MCP_KINDS"]

MCP_KINDS = ("mcp.server", "mcp.tool")


class McpServer(KindHandler):
    kind = "mcp.server"
    schema_file = "mcp.server.json"
    description = "An MCP server (stdio command or streamable-HTTP url); its tools become <id>/<tool> entries."
    owner_only = True  # it names a program the node runs

    def provides(self, entry: Entry, target: str) -> bool:
        return target.startswith(f"{entry.id}/")  # its tools, listed when the server runs


class McpTool(KindHandler):
    kind = "mcp.tool"
    schema_file = "mcp.tool.json"
    description = "A tool of an mcp.server, named <server id>/<tool>; written by the MCP layer, not by hand."
    owner_only = True
    tool_capable = True
    call_mode = "mcp"  # the tool dispatcher hands it to the runner registered for "mcp" (the MCP layer's)

    def check(self, entry: Entry, snapshot: "Snapshot") -> Iterable[Problem]:
        server = entry.data.get("server")
        if isinstance(server, str) and not str(entry.id).startswith(server + "/"):
            yield Problem.about(entry, f"an mcp.tool of {server!r} must be named {server}/<tool>", field="server")
